//! Runs the test suites of the wrapper clients in `protocol/clients/` against the binary built
//! here, so a change to the protocol that breaks a client fails `cargo test`.
//!
//! The suites need python3, node and sh. A missing interpreter fails its test instead of
//! skipping it: a skipped client suite would let a broken client pass CI unnoticed.

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn client_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("protocol/clients")
        .join(name)
}

/// Runs `program args` in the client's directory with `CLAUTH_HELPER_BIN` set and none of the
/// variables the program reads; asserts success.
fn run_suite(client: &str, program: &str, args: &[String]) {
    let dir = client_dir(client);
    let mut command = Command::new(program);
    // Each suite makes its own home and store: nothing of this process's may leak in.
    let output = support::remove_program_env(&mut command)
        .args(args)
        .current_dir(&dir)
        .env(
            "CLAUTH_HELPER_BIN",
            assert_cmd::cargo::cargo_bin("clauth-helper"),
        )
        // Keep the source tree free of __pycache__.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed, and the {client} client's tests need it; \
             install it (CI does) to run this test"
        ),
        Err(e) => panic!("cannot run `{program}` for the {client} client's tests: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {client} client's tests failed ({}) in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        dir.display()
    );
    // No client or test may print a token.
    assert!(
        !stdout.contains("sk-ant-") && !stderr.contains("sk-ant-"),
        "the {client} client's tests printed a token"
    );
}

#[test]
fn python_client() {
    let args = ["-m", "unittest", "-v"].map(String::from);
    run_suite("python", "python3", &args);
}

#[test]
fn node_client() {
    // Files, not the `test/` directory: Node 21 and later read a directory argument of `--test`
    // as a module path instead of searching it.
    let mut files: Vec<String> = std::fs::read_dir(client_dir("node").join("test"))
        .expect("protocol/clients/node/test")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no test files in protocol/clients/node/test"
    );
    let mut args = vec!["--test".to_owned()];
    args.extend(files);
    run_suite("node", "node", &args);
}

#[test]
fn sh_client() {
    run_suite("sh", "sh", &["test.sh".to_owned()]);
}
