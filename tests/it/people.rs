//! The command line as a person meets it: tables and sentences instead of protocol text,
//! answers at once on a terminal, typos caught, profiles changed one variable at a time,
//! removed profiles kept aside.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `fixtures/credentials/<name>.json` with its access token expired long ago.
fn expired(name: &str) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&fixture_credentials(name)).unwrap();
    doc["claudeAiOauth"]["expiresAt"] = json!(1_000);
    serde_json::to_vec(&doc).unwrap()
}

/// Records `email` as the account of `profile`, the way a session does: Claude Code writes
/// `oauthAccount` into the runtime's `.claude.json`, and the release saves it to the profile.
fn record_account(f: &Fixture, profile: &str, email: &str, org: &str) {
    let a = f.acquire(profile, "fake");
    let path = f.runtime(profile).join(".claude.json");
    let mut doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    doc["oauthAccount"] = json!({
        "accountUuid": format!("00000000-0000-4000-8000-{:0>12}", profile.len()),
        "emailAddress": email,
        "organizationName": org,
    });
    write_by_rename(&path, &serde_json::to_vec(&doc).unwrap());
    f.release(&session_of(&a));
}

fn row<'a>(table: &'a str, profile: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.trim_start_matches(['*', ' ']).split_whitespace().next() == Some(profile))
        .unwrap_or_else(|| panic!("no row for {profile}:\n{table}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// A store with a home profile, a logged-in profile whose account a session recorded, one
/// whose access token expired, a gateway and one not logged in yet.
fn several_accounts() -> Fixture {
    let f = Fixture::new();
    ok(f.run(&["profile", "add", "home", "--from-claude"], b""));
    f.add_profile("work", Some("work"));
    record_account(&f, "work", "me@work.example", "Acme");
    ok(f.run(
        &["profile", "add", "old", "--credentials", "-"],
        &expired("personal"),
    ));
    ok(f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env",
            "ANTHROPIC_BASE_URL=https://llm.example.com",
            "--env",
            "ANTHROPIC_AUTH_TOKEN=gateway-secret-value",
        ],
        b"",
    ));
    f.add_profile("fresh", None);
    f
}

#[test]
fn profile_list_is_a_table_of_account_plan_login_and_sessions() {
    let f = several_accounts();
    let a = f.acquire("work", "real");
    let table = stdout(&ok(f.run(&["profile", "list"], b"")));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["PROFILE", "ACCOUNT", "PLAN", "LOGIN", "SESSIONS"],
        "{table}"
    );
    assert_eq!(
        row(&table, "home"),
        [
            "*",
            "home",
            "home@example.com (Home)",
            "pro",
            row(&table, "home")[4],
            "0"
        ],
        "{table}"
    );
    assert!(row(&table, "home")[4].starts_with("valid for "), "{table}");
    let work = row(&table, "work");
    assert_eq!(work[1..4], ["me@work.example (Acme)", "team", work[3]]);
    assert_eq!(work[0], "work", "only the home profile is marked: {table}");
    assert_eq!(work[2], "team");
    assert!(
        work[3].starts_with("valid for ") && work[3].ends_with(" d"),
        "{table}"
    );
    assert_eq!(work[4], "1", "one live session: {table}");
    let old = row(&table, "old");
    assert_eq!(old[2], "max");
    assert!(
        old[3].starts_with("expired ") && old[3].ends_with(" ago"),
        "{table}"
    );
    assert_eq!(
        row(&table, "gw")[1..],
        ["-", "-", "gateway", "0"],
        "{table}"
    );
    assert_eq!(
        row(&table, "fresh")[1..],
        ["-", "-", "none", "0"],
        "{table}"
    );
    assert!(table.contains("* the home profile"), "{table}");
    for protocolish in ["epoch ms", "Some(", "session(s)", "gateway-secret-value"] {
        assert!(!table.contains(protocolish), "{protocolish}: {table}");
    }

    // The JSON stays the machine's form, with the account beside the credentials.
    let list: Value =
        serde_json::from_slice(&ok(f.run(&["profile", "list", "--json"], b"")).stdout).unwrap();
    let work = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == json!("work"))
        .unwrap();
    assert_eq!(
        work["account"],
        json!({"email": "me@work.example", "organization": "Acme"})
    );
    assert_eq!(work["credentials"]["subscription_type"], json!("team"));
    let status = f.status();
    validate(
        "status.response",
        &json!({"protocol": 1, "ok": true, "profiles": status["profiles"], "credential_store": "file"}),
    );
    assert_eq!(status["profiles"][0]["name"], json!("fresh"));
    assert_eq!(status["profiles"][0]["account"], Value::Null);
    f.release(&session_of(&a));
}

