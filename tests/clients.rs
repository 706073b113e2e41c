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

/// The install step and the first Node example of a README, with the clone's path in place of
/// `/path/to/clauth-helper`.
fn node_example(readme: &str) -> (String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(Path::new(root).join(readme)).unwrap();
    let install = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("npm install /path/to/clauth-helper/")
        })
        .unwrap_or_else(|| panic!("{readme} gives no install step for the Node client"))
        .split('#')
        .next()
        .unwrap()
        .trim()
        .replace("/path/to/clauth-helper", root);
    let code = text
        .split("```js\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .find(|block| block.contains("require('clauth-helper-client')"))
        .unwrap_or_else(|| panic!("{readme} has no Node example"))
        .to_owned();
    (install, code)
}

/// What README.md and the clients' README show for Node runs as written, after their install
/// step, in a project of its own: the session's `claude` gets the profile's runtime, and the
/// session ends with it.
#[test]
fn the_node_examples_of_the_readmes_run_as_written() {
    for readme in ["README.md", "protocol/clients/README.md"] {
        let f = support::Fixture::new();
        f.add_profile("work", Some("work"));
        let project = f.dir.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let (install, code) = node_example(readme);
        let words: Vec<&str> = install.split_whitespace().collect();
        let out = Command::new(words[0])
            .args(&words[1..])
            .args(["--no-audit", "--no-fund", "--offline"])
            .current_dir(&project)
            .output()
            .unwrap_or_else(|e| panic!("`npm` is needed to try {readme}'s install step: {e}"));
        assert!(
            out.status.success(),
            "{readme}: `{install}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(project.join("example.js"), &code).unwrap();
        // A `claude` that says what it was given.
        let bin_dir = f.dir.path().join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let seen = f.dir.path().join("seen");
        let claude = bin_dir.join("claude");
        std::fs::write(
            &claude,
            format!(
                "#!/bin/sh\necho \"$CLAUDE_CONFIG_DIR $CLAUTH_PROFILE\" > {}\n",
                seen.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}:{}",
            bin_dir.display(),
            support::bin_path().parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut node = Command::new("node");
        node.arg("example.js").current_dir(&project);
        support::Bin::of(&f)
            .with_env("PATH", &path)
            .apply_env(&mut node);
        let out = node.output().expect("node is installed");
        assert!(
            out.status.success(),
            "{readme}: the example failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            format!("{} work\n", f.runtime("work").display()),
            "{readme}"
        );
        let status = f.status();
        assert_eq!(
            status["profiles"][0]["sessions"],
            serde_json::json!([]),
            "{readme}: the session ended"
        );
    }
}
