//! `run PROFILE -- COMMAND`: the everyday way to start Claude Code under a profile.

use std::fs;
use std::time::Duration;

use crate::both_modes;
use crate::serve::clauth_kill;
use crate::support::*;

both_modes!(run_exits_with_the_status_of_the_command, |mode: &str| {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let out = f.run(
        &[
            "run",
            "work",
            "--link-mode",
            mode,
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(7));
    let out = f.run(&["run", "work", "--", "true"], b"");
    assert_eq!(out.status.code(), Some(0));
    let out = f.run(&["run", "work", "--", "sh", "-c", "kill -TERM $$"], b"");
    assert_eq!(
        out.status.code(),
        Some(128 + 15),
        "killed by signal N exits 128+N"
    );
    assert!(!f.store().join("runtimes/work").exists());
});

both_modes!(
    run_gives_the_command_the_runtime_and_saves_what_it_refreshed,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let refreshed = f.dir.path().join("refreshed.json");
        fs::write(&refreshed, fixture_credentials("work-refreshed")).unwrap();
        let seen = f.dir.path().join("seen");
        // The command does what Claude Code does on a refresh: write a temp file, rename it over.
        let script = format!(
            "echo \"$CLAUDE_CONFIG_DIR\" > {seen}; cp {refreshed} \"$CLAUDE_CONFIG_DIR/.tmp-new\" && mv \"$CLAUDE_CONFIG_DIR/.tmp-new\" \"$CLAUDE_CONFIG_DIR/.credentials.json\"; mkdir -p \"$CLAUDE_CONFIG_DIR/projects/-run\" && echo '{{}}' > \"$CLAUDE_CONFIG_DIR/projects/-run/t.jsonl\"",
            seen = seen.display(),
            refreshed = refreshed.display()
        );
        let out = f.run(
            &[
                "run",
                "work",
                "--link-mode",
                mode,
                "--",
                "sh",
                "-c",
                &script,
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read_to_string(&seen).unwrap().trim(),
            f.runtime("work").to_str().unwrap()
        );
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
        assert_eq!(
            fs::read_to_string(f.claude().join("projects/-run/t.jsonl")).unwrap(),
            "{}\n"
        );
        assert!(!f.store().join("runtimes/work").exists());
    }
);

both_modes!(
    what_the_command_changes_reaches_its_place_while_the_command_runs,
    |mode: &str| {
        // The command waits (at most 20 s) for each change to arrive before making the next,
        // and fails if one does not: every change after the first comes after run's first
        // tick, so only its watch carries it while the command runs, not the release.
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let refreshed = f.dir.path().join("refreshed.json");
        fs::write(&refreshed, fixture_credentials("work-refreshed")).unwrap();
        let script = format!(
            r#"
            wait_for() {{ i=0; while [ $i -lt 200 ]; do eval "$1" && return 0; sleep 0.1; i=$((i+1)); done; echo "never: $1" >&2; exit 3; }}
            cp {refreshed} "$CLAUDE_CONFIG_DIR/.tmp-new" && mv "$CLAUDE_CONFIG_DIR/.tmp-new" "$CLAUDE_CONFIG_DIR/.credentials.json"
            wait_for 'cmp -s {refreshed} {canonical}'
            sed '1s/^{{/{{"fromRun": true,/' "$CLAUDE_CONFIG_DIR/.claude.json" > "$CLAUDE_CONFIG_DIR/.tmp-json" && mv "$CLAUDE_CONFIG_DIR/.tmp-json" "$CLAUDE_CONFIG_DIR/.claude.json"
            wait_for 'grep -q fromRun "$HOME/.claude.json"'
            sed '1s/^{{/{{"fromHome": true,/' "$HOME/.claude/settings.json" > "$HOME/.claude/.tmp-s" && mv "$HOME/.claude/.tmp-s" "$HOME/.claude/settings.json"
            wait_for 'grep -q fromHome "$CLAUDE_CONFIG_DIR/settings.json"'
            "#,
            refreshed = refreshed.display(),
            canonical = f.canonical("work").display(),
        );
        let out = f.run(
            &[
                "run",
                "work",
                "--link-mode",
                mode,
                "--",
                "sh",
                "-c",
                &script,
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
);

#[test]
fn run_scrubs_variables_that_would_override_the_account() {
    let mut f = Fixture::new();
    f.set_env("ANTHROPIC_API_KEY", "inherited-api-key");
    f.set_env("ANTHROPIC_AUTH_TOKEN", "inherited-auth-token");
    f.set_env("CLAUDE_CODE_OAUTH_TOKEN", "inherited-oauth-token");
    f.set_env("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR", "3");
    f.set_env("CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR", "4");
    f.set_env("CLAUDE_CODE_OAUTH_REFRESH_TOKEN", "inherited-refresh-token");
    f.set_env("CLAUDE_SECURESTORAGE_CONFIG_DIR", "/tmp/elsewhere");
    f.set_env("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/inherited");
    f.set_env("UNRELATED", "kept");
    f.add_profile("work", Some("work"));
    let out = f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env",
            "ANTHROPIC_BASE_URL=http://127.0.0.1:2/profile",
        ],
        b"",
    );
    assert!(out.status.success());
    for (profile, base_url) in [("work", None), ("gw", Some("http://127.0.0.1:2/profile"))] {
        let env_file = f.dir.path().join(format!("env-{profile}"));
        let out = f.run(
            &[
                "run",
                profile,
                "--",
                "sh",
                "-c",
                &format!("env > {}", env_file.display()),
            ],
            b"",
        );
        assert!(out.status.success());
        let env = fs::read_to_string(&env_file).unwrap();
        for key in [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
            "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
            "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
            "CLAUDE_SECURESTORAGE_CONFIG_DIR",
        ] {
            assert!(
                !env.contains(&format!("{key}=")),
                "{key} reached the command"
            );
        }
        assert!(env.contains("UNRELATED=kept"));
        assert!(env.contains(&format!(
            "CLAUDE_CONFIG_DIR={}",
            f.runtime(profile).display()
        )));
        match base_url {
            None => assert!(!env.contains("ANTHROPIC_BASE_URL="), "{profile}"),
            Some(url) => assert!(
                env.contains(&format!("ANTHROPIC_BASE_URL={url}")),
                "{profile}"
            ),
        }
    }
}

#[test]
fn run_forwards_a_signal_to_the_command_and_still_releases() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let ready = f.dir.path().join("ready");
    let script = format!(
        "trap 'echo got-term > {ready}.term; exit 9' TERM; touch {ready}; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ready = ready.display()
    );
    let mut child = f.spawn(&["run", "work", "--", "sh", "-c", &script]);
    assert!(eventually(10, || ready.exists()), "the command started");
    assert_eq!(
        f.status()["profiles"][0]["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    clauth_kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(9),
        "the command's own exit status after the forwarded signal"
    );
    assert!(
        f.dir.path().join("ready.term").exists(),
        "the command got SIGTERM"
    );
    assert!(!f.store().join("runtimes/work").exists(), "released");
    assert_eq!(f.status()["profiles"][0]["sessions"], serde_json::json!([]));
}

#[test]
fn two_runs_of_different_profiles_at_once_each_see_their_own_account() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let barrier = f.dir.path().join("barrier");
    std::thread::scope(|s| {
        for profile in ["work", "personal"] {
            let f = &f;
            let barrier = &barrier;
            s.spawn(move || {
                let copy = f.dir.path().join(format!("seen-{profile}"));
                // Each waits until both runtimes exist, so the two sessions overlap.
                let script = format!(
                    "touch {b}.{profile}; i=0; while [ ! -e {b}.work ] || [ ! -e {b}.personal ]; do sleep 0.02; i=$((i+1)); [ $i -gt 500 ] && exit 3; done; cp \"$CLAUDE_CONFIG_DIR/.credentials.json\" {copy}; echo \"$CLAUDE_CONFIG_DIR\" > {copy}.dir",
                    b = barrier.display(),
                    copy = copy.display()
                );
                let out = f.run(&["run", profile, "--", "sh", "-c", &script], b"");
                assert!(out.status.success(), "{profile}: {}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(fs::read(&copy).unwrap(), fixture_credentials(profile));
                let dir = fs::read_to_string(format!("{}.dir", copy.display())).unwrap();
                assert_eq!(dir.trim(), f.runtime(profile).to_str().unwrap());
            });
        }
    });
}

#[test]
fn run_reports_its_own_failures_apart_from_the_command() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let out = f.run(&["run", "nobody", "--", "true"], b"");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("profile_not_found"));
    let out = f.run(&["run", "work", "--", "/nonexistent/command"], b"");
    assert_eq!(out.status.code(), Some(127));
    assert!(
        !f.store().join("runtimes/work").exists(),
        "released after a command that could not start"
    );
    let out = f.run(
        &["run", "work", "--link-mode", "sideways", "--", "true"],
        b"",
    );
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn run_finds_claude_on_path_by_default() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let bin = f.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let marker = f.dir.path().join("claude-ran");
    let fake_claude = bin.join("claude");
    fs::write(
        &fake_claude,
        format!("#!/bin/sh\necho \"$@\" > {}\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake_claude, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = f.command();
    cmd.env("PATH", path).args(["run", "work"]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists(), "claude from PATH ran");
}

#[test]
fn a_killed_run_leaves_the_session_alive_while_its_command_runs() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let ready = f.dir.path().join("ready");
    let done = f.dir.path().join("done");
    // The command outlives `run`, then stops by itself.
    let script = format!(
        "touch {ready}; i=0; while [ ! -e {done} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done",
        ready = ready.display(),
        done = done.display()
    );
    let mut child = f.spawn(&["run", "work", "--", "sh", "-c", &script]);
    assert!(eventually(10, || ready.exists()), "the command started");
    child.kill().unwrap();
    child.wait().unwrap();
    let status = f.status();
    assert_eq!(
        status["profiles"][0]["sessions"].as_array().unwrap().len(),
        1,
        "alive while the command runs: {status}"
    );
    assert_eq!(
        status["profiles"][0]["runtime"]["orphaned"],
        serde_json::json!(false)
    );
    // Another session joins the live runtime instead of rebuilding it under the command.
    let b = f.acquire("work", "real");
    fs::write(&done, "").unwrap();
    let mut ended = false;
    for _ in 0..200 {
        if f.status()["profiles"][0]["sessions"]
            .as_array()
            .unwrap()
            .len()
            == 1
        {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ended, "the held session ends when the command exits");
    f.release(&session_of(&b));
    assert!(!f.store().join("runtimes/work").exists());
}

both_modes!(
    run_says_where_the_changes_it_could_not_merge_are_kept,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        // The command breaks the home's document (as a bad hand edit would), then writes a key
        // into its own copy, which can then never be merged before the runtime goes.
        let script = format!(
            "printf '{{ oops' > {home}; python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d[\"sessionKey\"]=1; open(p,\"w\").write(json.dumps(d))' \"$CLAUDE_CONFIG_DIR/.claude.json\"",
            home = f.claude_json().display()
        );
        let out = f.run(
            &[
                "run",
                "work",
                "--link-mode",
                mode,
                "--",
                "sh",
                "-c",
                &script,
            ],
            b"",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode}: {stderr}");
        let kept: Vec<_> = fs::read_dir(f.store().join("profiles/work"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("claude.json.unmerged-"))
            .collect();
        assert_eq!(kept.len(), 1, "{mode}: {kept:?}\n{stderr}");
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&kept[0]).unwrap()).unwrap();
        assert_eq!(doc["sessionKey"], serde_json::json!(1));
        assert!(
            stderr.contains(&format!(
                "the session's copy that could not be merged is kept in {}",
                kept[0].display()
            )),
            "{mode}: {stderr}"
        );
        assert_eq!(
            stderr.matches("does not parse").count(),
            1,
            "{mode}: {stderr}"
        );
        assert!(!f.store().join("runtimes/work").exists());
    }
);
