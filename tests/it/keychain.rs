//! The Keychain credential store (macOS), against the stand-in `security` of tests/support,
//! which keeps items in a file and answers with the real program's exit codes.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both_modes;
use crate::support::*;

const ACCOUNT: &str = "me";

/// A fixture whose helper uses the Keychain, through the stand-in on PATH. The stand-in's
/// items live outside the fixture, as the real Keychain does.
struct Kc {
    f: Fixture,
    _items: tempfile::TempDir,
}

impl std::ops::Deref for Kc {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.f
    }
}

fn keychain_fixture() -> Kc {
    let mut f = Fixture::new();
    let items = tempfile::tempdir().unwrap();
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let path = format!(
        "{}:{}",
        standin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let db = items.path().join("keychain.json");
    f.set_env("PATH", &path);
    f.set_env("CLAUTH_CREDENTIAL_STORE", "keychain");
    f.set_env("CLAUTH_TEST_KEYCHAIN", &db.to_string_lossy());
    f.set_env("USER", ACCOUNT);
    Kc { f, _items: items }
}

fn db_path(f: &Fixture) -> PathBuf {
    PathBuf::from(
        f.env_value("CLAUTH_TEST_KEYCHAIN")
            .expect("a keychain fixture"),
    )
}

fn db(f: &Fixture) -> Value {
    fs::read(db_path(f))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"items": {}, "locked": false}))
}

fn set_db(f: &Fixture, v: &Value) {
    fs::write(db_path(f), serde_json::to_vec(v).unwrap()).unwrap();
}

/// The service Claude Code derives for a config dir, computed here independently.
fn service(config_dir: Option<&str>) -> String {
    match config_dir {
        None => "Claude Code-credentials".into(),
        Some(dir) => {
            let hex: String = Sha256::digest(dir.as_bytes())[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("Claude Code-credentials-{hex}")
        }
    }
}

fn item(f: &Fixture, service: &str) -> Option<Vec<u8>> {
    db(f)["items"][format!("{ACCOUNT}\t{service}")]
        .as_str()
        .map(|s| s.as_bytes().to_vec())
}

fn put_item(f: &Fixture, service: &str, bytes: &[u8]) {
    let mut v = db(f);
    v["items"][format!("{ACCOUNT}\t{service}")] = json!(String::from_utf8(bytes.to_vec()).unwrap());
    set_db(f, &v);
}

fn set_locked(f: &Fixture, locked: bool) {
    let mut v = db(f);
    v["locked"] = json!(locked);
    set_db(f, &v);
}

/// No token was ever in the stand-in's argv, in clear or hex-encoded.
fn assert_no_secret_in_argv(f: &Fixture) {
    let argv = fs::read_to_string(format!("{}.argv", db_path(f).display())).unwrap_or_default();
    assert!(!argv.is_empty(), "security was never called");
    let hex_prefix: String = b"sk-ant-".iter().map(|b| format!("{b:02x}")).collect();
    assert!(!argv.contains("sk-ant-"), "a token in argv: {argv}");
    assert!(!argv.contains(&hex_prefix), "a hex token in argv: {argv}");
}

both_modes!(
    a_runtime_s_item_is_seeded_saved_and_removed,
    |mode: &str| {
        let f = keychain_fixture();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let cfg = a["config_dir"].as_str().unwrap().to_owned();
        let svc = service(Some(&cfg));
        assert_eq!(item(&f, &svc), Some(fixture_credentials("work")));
        assert_eq!(f.status()["credential_store"], json!("keychain"));
        // Claude Code refreshes into its item and deletes the seeded file.
        put_item(&f, &svc, &fixture_credentials("work-refreshed"));
        let _ = fs::remove_file(f.runtime("work").join(".credentials.json"));
        let t = f.tick(&session_of(&a));
        assert_eq!(t["credentials_saved"], json!(true), "{t}");
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
        // A refresh landing just before release is saved by the final sync, then the item goes.
        let mut newer: Value =
            serde_json::from_slice(&fixture_credentials("work-refreshed")).unwrap();
        newer["claudeAiOauth"]["refreshToken"] = json!("sk-ant-ort01-WORKREFRESH3-keychain");
        let newer = serde_json::to_vec(&newer).unwrap();
        put_item(&f, &svc, &newer);
        let r = f.release(&session_of(&a));
        assert_eq!(r["runtime_removed"], json!(true));
        assert_eq!(item(&f, &svc), None, "the item is deleted at teardown");
        assert_eq!(fs::read(f.canonical("work")).unwrap(), newer);
        assert_no_secret_in_argv(&f);
    }
);

both_modes!(
    a_stale_item_with_the_runtime_s_name_is_replaced,
    |mode: &str| {
        let f = keychain_fixture();
        f.add_profile("work", Some("work"));
        let svc = service(Some(&f.runtime("work").to_string_lossy()));
        put_item(&f, &svc, &fixture_credentials("personal"));
        f.acquire("work", mode);
        assert_eq!(item(&f, &svc), Some(fixture_credentials("work")));
        // What it held is kept aside, not made the profile's login and not dropped.
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work")
        );
        let aside = f.kept_aside("work", "keychain");
        assert_eq!(aside.len(), 1);
        assert_eq!(
            fs::read(&aside[0]).unwrap(),
            fixture_credentials("personal")
        );
    }
);

