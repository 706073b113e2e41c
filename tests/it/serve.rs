//! `serve`: one pipe, many requests, sessions that end with the process.

use std::fs;

use serde_json::json;

use crate::both_modes;
use crate::support::*;

both_modes!(
    a_serve_transcript_acquires_ticks_reports_and_releases,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        assert_eq!(a["ok"], json!(true), "{a}");
        assert_eq!(a["link_mode"], json!(mode));
        let t = s.call("tick", json!({"session": a["session"]}));
        assert_eq!(t["ok"], json!(true), "{t}");
        let st = s.call("status", json!({}));
        assert_eq!(st["profiles"][0]["sessions"][0]["held"], json!(true));
        // Other processes see the held session as live.
        assert_eq!(
            f.status()["profiles"][0]["sessions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let r = s.call("release", json!({"session": a["session"]}));
        assert_eq!(r["runtime_removed"], json!(true), "{r}");
        let (status, _) = s.finish();
        assert!(status.success());
    }
);

both_modes!(
    end_of_input_releases_held_sessions_and_tears_down,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        fs::write(f.runtime("work").join("CLAUDE.md"), "from the session\n").unwrap();
        write_by_rename(
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        let (status, stderr) = s.finish();
        assert!(status.success(), "{stderr}");
        assert!(!f.store().join("runtimes/work").exists(), "torn down");
        assert!(
            fs::read_dir(f.store().join("sessions"))
                .unwrap()
                .next()
                .is_none(),
            "no record left"
        );
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
        assert_eq!(
            fs::read_to_string(f.claude().join("CLAUDE.md")).unwrap(),
            "from the session\n"
        );
        f.request("tick", json!({"session": a["session"]}))
            .err("session_not_found");
    }
);

both_modes!(
    sigkill_of_serve_leaves_no_live_session_and_the_next_acquire_works,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        fs::write(
            f.runtime("work").join("CLAUDE.md"),
            "written before the crash\n",
        )
        .unwrap();
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        // No lease to wait out: the session is dead at once.
        let st = f.status();
        assert_eq!(st["profiles"][0]["sessions"], json!([]));
        assert_eq!(st["profiles"][0]["runtime"]["orphaned"], json!(true));
        f.request("tick", json!({"session": a["session"]}))
            .err("session_not_found");
        let b = f.acquire("work", mode);
        assert_eq!(
            fs::read_to_string(f.claude().join("CLAUDE.md")).unwrap(),
            "written before the crash\n"
        );
        f.release(&session_of(&b));
    }
);

#[test]
fn a_malformed_line_gets_an_error_and_serving_goes_on() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut s = f.serve();
    s.write_line("this is not json");
    let e = s.next_response();
    assert_eq!(e["id"], json!(null));
    assert_eq!(e["ok"], json!(false));
    assert_eq!(e["error"]["code"], json!("invalid_request"));
    s.write_line("[1, 2]");
    assert_eq!(s.next_response()["error"]["code"], json!("invalid_request"));
    let unknown = s.call("frobnicate", json!({}));
    assert_eq!(unknown["error"]["code"], json!("unknown_verb"));
    s.write_line(r#"{"id": 99, "profile": "work"}"#);
    let no_verb = s.next_response();
    assert_eq!(no_verb["id"], json!(99));
    assert_eq!(no_verb["error"]["code"], json!("invalid_request"));
    let bad_name = s.call("acquire", json!({"profile": "../x"}));
    assert_eq!(bad_name["error"]["code"], json!("invalid_profile_name"));
    let ok = s.call("status", json!({}));
    assert_eq!(ok["ok"], json!(true));
    let (status, _) = s.finish();
    assert!(status.success());
}

both_modes!(
    serve_ticks_by_itself_and_reports_saved_credentials,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        write_by_rename(
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        let event = s.wait_event("synced", 10);
        assert_eq!(event["session"], a["session"]);
        assert_eq!(event["credentials_saved"], json!(true));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
        s.finish();
    }
);

#[test]
fn sigterm_releases_held_sessions() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut s = f.serve();
    s.call("acquire", json!({"profile": "work"}));
    clauth_kill(s.child.id(), "TERM");
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!f.store().join("runtimes/work").exists());
}

both_modes!(
    a_session_released_by_another_process_is_dropped_with_an_event,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        f.release(&session_of(&a));
        let ended = s.wait_event("session_ended", 10);
        assert_eq!(ended["session"], a["session"]);
        s.finish();
    }
);

