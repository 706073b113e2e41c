//! acquire → tick → release, sessions sharing a runtime, liveness and teardown.

use std::fs;

use serde_json::json;

use crate::both_modes;
use crate::support::*;

both_modes!(acquire_tick_release_round_trip, |mode: &str| {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let acquired = f.acquire("work", mode);
    assert_eq!(acquired["profile"], json!("work"));
    assert_eq!(acquired["link_mode"], json!(mode));
    let config_dir = acquired["config_dir"].as_str().unwrap();
    assert!(std::path::Path::new(config_dir).is_absolute());
    assert_eq!(acquired["env"]["CLAUDE_CONFIG_DIR"], json!(config_dir));
    assert_eq!(std::path::Path::new(config_dir), f.runtime("work"));

    // The runtime looks like ~/.claude with the profile's credentials.
    let rt = f.runtime("work");
    assert_eq!(
        fs::read(rt.join(".credentials.json")).unwrap(),
        fixture_credentials("work")
    );
    assert_eq!(is_symlink(&rt.join(".credentials.json")), mode == "real");
    assert!(rt.join("projects/-home-user-app").is_dir());
    assert!(rt.join("commands/review.md").is_file());
    assert_eq!(is_symlink(&rt.join("projects")), mode == "real");
    assert!(rt.join(".claude.json").is_file());

    let ticked = f.tick(&session_of(&acquired));
    assert_eq!(ticked["session"], acquired["session"]);
    assert_eq!(ticked["credentials_saved"], json!(false));

    let released = f.release(&session_of(&acquired));
    assert_eq!(released["runtime_removed"], json!(true));
    assert_eq!(released["remaining_sessions"], json!(0));
    assert!(!f.store().join("runtimes/work").exists());
    // The claude home is as it was.
    assert!(f.claude().join("projects/-home-user-app").is_dir());
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work")
    );
    f.request("tick", json!({"session": acquired["session"]}))
        .err("session_not_found");
});

both_modes!(
    two_sessions_share_a_runtime_until_the_last_release,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let b = f.acquire("work", mode);
        assert_ne!(a["session"], b["session"], "two acquires are two sessions");
        assert_eq!(a["config_dir"], b["config_dir"]);
        let status = f.status();
        assert_eq!(
            status["profiles"][0]["sessions"].as_array().unwrap().len(),
            2
        );

        let first = f.release(&session_of(&a));
        assert_eq!(first["runtime_removed"], json!(false));
        assert_eq!(first["remaining_sessions"], json!(1));
        assert!(f.runtime("work").join("projects").exists());

        let second = f.release(&session_of(&b));
        assert_eq!(second["runtime_removed"], json!(true));
        assert_eq!(second["remaining_sessions"], json!(0));
        assert!(!f.store().join("runtimes/work").exists());
    }
);

