//! One login, one place: the home profile, `profile use`, `login_in_use`, and the migration of
//! stores made by an earlier `--from-claude`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::both_modes;
use crate::support::*;

fn refresh_token(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v["claudeAiOauth"]["refreshToken"]
        .as_str()
        .map(str::to_owned)
}

fn home_creds(f: &Fixture) -> PathBuf {
    f.claude().join(".credentials.json")
}

/// Every place a login can live, with the refresh token it holds: the claude home, and each
/// profile (its store entry and, when it is a file, its runtime's copy: one place).
fn places(f: &Fixture) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(t) = fs::read(home_creds(f)).ok().and_then(|b| refresh_token(&b)) {
        out.insert("home".to_owned(), vec![t]);
    }
    let Ok(entries) = fs::read_dir(f.store().join("profiles")) else {
        return out;
    };
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let mut tokens = Vec::new();
        for path in [
            f.canonical(&name),
            f.runtime(&name).join(".credentials.json"),
        ] {
            let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            if let Some(t) = regular
                .then(|| fs::read(&path).ok())
                .flatten()
                .and_then(|b| refresh_token(&b))
                && !tokens.contains(&t)
            {
                tokens.push(t);
            }
        }
        if !tokens.is_empty() {
            out.insert(name, tokens);
        }
    }
    out
}

/// No refresh token is in two places.
fn assert_one_place_each(f: &Fixture, when: &str) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (place, tokens) in places(f) {
        for t in tokens {
            if let Some(other) = seen.insert(t.clone(), place.clone()) {
                panic!("{when}: one login is in both {other} and {place}");
            }
        }
    }
}