#[test]
fn profile_show_says_account_login_and_sessions_in_words() {
    let f = several_accounts();
    let mut owner = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let a = f
        .request(
            "acquire",
            json!({"profile": "work", "owner_pid": owner.id(), "link_mode": "real"}),
        )
        .ok();
    let show = stdout(&ok(f.run(&["profile", "show", "work"], b"")));
    assert!(
        show.contains("account:     me@work.example (Acme)"),
        "{show}"
    );
    assert!(show.contains("plan:        team"), "{show}");
    assert!(
        show.contains("the access token is valid for ") && show.contains("2030-01-01 00:00 UTC"),
        "{show}"
    );
    assert!(show.contains("sessions:    1"), "{show}");
    let line = show
        .lines()
        .find(|l| l.contains(a["session"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        line.contains(" ago, until process ") && line.contains(&format!(" {} ends", owner.id())),
        "{show}"
    );
    assert!(!show.contains("Some(") && !show.contains("epoch"), "{show}");
    f.release(&session_of(&a));
    owner.kill().unwrap();
    owner.wait().unwrap();

    let old = stdout(&ok(f.run(&["profile", "show", "old"], b"")));
    assert!(
        old.contains("the access token expired ") && old.contains("1970-01-01 00:00 UTC"),
        "{old}"
    );
    let gw = stdout(&ok(f.run(&["profile", "show", "gw"], b"")));
    assert!(
        gw.contains("login:       authenticates through its gateway https://llm.example.com"),
        "{gw}"
    );
    assert!(
        !gw.contains("log in") && !gw.contains("gateway-secret-value"),
        "{gw}"
    );
    let fresh = stdout(&ok(f.run(&["profile", "show", "fresh"], b"")));
    assert!(
        fresh.contains("none yet (log in with /login inside `clauth-helper run fresh`)"),
        "{fresh}"
    );
    let home = stdout(&ok(f.run(&["profile", "show", "home"], b"")));
    assert!(
        home.contains("account:     home@example.com (Home)"),
        "{home}"
    );
    assert!(home.contains("the home profile"), "{home}");
}

#[test]
fn a_gateway_profile_is_said_to_authenticate_through_its_gateway() {
    let f = Fixture::new();
    let out = ok(f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env",
            "ANTHROPIC_BASE_URL=https://llm.example.com",
            "--env",
            "ANTHROPIC_AUTH_TOKEN=gateway-secret-value",
        ],
        b"",
    ));
    let said = stderr(&out);
    assert!(
        said.contains("authenticates through its gateway https://llm.example.com"),
        "{said}"
    );
    assert!(!said.contains("log in inside") && !said.contains("gateway-secret-value"));
}

#[test]
fn protocol_verbs_on_a_terminal_answer_at_once() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let bin = Bin::of(&f);
    for verb in ["acquire", "tick", "release", "capabilities"] {
        let (shown, code) = bin.on_terminal(&[verb], b"");
        assert_eq!(code, Some(2), "{verb}: {shown}");
        assert!(
            shown.contains(&format!("clauth-helper {verb} is a protocol verb"))
                && shown.contains("clauth-helper run PROFILE"),
            "{verb}: {shown}"
        );
        assert!(!shown.contains("\"ok\""), "no protocol answer: {shown}");
    }
    assert!(
        !f.store().join("runtimes/work").exists(),
        "nothing was acquired"
    );

    let (shown, code) = bin.on_terminal(&["status"], b"");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("PROFILE") && shown.contains("work"),
        "{shown}"
    );
    assert!(!shown.contains("\"protocol\""), "{shown}");
    // Piped, it is the protocol as ever.
    f.request("status", json!({})).ok();
}

