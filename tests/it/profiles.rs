//! The human commands: profile add, list, show, remove.

use std::fs;

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn profile_add_from_claude_makes_the_home_profile_and_copies_nothing() {
    let f = Fixture::new();
    let home_before = fs::read(f.claude().join(".credentials.json")).unwrap();
    let out = f.run(&["profile", "add", "home", "--from-claude"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The login stays where Claude Code keeps it; the store holds no copy of it.
    assert!(!f.canonical("home").exists());
    assert_eq!(
        fs::read(f.claude().join(".credentials.json")).unwrap(),
        home_before
    );
    assert_eq!(file_mode(&f.store().join("profiles/home")), 0o700);
    let status = f.status();
    assert_eq!(status["profiles"][0]["home"], json!(true));
    assert_eq!(status["profiles"][0]["credentials"]["present"], json!(true));
}

#[test]
fn profile_add_refuses_invalid_credentials_and_writes_nothing() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let before = f.snapshot();
    for bad in ["truncated", "no-access-token", "no-oauth"] {
        let out = f.run(
            &["profile", "add", "other", "--credentials", "-"],
            &fixture_credentials(bad),
        );
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid_credentials"),
            "{bad}"
        );
        assert_eq!(before, f.snapshot(), "{bad}");
    }
    let missing = f.run(
        &[
            "profile",
            "add",
            "other",
            "--credentials",
            "/nonexistent/creds.json",
        ],
        b"",
    );
    assert!(!missing.status.success());
    assert_eq!(before, f.snapshot());
}

#[test]
fn profile_add_refuses_an_existing_name_unless_replacing() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let out = f.run(
        &["profile", "add", "work", "--credentials", "-"],
        &fixture_credentials("personal"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("profile_exists"));
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work")
    );
    let out = f.run(
        &["profile", "add", "work", "--replace", "--credentials", "-"],
        &fixture_credentials("work-refreshed"),
    );
    assert!(out.status.success());
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work-refreshed")
    );
}

#[test]
fn profile_list_and_show_summarise_without_secrets() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let out = f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env",
            "ANTHROPIC_AUTH_TOKEN=sk-gateway-secret-value",
            "--env",
            "MODE=x",
        ],
        b"",
    );
    assert!(out.status.success());
    let list = f.run(&["profile", "list", "--json"], b"");
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["name"], json!("work"));
    assert_eq!(list[1]["credentials"]["present"], json!(true));
    let text = f.run(&["profile", "list"], b"");
    assert!(String::from_utf8_lossy(&text.stdout).contains("work"));

    let show = f.run(&["profile", "show", "gw", "--json"], b"");
    let stdout = String::from_utf8_lossy(&show.stdout);
    assert!(
        !stdout.contains("sk-gateway-secret-value"),
        "secret env values are redacted: {stdout}"
    );
    let show: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(show["env"]["MODE"], json!("x"));
    assert_eq!(show["credentials"]["present"], json!(false));
    let plain = f.run(&["profile", "show", "gw"], b"");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("sk-gateway-secret-value"));
}

#[test]
fn profile_remove_is_refused_while_a_session_is_live() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "real");
    let out = f.run(&["profile", "remove", "work"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("profile_busy"));
    assert!(f.canonical("work").exists());
    f.release(&session_of(&a));
    let out = f.run(&["profile", "remove", "work"], b"");
    assert!(out.status.success());
    assert!(!f.store().join("profiles/work").exists());
    f.request("acquire", json!({"profile": "work"}))
        .err("profile_not_found");
}

#[test]
fn gc_reclaims_a_runtime_left_by_a_crash_after_a_final_sync() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    f.request(
        "acquire",
        json!({"profile": "work", "link_mode": "fake", "owner_pid": child.id()}),
    )
    .ok();
    fs::write(
        f.runtime("work").join("CLAUDE.md"),
        "written in the session\n",
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = f.run(&["gc"], b"");
    assert!(out.status.success());
    let collected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(collected["runtimes_removed"], json!(["work"]));
    assert!(!f.store().join("runtimes/work").exists());
    assert_eq!(
        fs::read_to_string(f.claude().join("CLAUDE.md")).unwrap(),
        "written in the session\n"
    );
}

#[test]
fn the_home_profile_runs_in_the_claude_home_with_its_account() {
    let f = Fixture::new();
    let doc_before = fs::read(f.claude_json()).unwrap();
    let out = f.run(&["profile", "add", "home", "--from-claude"], b"");
    assert!(out.status.success());
    let a = f.acquire("home", "real");
    assert_eq!(a["home"], json!(true));
    assert_eq!(a["config_dir"], json!(f.claude().to_string_lossy()));
    assert!(
        !f.store().join("runtimes/home").exists(),
        "nothing is built"
    );
    // Its account keys stay in ~/.claude.json, which nothing rewrote.
    let doc: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
    assert_eq!(
        doc["oauthAccount"]["emailAddress"],
        json!("home@example.com")
    );
    assert!(!f.store().join("profiles/home/account.json").exists());
    f.release(&session_of(&a));
    assert_eq!(fs::read(f.claude_json()).unwrap(), doc_before);
}

#[test]
fn replacing_credentials_keeps_the_env_and_env_files_keep_secrets_out_of_argv() {
    let f = Fixture::new();
    let env_file = f.dir.path().join("gw.env");
    fs::write(&env_file, "# gateway\nANTHROPIC_BASE_URL=http://127.0.0.1:7777\n\nANTHROPIC_AUTH_TOKEN=gw-secret-value\n").unwrap();
    let out = f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env-file",
            env_file.to_str().unwrap(),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = f.run(
        &["profile", "add", "gw", "--replace", "--credentials", "-"],
        &fixture_credentials("work"),
    );
    assert!(out.status.success());
    let config: Value =
        serde_json::from_slice(&fs::read(f.store().join("profiles/gw/profile.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["env"]["ANTHROPIC_BASE_URL"],
        json!("http://127.0.0.1:7777")
    );
    assert_eq!(
        config["env"]["ANTHROPIC_AUTH_TOKEN"],
        json!("gw-secret-value")
    );
    let show = f.run(&["profile", "show", "gw"], b"");
    assert!(!String::from_utf8_lossy(&show.stdout).contains("gw-secret-value"));
}