fn add_home_profile(f: &Fixture, name: &str) {
    let out = f.run(&["profile", "add", name, "--from-claude"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn profile_of<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == json!(name))
        .unwrap_or_else(|| panic!("no profile {name} in {status}"))
}

fn write_account(f: &Fixture, profile: &str, email: &str, uuid: &str) {
    fs::write(
        f.store()
            .join("profiles")
            .join(profile)
            .join("account.json"),
        serde_json::to_vec_pretty(
            &json!({"oauthAccount": {"accountUuid": uuid, "emailAddress": email}}),
        )
        .unwrap(),
    )
    .unwrap();
}

fn home_email(f: &Fixture) -> Value {
    let doc: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
    doc["oauthAccount"]["emailAddress"].clone()
}

both_modes!(
    a_home_profile_session_is_the_claude_home_itself,
    |mode: &str| {
        let f = Fixture::new();
        add_home_profile(&f, "home");
        let a = f.acquire("home", mode);
        assert_eq!(a["home"], json!(true));
        assert_eq!(a["config_dir"], json!(f.claude().to_string_lossy()));
        assert!(a["env"].get("CLAUDE_CONFIG_DIR").is_none(), "{a}");
        assert!(
            a["env_remove"]
                .as_array()
                .unwrap()
                .contains(&json!("CLAUDE_CONFIG_DIR")),
            "{a}"
        );
        assert!(!f.store().join("runtimes/home").exists());
        let status = f.status();
        assert_eq!(profile_of(&status, "home")["home"], json!(true));
        assert_eq!(profile_of(&status, "home")["runtime"], Value::Null);
        assert_eq!(
            profile_of(&status, "home")["sessions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let t = f.tick(&session_of(&a));
        assert_eq!(t["credentials_saved"], json!(false));
        let r = f.release(&session_of(&a));
        assert_eq!(r["runtime_removed"], json!(false));
        assert_eq!(r["remaining_sessions"], json!(0));
        assert!(!f.canonical("home").exists(), "no copy was ever written");
        assert_one_place_each(&f, "after release");
    }
);

#[test]
fn run_under_the_home_profile_gives_the_command_no_config_dir_and_the_profile_env() {
    let f = Fixture::new();
    let out = f.run(
        &[
            "profile",
            "add",
            "home",
            "--from-claude",
            "--env",
            "CLAUDE_CODE_EXTRA=from-profile",
        ],
        b"",
    );
    assert!(out.status.success());
    let seen = f.dir.path().join("seen");
    let script = format!(
        "echo \"dir=${{CLAUDE_CONFIG_DIR-unset}} extra=$CLAUDE_CODE_EXTRA\" > {}",
        seen.display()
    );
    let mut f = f;
    f.set_env("CLAUDE_CONFIG_DIR", "/somewhere/else");
    let out = f.run(&["run", "home", "--", "sh", "-c", &script], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        "dir=unset extra=from-profile\n"
    );
}

#[test]
fn a_refresh_by_plain_claude_is_the_home_profile_s_at_once() {
    let f = Fixture::new();
    add_home_profile(&f, "home");
    let mut doc: Value = serde_json::from_slice(&fs::read(home_creds(&f)).unwrap()).unwrap();
    doc["claudeAiOauth"]["expiresAt"] = json!(1_999_999_999_000_i64);
    doc["claudeAiOauth"]["refreshToken"] = json!("sk-ant-ort01-HOMEREFRESH1-plain-claude");
    write_by_rename(&home_creds(&f), &serde_json::to_vec(&doc).unwrap());
    let status = f.status();
    assert_eq!(
        profile_of(&status, "home")["credentials"]["expires_at"],
        json!(1_999_999_999_000_i64)
    );
    assert_one_place_each(&f, "after a plain refresh");
}

#[test]
fn profile_use_moves_logins_and_account_keys_both_ways() {
    let f = Fixture::new();
    let home_login = fs::read(home_creds(&f)).unwrap();
    add_home_profile(&f, "home");
    f.add_profile("personal", Some("personal"));
    write_account(&f, "personal", "personal@example.com", "uuid-personal");
    assert_one_place_each(&f, "before");

    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(home_creds(&f)).unwrap(),
        fixture_credentials("personal")
    );
    assert_eq!(file_mode(&home_creds(&f)), 0o600);
    assert!(!f.canonical("personal").exists());
    assert_eq!(fs::read(f.canonical("home")).unwrap(), home_login);
    assert_eq!(home_email(&f), json!("personal@example.com"));
    let kept: Value =
        serde_json::from_slice(&fs::read(f.store().join("profiles/home/account.json")).unwrap())
            .unwrap();
    assert_eq!(
        kept["oauthAccount"]["emailAddress"],
        json!("home@example.com")
    );
    let status = f.status();
    assert_eq!(profile_of(&status, "personal")["home"], json!(true));
    assert_eq!(profile_of(&status, "home")["home"], json!(false));
    assert_one_place_each(&f, "after use personal");

    let out = f.run(&["profile", "use", "home"], b"");
    assert!(out.status.success());
    assert_eq!(fs::read(home_creds(&f)).unwrap(), home_login);
    assert_eq!(
        fs::read(f.canonical("personal")).unwrap(),
        fixture_credentials("personal")
    );
    assert!(!f.canonical("home").exists());
    assert_eq!(home_email(&f), json!("home@example.com"));
    assert_one_place_each(&f, "after use home");
}

both_modes!(
    profile_use_is_refused_while_a_profile_is_busy,
    |mode: &str| {
        let f = Fixture::new();
        add_home_profile(&f, "home");
        f.add_profile("personal", Some("personal"));
        for busy in ["personal", "home"] {
            let a = f.acquire(busy, mode);
            let before = f.snapshot();
            let out = f.run(&["profile", "use", "personal"], b"");
            assert!(!out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("profile_busy"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(before, f.snapshot(), "a refused use changes nothing");
            f.release(&session_of(&a));
        }
    }
);

/// A stand-in for a running Claude Code: a live process and its record in `sessions/`.
fn fake_claude(f: &Fixture, config_dir: Option<&Path>) -> std::process::Child {
    let mut cmd = Command::new("sleep");
    cmd.arg("60").stdin(Stdio::null());
    match config_dir {
        Some(dir) => cmd.env("CLAUDE_CONFIG_DIR", dir),
        None => cmd.env_remove("CLAUDE_CONFIG_DIR"),
    };
    let child = cmd.spawn().unwrap();
    let dir = f.claude().join("sessions");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("{}.json", child.id())),
        json!({"pid": child.id(), "sessionId": "x", "cwd": "/", "startedAt": 1}).to_string(),
    )
    .unwrap();
    child
}

#[test]
fn profile_use_is_refused_while_plain_claude_runs_in_the_home() {
    let f = Fixture::new();
    add_home_profile(&f, "home");
    f.add_profile("personal", Some("personal"));
    // A Claude Code of a runtime records itself in the shared sessions/ too: not the home's.
    let mut elsewhere = fake_claude(&f, Some(&f.runtime("work")));
    let mut plain = fake_claude(&f, None);
    let before = f.snapshot();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("home_busy"));
    assert_eq!(before, f.snapshot());
    plain.kill().unwrap();
    plain.wait().unwrap();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(
        out.status.success(),
        "a dead process's record and a runtime's process do not count: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elsewhere.kill().unwrap();
    elsewhere.wait().unwrap();
}

#[test]
fn a_claude_record_whose_pid_was_reused_does_not_make_the_home_busy() {
    let f = Fixture::new();
    add_home_profile(&f, "home");
    f.add_profile("personal", Some("personal"));
    let mut other = fake_claude(&f, None);
    // The record's start time is not the live process's: that Claude Code is gone.
    fs::write(
        f.claude()
            .join("sessions")
            .join(format!("{}.json", other.id())),
        json!({"pid": other.id(), "procStart": "1"}).to_string(),
    )
    .unwrap();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn profile_use_keeps_a_home_login_nobody_owns_only_where_it_is_told() {
    let f = Fixture::new();
    let home_login = fs::read(home_creds(&f)).unwrap();
    f.add_profile("personal", Some("personal"));
    let before = f.snapshot();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("login_in_use"));
    assert_eq!(before, f.snapshot());
    let out = f.run(
        &["profile", "use", "personal", "--save-home-as", "old-home"],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(f.canonical("old-home")).unwrap(), home_login);
    assert_eq!(
        fs::read(home_creds(&f)).unwrap(),
        fixture_credentials("personal")
    );
    assert_one_place_each(&f, "after use with --save-home-as");
}

#[test]
fn a_login_that_already_has_a_place_is_refused() {
    let f = Fixture::new();
    let home_login = fs::read(home_creds(&f)).unwrap();
    f.add_profile("work", Some("work"));
    let before = f.snapshot();
    for (name, bytes) in [
        ("copy-of-home", home_login.clone()),
        ("work-again", fixture_credentials("work")),
    ] {
        let out = f.run(
            &["profile", "add", name, "--credentials", "-"],
            bytes.as_slice(),
        );
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("login_in_use"), "{name}: {stderr}");
        assert!(stderr.contains("/login"), "{name}: says how: {stderr}");
        assert_eq!(before, f.snapshot(), "{name}: nothing written");
    }
    // --replace of another profile is refused the same way.
    f.add_profile("personal", Some("personal"));
    let out = f.run(
        &[
            "profile",
            "add",
            "personal",
            "--replace",
            "--credentials",
            "-",
        ],
        &fixture_credentials("work"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("login_in_use"));
    assert_eq!(
        fs::read(f.canonical("personal")).unwrap(),
        fixture_credentials("personal")
    );
    // So is a second profile of the home login.
    add_home_profile(&f, "home");
    let out = f.run(&["profile", "add", "home2", "--from-claude"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("login_in_use"));
    assert!(!f.store().join("profiles/home2").exists());
    assert_one_place_each(&f, "after the refusals");
}

#[test]
fn replace_keeps_the_replaced_login_aside_and_says_where() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let out = f.run(
        &["profile", "add", "work", "--replace", "--credentials", "-"],
        &fixture_credentials("personal"),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aside = f.kept_aside("work", "replaced");
    assert_eq!(aside.len(), 1);
    assert!(
        stderr.contains(&*aside[0].to_string_lossy()),
        "stderr names it: {stderr}"
    );
    assert_eq!(fs::read(&aside[0]).unwrap(), fixture_credentials("work"));
    assert_eq!(file_mode(&aside[0]), 0o600);
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("personal")
    );
    // The restore it suggests works: a login the user replaced is not a spent one.
    let out = f.run(
        &[
            "profile",
            "add",
            "work",
            "--replace",
            "--credentials",
            &aside[0].to_string_lossy(),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work")
    );
}

/// What `profile add NAME --from-claude` wrote before logins had one place: a copy.
fn old_style_copy(f: &Fixture, name: &str) {
    let dir = f.store().join("profiles").join(name);
    fs::create_dir_all(&dir).unwrap();
    set_mode(&f.store(), 0o700);
    set_mode(&f.store().join("profiles"), 0o700);
    set_mode(&dir, 0o700);
    fs::write(dir.join("profile.json"), b"{\"env\":{}}").unwrap();
    fs::copy(home_creds(f), dir.join("credentials.json")).unwrap();
    set_mode(&dir.join("credentials.json"), 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_store_copy_of_the_home_login_becomes_the_home_profile() {
    let f = Fixture::new();
    let home_login = fs::read(home_creds(&f)).unwrap();
    old_style_copy(&f, "work");
    old_style_copy(&f, "work2");
    let status = f.status();
    assert_eq!(profile_of(&status, "work")["home"], json!(true));
    assert_eq!(profile_of(&status, "work2")["home"], json!(false));
    assert!(!f.canonical("work").exists());
    assert!(!f.canonical("work2").exists());
    assert_eq!(fs::read(home_creds(&f)).unwrap(), home_login);
    assert_one_place_each(&f, "after the migration");
}

#[test]
fn a_profile_of_the_home_account_with_another_login_is_flagged() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    write_account(
        &f,
        "work",
        "home@example.com",
        "00000000-0000-4000-8000-00000000home",
    );
    let status = f.status();
    assert_eq!(
        profile_of(&status, "work")["warnings"][0]["code"],
        json!("same_account_as_home")
    );
    let out = f.run(&["profile", "list"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning:") && text.contains("/login"),
        "{text}"
    );
}

/// A `profile use` killed midway is finished by the next command, and every login ends in one
/// place: also when plain `claude` refreshed the home login in between.
#[test]
fn a_profile_use_cut_short_is_finished_by_the_next_command() {
    for refreshed_meanwhile in [false, true] {
        let f = Fixture::new();
        add_home_profile(&f, "home");
        f.add_profile("personal", Some("personal"));
        let mut home_login = fs::read(home_creds(&f)).unwrap();
        // As a `profile use personal` leaves things when killed after its first step: the
        // journal, and the home login saved to its profile while still in the home.
        fs::write(f.canonical("home"), &home_login).unwrap();
        fs::write(
            f.store().join("switch.json"),
            json!({"to": "personal", "from": "home", "to_has_login": true}).to_string(),
        )
        .unwrap();
        if refreshed_meanwhile {
            let mut doc: Value = serde_json::from_slice(&home_login).unwrap();
            doc["claudeAiOauth"]["refreshToken"] = json!("sk-ant-ort01-HOMEREFRESH9-meanwhile");
            home_login = serde_json::to_vec(&doc).unwrap();
            write_by_rename(&home_creds(&f), &home_login);
        }
        let status = f.status();
        assert_eq!(profile_of(&status, "personal")["home"], json!(true));
        assert!(!f.store().join("switch.json").exists());
        assert_eq!(
            fs::read(f.canonical("home")).unwrap(),
            home_login,
            "the home's newest login went to its profile (refreshed: {refreshed_meanwhile})"
        );
        assert_eq!(
            fs::read(home_creds(&f)).unwrap(),
            fixture_credentials("personal")
        );
        assert!(!f.canonical("personal").exists());
        assert_one_place_each(&f, "after the finish");
    }
    // Killed later: `personal`'s login already in the home (the journal says the home was
    // saved), and still in the store; then, in one variant, plain claude refreshed it.
    for refreshed_meanwhile in [false, true] {
        let f = Fixture::new();
        add_home_profile(&f, "home");
        f.add_profile("personal", Some("personal"));
        let home_login = fs::read(home_creds(&f)).unwrap();
        fs::write(f.canonical("home"), &home_login).unwrap();
        let mut in_home = fixture_credentials("personal");
        if refreshed_meanwhile {
            let mut doc: Value = serde_json::from_slice(&in_home).unwrap();
            doc["claudeAiOauth"]["refreshToken"] = json!("sk-ant-ort01-PERSONALREFRESH9-plain");
            in_home = serde_json::to_vec(&doc).unwrap();
        }
        write_by_rename(&home_creds(&f), &in_home);
        fs::write(
            f.store().join("switch.json"),
            json!({"to": "personal", "from": "home", "to_has_login": true,
                   "home_saved": true, "to_in_home": refreshed_meanwhile})
            .to_string(),
        )
        .unwrap();
        f.status();
        assert_eq!(fs::read(f.canonical("home")).unwrap(), home_login);
        assert_eq!(
            fs::read(home_creds(&f)).unwrap(),
            in_home,
            "the home keeps personal's newest login, never its spent store copy"
        );
        assert!(!f.canonical("personal").exists());
        assert!(!f.store().join("switch.json").exists());
        assert_one_place_each(&f, "after the later finish");
    }
}

/// `profile use` writes the home's files under Claude Code's own lock directories: a held one
/// makes it wait and then refuse, a stale one (over a minute old) is taken over, and a stale
/// one that is not an empty directory never makes it spin.
#[test]
fn profile_use_takes_claude_code_s_locks_on_the_home_files() {
    let f = Fixture::new();
    add_home_profile(&f, "home");
    f.add_profile("personal", Some("personal"));
    let lock = f.home().join(".claude.json.lock");
    fs::create_dir(&lock).unwrap();
    let before = f.snapshot();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("home_busy"));
    assert_eq!(
        before,
        f.snapshot(),
        "nothing moved while Claude Code held its lock"
    );
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    fs::File::open(&lock).unwrap().set_modified(old).unwrap();
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lock.exists(), "the lock is released after the move");
    assert_one_place_each(&f, "after a use under the locks");
    // A stale lock that cannot be removed as a lock directory: refused in bounded time.
    let refresh_lock = f.claude().join(".oauth_refresh.lock");
    fs::write(&refresh_lock, b"not a directory").unwrap();
    fs::File::open(&refresh_lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let started = std::time::Instant::now();
    let out = f.run(&["profile", "use", "home"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("home_busy"));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
