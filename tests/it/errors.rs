//! Every bad request gets its code, a non-zero exit, and leaves every file as it was.

use serde_json::json;

use crate::support::*;

fn setup() -> Fixture {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f
}

/// Sends a raw request and checks the code and that nothing on disk changed.
fn refused(f: &Fixture, verb: &str, body: &[u8], code: &str) {
    let before = f.snapshot();
    f.raw(verb, body).err(code);
    assert_eq!(
        before,
        f.snapshot(),
        "{verb} {} changed files",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn a_request_that_is_not_json_is_invalid() {
    let f = setup();
    for body in [
        &b"not json"[..],
        b"",
        b"{\"profile\": ",
        b"\xff\xfe",
        b"[1,2]",
        b"\"work\"",
        b"null",
        b"{} {}",
    ] {
        refused(&f, "acquire", body, "invalid_request");
    }
}

#[test]
fn wrong_field_types_are_invalid() {
    let f = setup();
    for body in [
        json!({}),
        json!({"profile": 7}),
        json!({"profile": "work", "owner_pid": "12"}),
        json!({"profile": "work", "owner_pid": -1}),
        json!({"profile": "work", "owner_pid": 0}),
        json!({"profile": "work", "lease_ms": 0}),
        json!({"profile": "work", "lease_ms": 1.5}),
        json!({"profile": "work", "link_mode": "sideways"}),
        json!({"profile": "work", "link_mode": true}),
        json!({"profile": "work", "protocol": "1"}),
    ] {
        refused(
            &f,
            "acquire",
            body.to_string().as_bytes(),
            "invalid_request",
        );
    }
    for verb in ["tick", "release"] {
        refused(&f, verb, b"{}", "invalid_request");
        refused(&f, verb, br#"{"session": 5}"#, "invalid_request");
        refused(
            &f,
            verb,
            br#"{"session": "../../etc/passwd"}"#,
            "invalid_request",
        );
    }
    refused(&f, "status", br#"{"profile": []}"#, "invalid_request");
}

#[test]
fn an_unknown_verb_is_refused() {
    let f = setup();
    refused(&f, "frobnicate", b"{}", "unknown_verb");
}

#[test]
fn another_protocol_version_is_unsupported() {
    let f = setup();
    refused(
        &f,
        "acquire",
        br#"{"protocol": 2, "profile": "work"}"#,
        "unsupported_protocol",
    );
    refused(&f, "status", br#"{"protocol": 0}"#, "unsupported_protocol");
    // protocol 1 and unknown fields are fine.
    f.request("status", json!({"protocol": 1, "color": "blue"}))
        .ok();
}

#[test]
fn bad_profile_names_are_refused_and_nothing_is_written() {
    let f = setup();
    for name in [
        "",
        ".hidden",
        "../work",
        "a/b",
        "a b",
        "ü",
        &"x".repeat(65),
        "work\n",
    ] {
        refused(
            &f,
            "acquire",
            json!({"profile": name}).to_string().as_bytes(),
            "invalid_profile_name",
        );
        refused(
            &f,
            "status",
            json!({"profile": name}).to_string().as_bytes(),
            "invalid_profile_name",
        );
        let before = f.snapshot();
        let out = f.run(&["profile", "add", name], b"");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_profile_name"));
        assert_eq!(before, f.snapshot());
    }
}

#[test]
fn an_unknown_profile_is_not_found() {
    let f = setup();
    refused(
        &f,
        "acquire",
        br#"{"profile": "nobody"}"#,
        "profile_not_found",
    );
    refused(
        &f,
        "status",
        br#"{"profile": "nobody"}"#,
        "profile_not_found",
    );
}

#[test]
fn a_missing_claude_home_is_reported() {
    let f = Fixture::without_claude_home();
    f.add_profile("work", Some("work"));
    refused(
        &f,
        "acquire",
        br#"{"profile": "work"}"#,
        "claude_home_missing",
    );
}

#[test]
fn an_unknown_session_is_not_found() {
    let f = setup();
    for verb in ["tick", "release"] {
        refused(
            &f,
            verb,
            br#"{"session": "s-000000000000000000000000"}"#,
            "session_not_found",
        );
    }
}

#[test]
fn a_held_state_lock_times_out_with_a_retryable_error() {
    let mut f = setup();
    f.set_env("CLAUTH_LOCK_TIMEOUT_MS", "200");
    let mut lock = fslock::LockFile::open(&f.store().join("state.lock")).unwrap();
    lock.lock().unwrap();
    let before = f.snapshot();
    let body = f
        .request("acquire", json!({"profile": "work"}))
        .err("lock_timeout");
    assert_eq!(body["error"]["retryable"], json!(true));
    assert_eq!(before, f.snapshot());
    lock.unlock().unwrap();
    let a = f.request("acquire", json!({"profile": "work"})).ok();
    f.release(&session_of(&a));
}

#[test]
fn a_request_that_is_too_large_is_invalid() {
    let f = setup();
    let huge = format!(
        "{{\"profile\": \"work\", \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    refused(&f, "acquire", huge.as_bytes(), "invalid_request");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    refused(&f, "acquire", deep.as_bytes(), "invalid_request");
}

#[test]
fn a_dead_owner_pid_at_acquire_is_invalid() {
    let f = setup();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    refused(
        &f,
        "acquire",
        json!({"profile": "work", "owner_pid": pid})
            .to_string()
            .as_bytes(),
        "invalid_request",
    );
}

#[test]
fn protocol_one_written_as_a_float_is_protocol_one() {
    let f = setup();
    f.raw("status", br#"{"protocol": 1.0}"#).ok();
    refused(
        &f,
        "status",
        br#"{"protocol": 1.5}"#,
        "unsupported_protocol",
    );
}

#[test]
fn a_damaged_profile_config_is_reported_without_quoting_it() {
    let f = setup();
    let config = f.store().join("profiles/work/profile.json");
    // A value pasted in the wrong place must not come back in the message.
    std::fs::write(&config, r#"{"env": "sk-ant-oat01-PASTEDBYMISTAKE"}"#).unwrap();
    let body = f.request("acquire", json!({"profile": "work"})).err("io");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("damaged")
    );
    assert!(
        !f.store().join("runtimes/work").exists(),
        "no runtime was left half-built"
    );
}

#[test]
fn an_unknown_verb_is_refused_whatever_the_request_holds() {
    let f = setup();
    refused(&f, "frobnicate", b"not json at all", "unknown_verb");
}
