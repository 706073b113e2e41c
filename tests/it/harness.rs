//! The harness itself: the environment every command of the binary gets, and what a failed
//! assertion on a response shows.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::json;

use crate::support::*;

/// The names of the variables `env` printed.
fn names(stdout: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

#[test]
fn every_command_of_the_binary_sees_the_fixture_s_environment_only() {
    let mut f = Fixture::new();
    f.set_env("EXTRA", "yes");
    f.add_profile("work", Some("work"));
    let bin = Bin::of(&f).with_env("CLAUTH_LINK_MODE", "fake");

    // What the builder asks for: no variable the program reads has a value but the fixture's.
    let cmd = bin.command(&["status"]);
    let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    let home = f.home();
    let store = f.store();
    for key in PROGRAM_ENV {
        let want: Option<&OsStr> = match *key {
            "HOME" => Some(home.as_os_str()),
            "CLAUTH_HOME" => Some(store.as_os_str()),
            "CLAUTH_LINK_MODE" => Some(OsStr::new("fake")),
            "HTTPS_PROXY" => Some(OsStr::new(NO_NETWORK_PROXY)),
            _ => None,
        };
        // A removed variable shows as removed, or not at all once the environment is cleared.
        let got = envs
            .iter()
            .rev()
            .find(|(k, _)| *k == OsStr::new(key))
            .and_then(|(_, v)| *v);
        assert_eq!(got, want, "{key}");
    }

    // What a program started that way gets: nothing of the test process's but PATH, and a proxy
    // that lets no request leave the machine.
    let wanted: BTreeSet<String> = [
        "PATH",
        "HOME",
        "CLAUTH_HOME",
        "HTTPS_PROXY",
        "EXTRA",
        "CLAUTH_LINK_MODE",
    ]
    .map(String::from)
    .into();
    let mut env = std::process::Command::new("env");
    let out = bin.apply_env(&mut env).output().unwrap();
    assert_eq!(names(&out.stdout), wanted);

    // And what the binary passes on to the command it runs, from the std and the assert_cmd
    // builder alike: the same, with the runtime's config directory and the profile's name.
    let mut through_run = wanted.clone();
    through_run.insert("CLAUDE_CONFIG_DIR".into());
    through_run.insert("CLAUTH_PROFILE".into());
    let out = bin.output(&["run", "work", "--", "env"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(names(&out.stdout), through_run);
    let out = f
        .command()
        .args(["run", "work", "--link-mode", "fake", "--", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    through_run.remove("CLAUTH_LINK_MODE");
    assert_eq!(names(&out.stdout), through_run);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("HOME={}\n", f.home().display()))
            && printed.contains(&format!("CLAUTH_HOME={}\n", f.store().display()))
            && printed.contains("EXTRA=yes\n"),
        "{printed}"
    );
}

#[test]
fn a_failed_assertion_on_a_response_shows_the_call_and_the_fixture_s_files() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let response = f.request("acquire", json!({"profile": "nobody"}));
    let failure = catch_unwind(AssertUnwindSafe(|| response.ok())).unwrap_err();
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    for wanted in [
        "verb: acquire",
        r#"request: {"profile":"nobody"}"#,
        "exit: Some(",
        "profile_not_found",
        "stderr: ",
        "home/.claude/  dir",
        "home/.claude/.credentials.json  file ",
        "store/profiles/work/credentials.json  file ",
    ] {
        assert!(
            message.contains(wanted),
            "{wanted:?} missing from:\n{message}"
        );
    }
    // Sizes and modes, never contents.
    assert!(
        !message.contains("sk-ant-") && !message.contains("accessToken"),
        "{message}"
    );
}
