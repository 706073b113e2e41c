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
    let bin = bin_path();
    // `script` gives the command a terminal; stdout still goes to a file.
    let inner = format!(
        "echo '{{\"profile\":\"work\",\"link_mode\":\"fake\"}}' | {} acquire > {}",
        bin.display(),
        out_file.display()
    );
    let at_once = Bin::of(&f).with_env("CLAUTH_PROGRESS_AFTER_MS", "0");
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &inner, "/dev/null"]);
    let out = at_once.apply_env(&mut script).output().unwrap();
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
    let mut cmd = at_once.assert_command(&["acquire"]);
    cmd.write_stdin(r#"{"profile":"work","link_mode":"fake"}"#);
    let quiet = cmd.output().unwrap();
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