both_modes!(
    two_profiles_at_once_each_have_their_own_credentials,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        let w = f.acquire("work", mode);
        let p = f.acquire("personal", mode);
        assert_ne!(w["config_dir"], p["config_dir"]);
        assert_eq!(
            fs::read(f.runtime("work").join(".credentials.json")).unwrap(),
            fixture_credentials("work")
        );
        assert_eq!(
            fs::read(f.runtime("personal").join(".credentials.json")).unwrap(),
            fixture_credentials("personal")
        );

        // A refresh in one profile's runtime reaches that profile only.
        write_by_rename(
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        f.tick(&session_of(&w));
        f.tick(&session_of(&p));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
        assert_eq!(
            fs::read(f.canonical("personal")).unwrap(),
            fixture_credentials("personal")
        );

        let status = f.status();
        let names: Vec<_> = status["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("personal"), json!("work")]);
        assert_eq!(
            status["profiles"][0]["credentials"]["subscription_type"],
            json!("max")
        );
        assert_eq!(
            status["profiles"][1]["credentials"]["subscription_type"],
            json!("team")
        );
        f.release(&session_of(&w));
        f.release(&session_of(&p));
    }
);

both_modes!(
    a_dead_owner_pid_is_pruned_and_the_next_acquire_rebuilds,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let a = f
            .request(
                "acquire",
                json!({"profile": "work", "link_mode": mode, "owner_pid": child.id()}),
            )
            .ok();
        assert_eq!(
            f.status()["profiles"][0]["sessions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Something written during the session must survive the crash cleanup.
        fs::create_dir_all(f.runtime("work").join("projects/-crash")).unwrap();
        fs::write(f.runtime("work").join("projects/-crash/t.jsonl"), "{}\n").unwrap();
        child.kill().unwrap();
        child.wait().unwrap();

        let status = f.status();
        assert_eq!(status["profiles"][0]["sessions"], json!([]));
        assert_eq!(status["profiles"][0]["runtime"]["orphaned"], json!(true));
        f.request("tick", json!({"session": a["session"]}))
            .err("session_not_found");

        let b = f.acquire("work", mode);
        assert_ne!(a["session"], b["session"]);
        assert_eq!(
            f.status()["profiles"][0]["runtime"]["orphaned"],
            json!(false)
        );
        assert_eq!(
            fs::read_to_string(f.claude().join("projects/-crash/t.jsonl")).unwrap(),
            "{}\n"
        );
        f.release(&session_of(&b));
    }
);

both_modes!(a_live_owner_pid_keeps_its_session, |mode: &str| {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let a = f
        .request(
            "acquire",
            json!({"profile": "work", "link_mode": mode, "owner_pid": child.id()}),
        )
        .ok();
    let status = f.status();
    assert_eq!(
        status["profiles"][0]["sessions"][0]["owner_pid"],
        json!(child.id())
    );
    f.tick(&session_of(&a));
    f.release(&session_of(&a));
    child.kill().unwrap();
    child.wait().unwrap();
});

both_modes!(
    an_expired_lease_ends_a_session_and_tick_renews_it,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f
            .request(
                "acquire",
                json!({"profile": "work", "link_mode": mode, "lease_ms": 1500}),
            )
            .ok();
        let first = a["lease_expires_at"].as_i64().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let t = f.tick(&session_of(&a));
        assert!(
            t["lease_expires_at"].as_i64().unwrap() > first,
            "tick renews the lease"
        );
        let short = f
            .request("acquire", json!({"profile": "work", "lease_ms": 1}))
            .ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
        f.request("tick", json!({"session": short["session"]}))
            .err("session_not_found");
        f.release(&session_of(&a));
    }
);

both_modes!(
    a_new_top_level_entry_written_in_the_runtime_survives_teardown,
    |mode: &str| {
        let f = Fixture::new();
        fs::remove_dir_all(f.claude().join("projects")).unwrap();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let rt = f.runtime("work");
        // What Claude Code does on a first run: create projects/ and a transcript.
        fs::create_dir_all(rt.join("projects/-tmp-x")).unwrap();
        fs::write(
            rt.join("projects/-tmp-x/abc.jsonl"),
            "{\"type\":\"user\"}\n",
        )
        .unwrap();
        fs::write(rt.join("history.jsonl"), "{\"display\":\"hi\"}\n").unwrap();
        let released = f.release(&session_of(&a));
        assert_eq!(released["runtime_removed"], json!(true));
        assert_eq!(
            fs::read_to_string(f.claude().join("projects/-tmp-x/abc.jsonl")).unwrap(),
            "{\"type\":\"user\"}\n"
        );
        assert_eq!(
            fs::read_to_string(f.claude().join("history.jsonl")).unwrap(),
            "{\"display\":\"hi\"}\n"
        );
    }
);

both_modes!(
    a_second_acquire_asking_the_other_mode_is_a_conflict,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let other = if mode == "real" { "fake" } else { "real" };
        let before = f.snapshot();
        f.request("acquire", json!({"profile": "work", "link_mode": other}))
            .err("link_mode_conflict");
        assert_eq!(before, f.snapshot());
        // auto joins the live runtime in its mode.
        let b = f
            .request("acquire", json!({"profile": "work", "link_mode": "auto"}))
            .ok();
        assert_eq!(b["link_mode"], json!(mode));
        f.release(&session_of(&a));
        f.release(&session_of(&b));
    }
);

#[test]
fn the_link_mode_comes_from_the_environment_when_the_request_has_none() {
    for mode in MODES {
        let mut f = Fixture::new();
        f.set_env("CLAUTH_LINK_MODE", mode);
        f.add_profile("work", Some("work"));
        let a = f.request("acquire", json!({"profile": "work"})).ok();
        assert_eq!(a["link_mode"], json!(mode));
        f.release(&session_of(&a));
    }
    let mut f = Fixture::new();
    f.set_env("CLAUTH_LINK_MODE", "sideways");
    f.add_profile("work", Some("work"));
    f.request("acquire", json!({"profile": "work"}))
        .err("invalid_request");
}