both_modes!(
    a_locked_keychain_is_retryable_and_loses_nothing,
    |mode: &str| {
        let f = keychain_fixture();
        f.add_profile("work", Some("work"));
        set_locked(&f, true);
        let before = f.snapshot();
        let err = f
            .request("acquire", json!({"profile": "work", "link_mode": mode}))
            .err("keychain_locked");
        assert_eq!(err["error"]["retryable"], json!(true));
        assert_eq!(before, f.snapshot(), "a refused acquire leaves every file");
        set_locked(&f, false);
        let a = f.acquire("work", mode);
        let svc = service(Some(a["config_dir"].as_str().unwrap()));
        put_item(&f, &svc, &fixture_credentials("work-refreshed"));
        set_locked(&f, true);
        f.request("tick", json!({"session": session_of(&a)}))
            .err("keychain_locked");
        f.request("release", json!({"session": session_of(&a)}))
            .err("keychain_locked");
        assert!(
            f.runtime("work").exists(),
            "the runtime waits for the keychain"
        );
        set_locked(&f, false);
        f.release(&session_of(&a));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed"),
            "the refresh in the item was saved once the keychain opened"
        );
        assert_eq!(item(&f, &svc), None);
    }
);

#[test]
fn the_home_profile_is_the_unsuffixed_item() {
    let f = keychain_fixture();
    let home_login = fs::read(f.claude().join(".credentials.json")).unwrap();
    // On macOS Claude Code keeps the home login in the item and no file.
    put_item(&f, &service(None), &home_login);
    fs::remove_file(f.claude().join(".credentials.json")).unwrap();
    let out = f.run(&["profile", "add", "home", "--from-claude"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.canonical("home").exists());
    let status = f.status();
    assert_eq!(status["profiles"][0]["home"], json!(true));
    assert_eq!(status["profiles"][0]["credentials"]["present"], json!(true));
    // profile use moves logins through the item: never a file beside it.
    f.add_profile("personal", Some("personal"));
    let out = f.run(&["profile", "use", "personal"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        item(&f, &service(None)),
        Some(fixture_credentials("personal"))
    );
    assert!(!f.claude().join(".credentials.json").exists());
    assert_eq!(fs::read(f.canonical("home")).unwrap(), home_login);
    // A copy of the home login in the item is refused like one in the file.
    let out = f.run(
        &["profile", "add", "again", "--credentials", "-"],
        &fixture_credentials("personal"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("login_in_use"));
    assert_no_secret_in_argv(&f);
}

#[test]
fn without_security_on_path_the_keychain_store_is_a_clear_error() {
    let mut f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.set_env("CLAUTH_CREDENTIAL_STORE", "keychain");
    f.set_env("PATH", "/nonexistent");
    let before = f.snapshot();
    f.request("acquire", json!({"profile": "work", "link_mode": "real"}))
        .err("keychain_failed");
    assert_eq!(before, f.snapshot());
    let caps = f.request("capabilities", json!({})).ok();
    assert_eq!(caps["credential_store"], json!("keychain"));
}

/// `security -i` reads at most 4096 bytes a line and stores what it read: credentials whose
/// line would be longer are refused, never written in part (nor in argv).
#[test]
fn credentials_too_large_for_security_are_refused_not_cut() {
    let f = keychain_fixture();
    let mut doc: Value = serde_json::from_slice(&fixture_credentials("work")).unwrap();
    doc["mcpOAuth"] = json!({"server": {"accessToken": "x".repeat(2500)}});
    let big = serde_json::to_vec(&doc).unwrap();
    let out = f.run(&["profile", "add", "work", "--credentials", "-"], &big);
    assert!(out.status.success());
    let svc = service(Some(&f.runtime("work").to_string_lossy()));
    for mode in ["real", "fake"] {
        f.request("acquire", json!({"profile": "work", "link_mode": mode}))
            .err("keychain_failed");
        assert_eq!(item(&f, &svc), None, "{mode}: nothing half written");
        assert!(!f.store().join("runtimes/work").exists(), "{mode}");
        assert_eq!(fs::read(f.canonical("work")).unwrap(), big);
    }
}