pub fn clauth_kill(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_long_lived_fake_session_mirrors_changes_on_both_sides_by_itself() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut s = f.serve();
    let a = s.call("acquire", json!({"profile": "work", "link_mode": "fake"}));
    assert_eq!(a["ok"], json!(true), "{a}");
    // Let the first (full) pass run, then change both sides, deep and shallow.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    fs::create_dir_all(f.runtime("work").join("projects/-new/sub")).unwrap();
    fs::write(
        f.runtime("work").join("projects/-new/sub/t.jsonl"),
        "{\"from\":\"session\"}\n",
    )
    .unwrap();
    fs::write(f.claude().join("commands/added.md"), "from home\n").unwrap();
    let rel = "projects/-home-user-app/0b6c9a4e-1111-4c6e-9a53-2f0c1d7e8a01.jsonl";
    fs::write(f.runtime("work").join(rel), "{\"rewritten\":true}\n").unwrap();
    assert!(
        eventually(10, || {
            fs::read_to_string(f.claude().join("projects/-new/sub/t.jsonl")).is_ok()
                && fs::read_to_string(f.runtime("work").join("commands/added.md")).is_ok()
                && fs::read_to_string(f.claude().join(rel)).unwrap() == "{\"rewritten\":true}\n"
        }),
        "changes crossed over without a request"
    );
    let synced = s.wait_event("synced", 5);
    assert_eq!(synced["session"], a["session"]);
    // A deletion in the home reaches the runtime too.
    fs::remove_file(f.claude().join("commands/review.md")).unwrap();
    assert!(eventually(10, || !f
        .runtime("work")
        .join("commands/review.md")
        .exists()));
    let (status, _) = s.finish();
    assert!(status.success());
    assert!(!f.claude().join("commands/review.md").exists());
}

#[test]
fn every_held_session_released_elsewhere_ends_with_an_event() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut s = f.serve();
    let a = s.call("acquire", json!({"profile": "work"}));
    let b = s.call("acquire", json!({"profile": "work"}));
    f.release(&session_of(&a));
    f.release(&session_of(&b));
    let mut ended = vec![s.wait_event("session_ended", 10)["session"].clone()];
    ended.push(s.wait_event("session_ended", 10)["session"].clone());
    ended.sort_by_key(|v| v.to_string());
    let mut want = vec![a["session"].clone(), b["session"].clone()];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(ended, want);
    let (status, stderr) = s.finish();
    assert!(status.success());
    assert!(!stderr.contains("could not release"), "{stderr}");
}

/// Adds `key` under `mcpServers` of the JSON document at `path`, as Claude Code writes it
/// (a temp file renamed over it).
fn add_mcp_server(path: &std::path::Path, key: &str) {
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    doc["mcpServers"][key] = json!({"command": key});
    write_by_rename(path, serde_json::to_string_pretty(&doc).unwrap().as_bytes());
}

fn has_mcp_server(path: &std::path::Path, key: &str) -> bool {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|doc| doc["mcpServers"][key]["command"] == json!(key))
}

both_modes!(
    serve_carries_each_change_to_its_place_while_it_holds_the_session,
    |mode: &str| {
        // Each change is made after the one before it arrived, so after serve's first tick:
        // only a watch (or a poll) can carry it, and the loop waits far less than the minute
        // between ticks of an idle serve.
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let mut s = f.serve();
        let a = s.call("acquire", json!({"profile": "work", "link_mode": mode}));
        assert_eq!(a["ok"], json!(true), "{a}");
        let runtime_json = f.runtime("work").join(".claude.json");
        add_mcp_server(&runtime_json, "from-session");
        assert!(
            eventually(20, || has_mcp_server(&f.claude_json(), "from-session")),
            "a key the session wrote reached ~/.claude.json"
        );
        add_mcp_server(&f.claude_json(), "from-home");
        assert!(
            eventually(20, || has_mcp_server(&runtime_json, "from-home")),
            "a key written in ~/.claude.json reached the runtime"
        );
        write_by_rename(
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        assert!(
            eventually(20, || fs::read(f.canonical("work")).unwrap()
                == fixture_credentials("work-refreshed")),
            "a refreshed login reached the profile"
        );
        let settings = f.claude().join("settings.json");
        let mut doc: serde_json::Value =
            serde_json::from_slice(&fs::read(&settings).unwrap_or_else(|_| b"{}".to_vec()))
                .unwrap();
        doc["theme"] = json!("from-home");
        write_by_rename(&settings, serde_json::to_string(&doc).unwrap().as_bytes());
        assert!(
            eventually(20, || fs::read_to_string(
                f.runtime("work").join("settings.json")
            )
            .is_ok_and(|t| t.contains("from-home"))),
            "a setting changed in the claude home reached the runtime"
        );
        fs::write(f.claude().join("added-at-top.md"), "new in the home\n").unwrap();
        assert!(
            eventually(20, || f.runtime("work").join("added-at-top.md").exists()),
            "an entry added to the claude home appeared in the runtime"
        );
        let (status, stderr) = s.finish();
        assert!(status.success(), "{stderr}");
    }
);

#[test]
fn serve_renews_the_lease_of_a_held_session_before_it_runs_out() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut s = f.serve();
    let a = s.call("acquire", json!({"profile": "work", "lease_ms": 6000}));
    let first = a["lease_expires_at"].as_i64().unwrap();
    let lease_of = || {
        f.status()["profiles"][0]["sessions"][0]["lease_expires_at"]
            .as_i64()
            .unwrap_or(0)
    };
    // Wait until the first lease has run out; by then it was renewed, and the new one lasts.
    assert!(eventually(20, || now_ms() > first + 500));
    let renewed = lease_of();
    assert!(
        renewed > now_ms(),
        "the lease was renewed before it ran out: {renewed} (first {first})"
    );
    let (status, stderr) = s.finish();
    assert!(status.success(), "{stderr}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