#[test]
fn reading_credentials_or_env_from_a_terminal_is_refused_at_once() {
    let f = Fixture::new();
    f.add_profile("gw", None);
    let bin = Bin::of(&f);
    let before = f.snapshot();
    let (shown, code) = bin.on_terminal(&["profile", "add", "x", "--credentials", "-"], b"");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("invalid_credentials")
            && shown.contains("clauth-helper profile add x --credentials - < credentials.json"),
        "{shown}"
    );
    for args in [
        &["profile", "add", "y", "--env-file", "-"][..],
        &["profile", "set-env", "gw", "--env-file", "-"][..],
    ] {
        let (shown, code) = bin.on_terminal(args, b"");
        assert_eq!(code, Some(1), "{args:?}: {shown}");
        assert!(
            shown.contains("invalid_request") && shown.contains("a terminal"),
            "{shown}"
        );
    }
    assert_eq!(before, f.snapshot(), "nothing was written");
    // From a pipe it reads as before.
    ok(f.run(
        &["profile", "add", "x", "--credentials", "-"],
        &fixture_credentials("work"),
    ));
}

#[test]
fn a_mistyped_command_is_answered_with_the_one_meant() {
    let f = Fixture::new();
    let out = f.run(&["profle", "list"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "no protocol answer: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("'profle' is not a command; did you mean 'profile'?"),
        "{}",
        stderr(&out)
    );
    let (shown, code) = Bin::of(&f).on_terminal(&["stauts"], b"");
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("did you mean 'status'?"), "{shown}");
    // A program that sends a verb this binary does not know still gets the protocol's answer.
    let r = f.raw("stauts", b"{}");
    r.err("unknown_verb");
    assert!(r.stderr.contains("did you mean 'status'?"), "{}", r.stderr);
    // A word that is no plain word is not repeated.
    let out = f.run(&["sk-ant-oat01-not-a-command/x", "y"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("that is not a command"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_mistyped_profile_is_answered_with_the_one_meant_and_the_profiles_there_are() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let out = f.run(&["run", "wrok", "--", "true"], b"");
    assert_eq!(out.status.code(), Some(125));
    let said = stderr(&out);
    assert!(
        said.contains("profile_not_found")
            && said.contains("did you mean work?")
            && said.contains("the profiles are: personal, work"),
        "{said}"
    );
    assert!(!said.contains("profile add wrok"), "{said}");
    let out = f.run(&["profile", "show", "nobody"], b"");
    assert!(
        stderr(&out).contains("create it with `clauth-helper profile add nobody`"),
        "{}",
        stderr(&out)
    );
    // Removing what is not there suggests nothing to create.
    ok(f.run(&["profile", "remove", "personal"], b""));
    let out = f.run(&["profile", "remove", "personal"], b"");
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("it was removed") && said.contains("profile restore personal"),
        "{said}"
    );
    assert!(!said.contains("profile add"), "{said}");
    let out = f.run(&["profile", "remove", "nobody"], b"");
    assert!(
        stderr(&out).contains("so nothing was removed") && !stderr(&out).contains("profile add"),
        "{}",
        stderr(&out)
    );
}

fn env_of(f: &Fixture, profile: &str) -> Value {
    let path = f
        .store()
        .join("profiles")
        .join(profile)
        .join("profile.json");
    serde_json::from_slice::<Value>(&fs::read(path).unwrap()).unwrap()["env"].clone()
}

#[test]
fn set_env_and_unset_env_change_one_variable_and_keep_the_others() {
    let f = Fixture::new();
    f.add_gateway_profile("gw");
    ok(f.run(
        &["profile", "set-env", "gw", "MODEL=sonnet", "EXTRA=no"],
        b"",
    ));
    assert_eq!(
        env_of(&f, "gw"),
        json!({"ANTHROPIC_BASE_URL": "http://127.0.0.1:7777", "EXTRA": "no", "MODEL": "sonnet"})
    );
    let file = f.dir.path().join("vars.env");
    fs::write(&file, "# secret\nANTHROPIC_AUTH_TOKEN=gw-secret-value\n").unwrap();
    let out = ok(f.run(
        &[
            "profile",
            "set-env",
            "gw",
            "--env-file",
            file.to_str().unwrap(),
        ],
        b"",
    ));
    assert!(!stderr(&out).contains("gw-secret-value"));
    assert_eq!(
        env_of(&f, "gw")["ANTHROPIC_AUTH_TOKEN"],
        json!("gw-secret-value")
    );
    let out = ok(f.run(&["profile", "unset-env", "gw", "EXTRA", "NEVER_SET"], b""));
    assert!(
        stderr(&out).contains("does not set NEVER_SET"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env_of(&f, "gw"),
        json!({"ANTHROPIC_AUTH_TOKEN": "gw-secret-value", "ANTHROPIC_BASE_URL": "http://127.0.0.1:7777", "MODEL": "sonnet"})
    );

    // Bad input and a live session change nothing.
    let before = f.snapshot();
    for args in [
        &["profile", "set-env", "gw", "NO_EQUALS"][..],
        &["profile", "set-env", "gw", "=x"][..],
        &["profile", "set-env", "gw"][..],
        &["profile", "set-env", "nobody", "A=1"][..],
    ] {
        let out = f.run(args, b"");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("error["),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(before, f.snapshot());
    let a = f.acquire("gw", "real");
    let before = fs::read(f.store().join("profiles/gw/profile.json")).unwrap();
    for args in [
        &["profile", "set-env", "gw", "A=1"][..],
        &["profile", "unset-env", "gw", "MODEL"][..],
    ] {
        let out = f.run(args, b"");
        assert!(stderr(&out).contains("profile_busy"), "{}", stderr(&out));
    }
    assert_eq!(
        before,
        fs::read(f.store().join("profiles/gw/profile.json")).unwrap()
    );
    f.release(&session_of(&a));
}

#[test]
fn rename_moves_the_login_and_everything_else_and_waits_for_sessions() {
    let f = Fixture::new();
    ok(f.run(&["profile", "add", "home", "--from-claude"], b""));
    f.add_profile("work", Some("work"));
    record_account(&f, "work", "me@work.example", "Acme");
    ok(f.run(&["profile", "set-env", "work", "MODEL=sonnet"], b""));
    let a = f.acquire("work", "real");
    let out = f.run(&["profile", "rename", "work", "acme"], b"");
    assert!(stderr(&out).contains("profile_busy"), "{}", stderr(&out));
    assert!(f.canonical("work").exists());
    f.release(&session_of(&a));

    let out = f.run(&["profile", "rename", "work", "home"], b"");
    assert!(stderr(&out).contains("profile_exists"), "{}", stderr(&out));
    ok(f.run(&["profile", "rename", "work", "acme"], b""));
    assert!(!f.store().join("profiles/work").exists());
    assert_eq!(
        fs::read(f.canonical("acme")).unwrap(),
        fixture_credentials("work")
    );
    assert_eq!(env_of(&f, "acme"), json!({"MODEL": "sonnet"}));
    let a = f.acquire("acme", "fake");
    let doc: Value =
        serde_json::from_slice(&fs::read(f.runtime("acme").join(".claude.json")).unwrap()).unwrap();
    assert_eq!(
        doc["oauthAccount"]["emailAddress"],
        json!("me@work.example")
    );
    assert_eq!(a["env"]["CLAUTH_PROFILE"], json!("acme"));
    f.release(&session_of(&a));
    f.request("acquire", json!({"profile": "work"}))
        .err("profile_not_found");

    // The home profile stays the home profile under its new name.
    ok(f.run(&["profile", "rename", "home", "mine"], b""));
    let status = f.status();
    let mine = status["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == json!("mine"))
        .unwrap();
    assert_eq!(mine["home"], json!(true));
    assert_eq!(mine["credentials"]["present"], json!(true));
}

/// A directory on PATH with a `claude` that prints its arguments, one a line, to `file`.
fn fake_claude(f: &Fixture, file: &Path) -> String {
    let dir = f.dir.path().join("bin");
    fs::create_dir_all(&dir).unwrap();
    let claude = dir.join("claude");
    fs::write(
        &claude,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {}\necho \"profile=$CLAUTH_PROFILE\" >> {}\n",
            file.display(),
            file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&claude, fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn arguments_after_the_separator_that_start_with_a_dash_are_claudes() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let seen = f.dir.path().join("seen");
    let bin = Bin::of(&f).with_env("PATH", &fake_claude(&f, &seen));
    for (args, want) in [
        (
            &["run", "work", "--", "--continue"][..],
            "--continue\nprofile=work\n",
        ),
        (
            &["run", "work", "--", "-p", "hi there"][..],
            "-p\nhi there\nprofile=work\n",
        ),
        (&["run", "work"][..], "profile=work\n"),
        (
            &["run", "work", "--", "claude", "--resume"][..],
            "--resume\nprofile=work\n",
        ),
    ] {
        let out = bin.output(args, b"");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(fs::read_to_string(&seen).unwrap(), want, "{args:?}");
    }
    // `-p` before the separator is clap's to refuse, and its tip now does what it says.
    let out = bin.output(&["run", "work", "-p", "hi"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("-- -p"), "{}", stderr(&out));
}

#[test]
fn the_session_knows_its_profile() {
    let f = Fixture::new();
    ok(f.run(&["profile", "add", "home", "--from-claude"], b""));
    f.add_profile("work", Some("work"));
    let caps = f.request("capabilities", json!({})).ok();
    assert!(
        caps["features"]
            .as_array()
            .unwrap()
            .contains(&json!("profile_env"))
    );
    // A value the profile sets for itself is not the one the session sees.
    ok(f.run(&["profile", "set-env", "work", "CLAUTH_PROFILE=other"], b""));
    for profile in ["work", "home"] {
        let a = f.acquire(profile, "real");
        assert_eq!(a["env"]["CLAUTH_PROFILE"], json!(profile), "{a}");
        f.release(&session_of(&a));
        let out = ok(f.run(
            &["run", profile, "--", "sh", "-c", "echo \"$CLAUTH_PROFILE\""],
            b"",
        ));
        assert_eq!(stdout(&out), format!("{profile}\n"));
    }
}

#[test]
fn run_says_once_what_the_session_could_not_save() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    // The command writes a login that is no login and a .claude.json that does not parse.
    let script = "printf '{\"claudeAiOauth\":{}}' > \"$CLAUDE_CONFIG_DIR/.tmp-c\" && mv \"$CLAUDE_CONFIG_DIR/.tmp-c\" \"$CLAUDE_CONFIG_DIR/.credentials.json\"; printf '{not json' > \"$CLAUDE_CONFIG_DIR/.tmp-d\" && mv \"$CLAUDE_CONFIG_DIR/.tmp-d\" \"$CLAUDE_CONFIG_DIR/.claude.json\"";
    let out = f.run(
        &[
            "run",
            "work",
            "--link-mode",
            "real",
            "--",
            "sh",
            "-c",
            script,
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    let rejected = "profile work: the session's login was not saved";
    assert_eq!(said.matches(rejected).count(), 1, "{said}");
    assert!(
        said.contains("claudeAiOauth.accessToken is missing"),
        "{said}"
    );
    assert_eq!(
        said.matches(".claude.json does not parse").count(),
        1,
        "{said}"
    );
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work"),
        "the profile's login was kept"
    );

    // A refresh keeps the replaced pair aside, and says where.
    let refreshed = f.dir.path().join("refreshed.json");
    fs::write(&refreshed, fixture_credentials("work-refreshed")).unwrap();
    let script = format!(
        "cp {} \"$CLAUDE_CONFIG_DIR/.tmp-c\" && mv \"$CLAUDE_CONFIG_DIR/.tmp-c\" \"$CLAUDE_CONFIG_DIR/.credentials.json\"",
        refreshed.display()
    );
    let out = f.run(&["run", "work", "--", "sh", "-c", &script], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert_eq!(
        said.matches("the pair it replaced is kept in").count(),
        1,
        "{said}"
    );
    assert_eq!(f.kept_aside("work", "replaced").len(), 1);
    // A session that writes nothing says nothing.
    let quiet = f.run(&["run", "work", "--", "true"], b"");
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
}

#[test]
fn run_makes_the_claude_home_a_new_user_does_not_have_yet() {
    let f = Fixture::without_claude_home();
    f.add_profile("fresh", None);
    let out = f.run(&["run", "fresh", "--", "true"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("created"), "{}", stderr(&out));
    assert!(f.claude().is_dir());
    assert_eq!(file_mode(&f.claude()), 0o700);
    // The protocol still answers that it is missing: a program chooses for itself.
    fs::remove_dir_all(f.claude()).unwrap();
    f.request("acquire", json!({"profile": "fresh"}))
        .err("claude_home_missing");
}

fn removed(f: &Fixture) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = fs::read_dir(f.store().join("removed"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    all.sort();
    all
}

#[test]
fn remove_asks_on_a_terminal_and_keeps_the_login_aside_for_restore() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("fresh", None);
    let bin = Bin::of(&f);
    let (shown, code) = bin.on_terminal(&["profile", "remove", "work"], b"n\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("Remove it?") && shown.contains("was not removed"),
        "{shown}"
    );
    assert!(f.canonical("work").exists());
    let (shown, code) = bin.on_terminal(&["profile", "remove", "work"], b"y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("profile restore work"), "{shown}");
    assert!(!f.store().join("profiles/work").exists());
    let kept = removed(&f);
    assert_eq!(kept.len(), 1);
    assert_eq!(file_mode(&f.store().join("removed")), 0o700);
    assert_eq!(file_mode(&kept[0]), 0o700);
    assert_eq!(
        fs::read(kept[0].join("credentials.json")).unwrap(),
        fixture_credentials("work")
    );
    // Without a login of its own, or with --yes, nothing is asked.
    let (shown, code) = bin.on_terminal(&["profile", "remove", "fresh"], b"");
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("Remove it?"), "{shown}");

    ok(f.run(&["profile", "restore", "work"], b""));
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work")
    );
    f.release(&session_of(&f.acquire("work", "real")));
    let (shown, code) = bin.on_terminal(&["profile", "remove", "work", "--yes"], b"");
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("Remove it?"), "{shown}");

    // The same login added elsewhere meanwhile has its place there: restoring is refused.
    f.add_profile("again", Some("work"));
    let before = f.snapshot();
    let out = f.run(&["profile", "restore", "work"], b"");
    assert!(stderr(&out).contains("login_in_use"), "{}", stderr(&out));
    assert_eq!(before, f.snapshot());
    let out = f.run(&["profile", "restore", "never"], b"");
    assert!(
        stderr(&out).contains("profile_not_found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn gc_deletes_removed_profiles_kept_for_more_than_thirty_days() {
    let f = Fixture::new();
    f.add_profile("old", Some("work"));
    f.add_profile("recent", Some("personal"));
    ok(f.run(&["profile", "remove", "old"], b""));
    ok(f.run(&["profile", "remove", "recent"], b""));
    let kept = removed(&f);
    let old = kept
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("old-"))
        .unwrap();
    let long_ago = f.store().join("removed/old-1000");
    fs::rename(old, &long_ago).unwrap();
    let out = ok(f.run(&["gc", "--json"], b""));
    let collected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(collected["removed_deleted"], json!(["old-1000"]));
    assert!(!long_ago.exists());
    assert_eq!(removed(&f).len(), 1, "the recent one stays");
}

#[test]
fn gc_tells_a_person_in_a_sentence_and_a_program_in_json() {
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
    child.kill().unwrap();
    child.wait().unwrap();
    let (shown, code) = Bin::of(&f).on_terminal(&["gc"], b"");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("Reclaimed the runtime of work") && shown.contains("pruned 1 dead session"),
        "{shown}"
    );
    assert!(!shown.contains('{'), "{shown}");
    let (shown, _) = Bin::of(&f).on_terminal(&["gc"], b"");
    assert!(shown.contains("Nothing to reclaim"), "{shown}");
    let (shown, _) = Bin::of(&f).on_terminal(&["gc", "--json"], b"");
    let v: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(v["runtimes_removed"], json!([]));
}

#[test]
fn the_completion_helper_offers_profiles_where_a_command_takes_one() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let complete = |words: &[&str], index: &str| {
        let mut args = vec!["__complete-profiles", index];
        args.extend(words);
        f.run(&args, b"")
    };
    for (words, index) in [
        (&["clauth-helper", "run", ""][..], "2"),
        (
            &["clauth-helper", "run", "--link-mode", "fake", "w"][..],
            "4",
        ),
        (&["clauth-helper", "profile", "show", ""][..], "3"),
        (
            &["clauth-helper", "profile", "remove", "--yes", ""][..],
            "4",
        ),
        (&["clauth-helper", "profile", "rename", ""][..], "3"),
        (
            &["clauth-helper", "profile", "use", "x", "--save-home-as", ""][..],
            "5",
        ),
    ] {
        let out = complete(words, index);
        assert!(out.status.success(), "{words:?}");
        assert_eq!(stdout(&out), "personal\nwork\n", "{words:?}");
    }
    for (words, index) in [
        (&["clauth-helper", ""][..], "1"),
        (&["clauth-helper", "run", "work", ""][..], "3"),
        (&["clauth-helper", "run", "--link-mode", ""][..], "3"),
        (&["clauth-helper", "run", "--", ""][..], "3"),
        (&["clauth-helper", "profile", "add", ""][..], "3"),
        (&["clauth-helper", "run", "-"][..], "2"),
    ] {
        let out = complete(words, index);
        assert_eq!(out.status.code(), Some(1), "{words:?}");
        assert!(out.stdout.is_empty(), "{words:?}");
    }
}

/// The binary's directory first on PATH, so scripts find `clauth-helper` by name.
fn path_with_bin() -> String {
    format!(
        "{}:{}",
        bin_path().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn shell(f: &Fixture, program: &str, script: &str) -> String {
    let mut cmd = std::process::Command::new(program);
    cmd.args(["-c", script]);
    Bin::of(f)
        .with_env("PATH", &path_with_bin())
        .apply_env(&mut cmd);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("`{program}` is needed for its completion test (CI installs it): {e}")
    });
    assert!(out.status.success(), "{program}: {}", stderr(&out));
    stdout(&out)
}

fn completion_file(f: &Fixture, sh: &str) -> PathBuf {
    let out = ok(f.run(&["completions", sh], b""));
    let path = f.dir.path().join(format!("completion.{sh}"));
    fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn bash_completes_profile_names_and_still_the_commands() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let file = completion_file(&f, "bash");
    let complete = |line: &str| {
        shell(
            &f,
            "bash",
            &format!(
                "source {}; COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _clauth__helper_profiles clauth-helper \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ),
        )
    };
    assert_eq!(complete("clauth-helper run ''"), "personal\nwork\n");
    assert_eq!(complete("clauth-helper run w"), "work\n");
    assert_eq!(complete("clauth-helper profile show p"), "personal\n");
    assert_eq!(
        complete("clauth-helper profile remove ''"),
        "personal\nwork\n"
    );
    assert!(complete("clauth-helper pro").contains("profile"));
    assert!(complete("clauth-helper profile re").contains("rename"));
}

#[test]
fn zsh_completes_profile_names() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let file = completion_file(&f, "zsh");
    // The completion system's builtins are stood in for: compadd prints what it is given.
    let complete = |words: &str, current: usize| {
        shell(
            &f,
            "zsh",
            &format!(
                "compdef() {{ }}; compadd() {{ shift; print -l -- ${{(P)1}} }}; _clauth-helper_static() {{ print static }}; source {}; _clauth-helper_static() {{ print static }}; words=({words}); CURRENT={current}; _clauth-helper",
                file.display()
            ),
        )
    };
    assert_eq!(complete("clauth-helper run ''", 3), "personal\nwork\n");
    assert_eq!(
        complete("clauth-helper profile use ''", 4),
        "personal\nwork\n"
    );
    assert_eq!(complete("clauth-helper pro", 2), "static\n");
}

#[test]
fn fish_completes_profile_names() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let file = completion_file(&f, "fish");
    let complete = |line: &str| {
        shell(
            &f,
            "fish",
            &format!("source {}; complete -C '{line}'", file.display()),
        )
    };
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&complete("clauth-helper run ")), ["personal", "work"]);
    assert_eq!(names(&complete("clauth-helper profile rename w")), ["work"]);
    assert!(names(&complete("clauth-helper ")).contains(&"profile".to_owned()));
}

#[test]
fn a_damaged_profile_json_does_not_keep_the_list_from_listing() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("broken", Some("personal"));
    fs::write(f.store().join("profiles/broken/profile.json"), "{not json").unwrap();
    let table = stdout(&ok(f.run(&["profile", "list"], b"")));
    assert_eq!(row(&table, "broken")[1..3], ["-", "max"], "{table}");
    assert_eq!(row(&table, "work")[2], "team", "{table}");
    let out = f.run(&["profile", "show", "broken"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
}
