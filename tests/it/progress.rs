//! A long fake-mode build shows progress on a terminal's stderr, never on stdout.

use std::fs;

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn a_fake_mode_acquire_shows_progress_on_a_terminal_and_keeps_stdout_clean() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    for i in 0..50 {
        fs::write(f.claude().join(format!("todos/t{i}.json")), "[]").unwrap();
    }
    let out_file = f.dir.path().join("response.json");
    let bin = assert_cmd::cargo::cargo_bin("clauth-helper");
    // `script` gives the command a terminal; stdout still goes to a file.
    let inner = format!(
        "echo '{{\"profile\":\"work\",\"link_mode\":\"fake\"}}' | {} acquire > {}",
        bin.display(),
        out_file.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("HOME", f.home())
        .env("CLAUTH_HOME", f.store())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLAUTH_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(
        terminal.contains("copied the claude home into the runtime"),
        "terminal showed: {terminal:?}"
    );
    let response = fs::read_to_string(&out_file).unwrap();
    assert_eq!(
        response.lines().count(),
        1,
        "stdout holds the response only: {response:?}"
    );
    let v: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(v["ok"], json!(true));
    f.release(&v["session"]);
    // Without a terminal nothing is shown.
    let mut cmd = f.command();
    cmd.env("CLAUTH_PROGRESS_AFTER_MS", "0")
        .arg("acquire")
        .write_stdin(r#"{"profile":"work","link_mode":"fake"}"#);
    let quiet = cmd.output().unwrap();
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