#[test]
fn auto_mode_uses_symlinks_where_they_work() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.request("acquire", json!({"profile": "work"})).ok();
    assert_eq!(a["link_mode"], json!("real"));
    f.release(&session_of(&a));
}

both_modes!(
    settings_merge_the_profile_env_over_the_home_settings,
    |mode: &str| {
        let f = Fixture::new();
        f.add_gateway_profile("gw");
        let a = f.acquire("gw", mode);
        let settings: serde_json::Value =
            serde_json::from_slice(&fs::read(f.runtime("gw").join("settings.json")).unwrap())
                .unwrap();
        assert_eq!(
            settings["env"]["ANTHROPIC_BASE_URL"],
            json!("http://127.0.0.1:7777"),
            "the profile wins"
        );
        assert_eq!(settings["env"]["EXTRA"], json!("yes"));
        assert_eq!(
            settings["env"]["SHARED_FLAG"],
            json!("1"),
            "other env keys stay"
        );
        assert_eq!(settings["model"], json!("sonnet"), "other keys stay");
        assert_eq!(settings["permissions"]["allow"], json!(["Bash(ls:*)"]));
        // A profile without credentials has none in its runtime until the user logs in.
        assert!(!f.runtime("gw").join(".credentials.json").exists());
        f.release(&session_of(&a));
        let home: serde_json::Value =
            serde_json::from_slice(&fs::read(f.claude().join("settings.json")).unwrap()).unwrap();
        assert_eq!(
            home["env"]["ANTHROPIC_BASE_URL"],
            json!("http://127.0.0.1:9"),
            "the home keeps its own"
        );
        assert!(home["env"].get("EXTRA").is_none());
    }
);

#[test]
fn capabilities_lists_versions_verbs_and_features_without_a_store() {
    let f = Fixture::new();
    let caps = f.request("capabilities", json!({})).ok();
    assert_eq!(caps["protocol_versions"], json!([1]));
    for verb in ["acquire", "tick", "release", "status", "capabilities"] {
        assert!(
            caps["verbs"].as_array().unwrap().contains(&json!(verb)),
            "{verb}"
        );
    }
    assert!(
        caps["features"]
            .as_array()
            .unwrap()
            .contains(&json!("serve"))
    );
    assert!(!f.store().exists(), "asking creates nothing");
    let mut s = f.serve();
    let c = s.call("capabilities", json!({}));
    assert_eq!(c["protocol_versions"], json!([1]));
    s.finish();
}

#[test]
fn clauth_link_mode_is_a_default_for_new_runtimes_not_a_conflict() {
    let mut f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "fake");
    f.set_env("CLAUTH_LINK_MODE", "real");
    let b = f.request("acquire", json!({"profile": "work"})).ok();
    assert_eq!(b["link_mode"], json!("fake"), "joins the live runtime");
    f.set_env("CLAUTH_LINK_MODE", "sideways");
    f.request("acquire", json!({"profile": "work"}))
        .err("invalid_request");
    f.release(&session_of(&a));
    f.release(&session_of(&b));
}

#[test]
fn a_runtime_whose_build_never_finished_is_removed_without_a_sync() {
    // A crash in the middle of a fake-mode build leaves copies nobody was handed; whatever
    // they hold must not be taken for a session's work.
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut owner = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    f.request(
        "acquire",
        json!({"profile": "work", "link_mode": "fake", "owner_pid": owner.id()}),
    )
    .ok();
    let state_path = f.store().join("runtimes/work/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["ready"] = json!(false);
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    fs::write(f.runtime("work").join("commands/review.md"), "half a copy").unwrap();
    owner.kill().unwrap();
    owner.wait().unwrap();
    let b = f.acquire("work", "fake");
    let original = fs::read_to_string(fixtures().join("home/.claude/commands/review.md")).unwrap();
    assert_eq!(
        fs::read_to_string(f.claude().join("commands/review.md")).unwrap(),
        original
    );
    assert_eq!(
        fs::read_to_string(f.runtime("work").join("commands/review.md")).unwrap(),
        original
    );
    f.release(&session_of(&b));
}
