//! The test harness of every test binary (`tests/it`, `tests/reliability`, `tests/e2e` include
//! it): a fixture home per test, the one command builder of the binary (`Bin`), decoded
//! responses, and checks that no token or panic ever reaches an output.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;

pub mod tls_proxy;

pub const MODES: [&str; 2] = ["real", "fake"];

/// Generates one test per link mode: `name_real` and `name_fake`.
#[macro_export]
macro_rules! both_modes {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn real() {
                ($body)("real")
            }
            #[test]
            fn fake() {
                ($body)("fake")
            }
        }
    };
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture_credentials(name: &str) -> Vec<u8> {
    fs::read(fixtures().join("credentials").join(format!("{name}.json")))
        .expect("fixture credentials")
}

/// Every token string in the fixtures; none may ever appear in any output.
pub fn all_fixture_tokens() -> Vec<String> {
    let mut tokens = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join("credentials"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(fixtures().join("home/.claude/.credentials.json"));
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for part in text.split('"') {
            if part.starts_with("sk-ant-") && part.len() > 20 {
                tokens.push(part.to_owned());
            }
        }
    }
    assert!(tokens.len() >= 10, "fixture tokens were not found");
    tokens
}

fn tokens() -> &'static [String] {
    static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TOKENS.get_or_init(all_fixture_tokens)
}

/// Fails when `bytes` hold any fixture token or anything with the token prefix `sk-ant-`
/// (every generated token has it too).
pub fn assert_no_secret(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains("sk-ant-"),
        "{what} holds a token:\n{}",
        clip(&text)
    );
    for token in tokens() {
        assert!(
            !text.contains(token.as_str()),
            "{what} holds a fixture token"
        );
    }
}

/// What every output of the binary is checked for: no secret (`assert_no_secret`) and no panic
/// message.
pub fn scan(what: &str, bytes: &[u8]) {
    assert_no_secret(what, bytes);
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains("panicked"),
        "{what} reports a panic:\n{}",
        clip(&text)
    );
}

/// `text`, cut after 600 bytes.
pub fn clip(text: &str) -> String {
    if text.len() <= 600 {
        text.to_owned()
    } else {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &text[..end], text.len())
    }
}

pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Every path under `root` (symlinks not followed) with its kind, size and mode, never its
/// contents: what a failed assertion shows of a fixture. At most 300 entries.
pub fn listing(root: &Path) -> String {
    const MAX: usize = 300;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                out.push(format!("  {rel}  (gone)"));
                continue;
            };
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o7777
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map(|t| t.display().to_string());
                out.push(format!(
                    "  {rel}  link -> {}",
                    target.unwrap_or_else(|e| format!("({e})"))
                ));
            } else if meta.is_dir() {
                out.push(format!("  {rel}/  dir {mode:04o}"));
                walk(root, &path, out);
            } else {
                out.push(format!("  {rel}  file {} B {mode:04o}", meta.len()));
            }
        }
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines);
    let total = lines.len();
    let mut text = format!("fixture {} ({total} paths):\n", root.display());
    for line in lines.iter().take(MAX) {
        text.push_str(line);
        text.push('\n');
    }
    if total > MAX {
        text.push_str(&format!("  ... and {} more\n", total - MAX));
    }
    text
}

/// Every code the program can answer with (`ErrorCode::ALL` of src/error.rs).
pub const ERROR_CODES: &[&str] = &[
    "invalid_request",
    "unknown_verb",
    "unsupported_protocol",
    "invalid_profile_name",
    "profile_not_found",
    "profile_exists",
    "profile_busy",
    "invalid_credentials",
    "claude_home_missing",
    "session_not_found",
    "link_mode_conflict",
    "lock_timeout",
    "unsafe_store",
    "login_in_use",
    "home_busy",
    "home_mismatch",
    "keychain_locked",
    "keychain_failed",
    "no_headroom",
    "io",
];

/// The codes whose requests may succeed when sent again unchanged.
pub const RETRYABLE: &[&str] = &["lock_timeout", "keychain_locked", "no_headroom"];

/// A response of a one-shot call, as a caller sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub verb: String,
    pub request: String,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The fixture's directory, listed when an assertion fails.
    pub root: PathBuf,
}

impl Response {
    /// What a failed assertion on this response shows: the request, the exit status, both
    /// outputs, and the fixture's files as they are now (kinds and sizes, never contents).
    pub fn context(&self) -> String {
        format!(
            "verb: {}\nrequest: {}\nexit: {:?}\nstdout: {}\nstderr: {}\n{}",
            self.verb,
            clip(&self.request),
            self.code,
            clip(&self.stdout),
            clip(&self.stderr),
            listing(&self.root)
        )
    }

    pub fn is_ok(&self) -> bool {
        self.json["ok"] == json!(true)
    }

    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    /// Asserts success (ok:true and exit 0) and returns the body.
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.json["ok"],
            json!(true),
            "expected ok\n{}",
            self.context()
        );
        assert_eq!(
            self.code,
            Some(0),
            "ok responses exit 0\n{}",
            self.context()
        );
        self.json.clone()
    }

    /// Asserts a well-formed failure: ok:false, a known code, a message, `retryable` a boolean
    /// that is true for `lock_timeout` only, a non-zero exit.
    pub fn assert_failure_shape(&self) {
        assert_eq!(
            self.json["ok"],
            json!(false),
            "expected an error\n{}",
            self.context()
        );
        let code = self.error_code().unwrap_or("");
        assert!(
            ERROR_CODES.contains(&code),
            "unknown code {code:?}\n{}",
            self.context()
        );
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.context()
        );
        assert!(
            self.json["error"]["retryable"].is_boolean(),
            "{}",
            self.context()
        );
        assert_eq!(
            self.json["error"]["retryable"],
            json!(RETRYABLE.contains(&code)),
            "{}",
            self.context()
        );
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "errors exit non-zero\n{}",
            self.context()
        );
    }

    /// Asserts failure with `code` and returns the body.
    pub fn err(&self, code: &str) -> Value {
        self.assert_failure_shape();
        assert_eq!(
            self.error_code(),
            Some(code),
            "wrong code\n{}",
            self.context()
        );
        self.json.clone()
    }
}

/// Decodes the one JSON line a one-shot call must print, after scanning both outputs.
fn decode_response(
    root: &Path,
    verb: &str,
    request: &[u8],
    stdout: &[u8],
    stderr: &[u8],
    code: Option<i32>,
) -> Response {
    scan(&format!("stdout of {verb}"), stdout);
    scan(&format!("stderr of {verb}"), stderr);
    let mut response = Response {
        verb: verb.to_owned(),
        request: String::from_utf8_lossy(request).into_owned(),
        json: Value::Null,
        stdout: String::from_utf8_lossy(stdout).into_owned(),
        stderr: String::from_utf8_lossy(stderr).into_owned(),
        code,
        root: root.to_owned(),
    };
    let stdout = &response.stdout;
    assert!(
        stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
        "exactly one line on stdout\n{}",
        response.context()
    );
    response.json = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", response.context()));
    let json = &response.json;
    assert!(
        json.is_object(),
        "stdout is one JSON object\n{}",
        response.context()
    );
    assert_eq!(
        json["protocol"],
        json!(1),
        "every response carries protocol 1\n{}",
        response.context()
    );
    assert!(
        json["ok"].is_boolean(),
        "ok is a boolean\n{}",
        response.context()
    );
    assert_eq!(
        json["ok"] == json!(true),
        code == Some(0),
        "exit 0 exactly when ok\n{}",
        response.context()
    );
    response
}

/// The binary under test.
pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clauth-helper"))
}

/// Every environment variable the program reads (src/layout.rs, the fake runtime's progress),
/// and those `run` would pass on to Claude Code that choose its account, its config directory,
/// its network or its certificates. No command of the harness inherits any of them.
pub const PROGRAM_ENV: &[&str] = &[
    "HOME",
    "USERPROFILE",
    "USER",
    "CLAUTH_HOME",
    "CLAUTH_LOCK_TIMEOUT_MS",
    "CLAUTH_LINK_MODE",
    "CLAUTH_PROGRESS_AFTER_MS",
    "CLAUTH_CREDENTIAL_STORE",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_SECURESTORAGE_CONFIG_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
];

/// The proxy every command of the harness goes through unless its test names another: nothing
/// listens on loopback port 9, so a connection through it is refused at once, and no request of
/// the program (the usage endpoint's, section 11 of PROTOCOL.md) can leave the machine.
pub const NO_NETWORK_PROXY: &str = "http://127.0.0.1:9";

/// Removes every variable the program reads, for a command that brings its own world (the
/// client suites make their own homes and stores).
pub fn remove_program_env(cmd: &mut Command) -> &mut Command {
    for key in PROGRAM_ENV {
        cmd.env_remove(key);
    }
    cmd
}

/// The one command builder: the real binary run against one fixture. Its environment is the
/// fixture's and nothing of the test process's: `PATH`, `HOME` (the fixture home), `CLAUTH_HOME`
/// (the fixture store) and the extra variables given. Every command of the binary in every test
/// binary comes from here, as a `std::process::Command` (`command`, `spawn`) or an
/// `assert_cmd::Command` (`assert_command`), and `apply_env` gives the same environment to a
/// program that wraps the binary (`sh`, `script`).
#[derive(Debug, Clone)]
pub struct Bin {
    /// The fixture's directory (home and store are in it).
    pub root: PathBuf,
    pub home: PathBuf,
    pub store: PathBuf,
    /// Extra variables, set last.
    pub env: BTreeMap<String, String>,
    /// Run through `sh -c 'umask 000; exec ...'`.
    pub permissive_umask: bool,
}

impl Bin {
    /// The binary against `f`, with the extra variables of `f.set_env`.
    pub fn of(f: &Fixture) -> Bin {
        Bin {
            root: f.dir.path().to_owned(),
            home: f.home(),
            store: f.store(),
            env: f.env.clone(),
            permissive_umask: false,
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Bin {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn with_permissive_umask(mut self) -> Bin {
        self.permissive_umask = true;
        self
    }

    /// Gives `cmd` this environment: the test process's is cleared (every name of `PROGRAM_ENV`
    /// is also removed by name, so that holds should the clearing ever go), then `PATH` is passed
    /// on and `HOME`, `CLAUTH_HOME`, `HTTPS_PROXY` (`NO_NETWORK_PROXY`) and the extra variables
    /// are set. Never touches the test process's own environment.
    pub fn apply_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env_clear();
        remove_program_env(cmd);
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CLAUTH_HOME", &self.store)
            .env("HTTPS_PROXY", NO_NETWORK_PROXY);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The binary with `args` in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = if self.permissive_umask {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("umask 000; exec \"$0\" \"$@\"")
                .arg(bin_path())
                .args(args);
            c
        } else {
            let mut c = Command::new(bin_path());
            c.args(args);
            c
        };
        self.apply_env(&mut cmd);
        cmd
    }

    /// The same command as an `assert_cmd::Command`.
    pub fn assert_command(&self, args: &[&str]) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command(args))
    }

    /// Starts `args` on pipes with `stdin` written (by a thread, so a large input cannot block)
    /// and closed.
    pub fn spawn(&self, args: &[&str], stdin: &[u8]) -> Child {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clauth-helper");
        let mut input = child.stdin.take().unwrap();
        if stdin.len() <= 16 * 1024 {
            // Fits in the pipe: no thread needed. A helper that exits early makes this fail.
            let _ = input.write_all(stdin);
        } else {
            let bytes = stdin.to_vec();
            std::thread::spawn(move || {
                let _ = input.write_all(&bytes);
            });
        }
        child
    }

    /// Runs `args` with `stdin` to completion; both outputs scanned.
    pub fn output(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.spawn(args, stdin).wait_with_output().unwrap();
        let what = args.join(" ");
        scan(&format!("stdout of {what}"), &out.stdout);
        scan(&format!("stderr of {what}"), &out.stderr);
        out
    }

    /// Runs `args` on a terminal: `script` gives the binary a pseudo-terminal as standard
    /// input, output and error, and `typed` is typed into it. Returns what the terminal showed
    /// (scanned) and the exit code. `timeout` bounds it, so a command that waits for a person
    /// fails the test instead of hanging it.
    pub fn on_terminal(&self, args: &[&str], typed: &[u8]) -> (String, Option<i32>) {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut line = format!("exec {}", quote(&bin_path().to_string_lossy()));
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut cmd = Command::new("timeout");
        cmd.args(["30", "script", "-qec", &line, "/dev/null"]);
        self.apply_env(&mut cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("`script` and `timeout` are installed");
        let _ = child.stdin.take().unwrap().write_all(typed);
        let out = child.wait_with_output().unwrap();
        scan(&format!("terminal of {}", args.join(" ")), &out.stdout);
        let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        assert_ne!(
            out.status.code(),
            Some(124),
            "`{}` waited on the terminal:\n{shown}",
            args.join(" ")
        );
        (shown, out.status.code())
    }

    /// Runs `args` to completion; returns (stdout, stderr, exit code), both outputs scanned.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        let out = self.output(args, stdin);
        (out.stdout, out.stderr, out.status.code())
    }

    /// One protocol call: `verb` with raw `body`.
    pub fn raw(&self, verb: &str, body: &[u8]) -> Response {
        let out = self.spawn(&[verb], body).wait_with_output().unwrap();
        self.decode(verb, body, &out.stdout, &out.stderr, out.status.code())
    }

    pub fn call(&self, verb: &str, body: &Value) -> Response {
        self.raw(verb, body.to_string().as_bytes())
    }

    /// A call retried while it answers `lock_timeout`; returns the response and the retries.
    pub fn call_retrying(&self, verb: &str, body: &Value) -> (Response, u64) {
        let mut retries = 0;
        loop {
            let response = self.call(verb, body);
            if response.error_code() == Some("lock_timeout") {
                assert_eq!(response.json["error"]["retryable"], json!(true));
                retries += 1;
                continue;
            }
            return (response, retries);
        }
    }

    /// Decodes what a one-shot call of `verb` with `request` printed (both outputs scanned).
    pub fn decode(
        &self,
        verb: &str,
        request: &[u8],
        stdout: &[u8],
        stderr: &[u8],
        code: Option<i32>,
    ) -> Response {
        decode_response(&self.root, verb, request, stdout, stderr, code)
    }
}

/// One test's world: a claude home copied from the fixtures and an empty store.
pub struct Fixture {
    pub dir: TempDir,
    env: BTreeMap<String, String>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixtures().join("home"), &dir.path().join("home"));
        Fixture {
            dir,
            env: BTreeMap::new(),
        }
    }

    /// A fixture whose home has no `~/.claude`.
    pub fn without_claude_home() -> Fixture {
        let f = Fixture::new();
        fs::remove_dir_all(f.claude()).unwrap();
        f
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn claude(&self) -> PathBuf {
        self.home().join(".claude")
    }
    pub fn claude_json(&self) -> PathBuf {
        self.home().join(".claude.json")
    }
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    pub fn canonical(&self, profile: &str) -> PathBuf {
        self.store()
            .join("profiles")
            .join(profile)
            .join("credentials.json")
    }
    pub fn runtime(&self, profile: &str) -> PathBuf {
        self.store().join("runtimes").join(profile).join("config")
    }

    /// Sets an extra environment variable for every command of this fixture.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.into(), value.into());
    }

    /// The pairs a profile keeps aside as `credentials.<what>-<ms>.json` (`replaced`,
    /// `keychain`).
    pub fn kept_aside(&self, profile: &str, what: &str) -> Vec<PathBuf> {
        fs::read_dir(self.store().join("profiles").join(profile))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("credentials.{what}-"))
            })
            .collect()
    }

    /// A variable this fixture's commands get, when set.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The binary, as an `assert_cmd::Command`, in this fixture's environment (`Bin`).
    pub fn command(&self) -> assert_cmd::Command {
        Bin::of(self).assert_command(&[])
    }

    /// Runs `args` with `stdin`; checks that no output holds a secret or a panic.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        Bin::of(self).output(args, stdin)
    }

    /// Sends one protocol request and decodes the single JSON line it answers.
    pub fn raw(&self, verb: &str, body: &[u8]) -> Response {
        Bin::of(self).raw(verb, body)
    }

    pub fn request(&self, verb: &str, body: Value) -> Response {
        Bin::of(self).call(verb, &body)
    }

    /// Adds a profile with credentials from `fixtures/credentials/<creds>.json` (or none).
    pub fn add_profile(&self, name: &str, creds: Option<&str>) {
        let mut args = vec!["profile", "add", name];
        let bytes = match creds {
            Some(c) => {
                args.extend(["--credentials", "-"]);
                fixture_credentials(c)
            }
            None => Vec::new(),
        };
        let out = self.run(&args, &bytes);
        assert!(
            out.status.success(),
            "profile add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A profile for an API gateway: no credentials, two env overrides (one shadowing the
    /// home's `ANTHROPIC_BASE_URL`).
    pub fn add_gateway_profile(&self, name: &str) {
        let out = self.run(
            &[
                "profile",
                "add",
                name,
                "--env",
                "ANTHROPIC_BASE_URL=http://127.0.0.1:7777",
                "--env",
                "EXTRA=yes",
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the binary in the background with this fixture's environment (outputs inherited).
    pub fn spawn(&self, args: &[&str]) -> Child {
        Bin::of(self).command(args).spawn().unwrap()
    }

    pub fn acquire(&self, profile: &str, mode: &str) -> Value {
        self.request("acquire", json!({"profile": profile, "link_mode": mode}))
            .ok()
    }

    pub fn tick(&self, session: &Value) -> Value {
        self.request("tick", json!({"session": session})).ok()
    }

    pub fn release(&self, session: &Value) -> Value {
        self.request("release", json!({"session": session})).ok()
    }

    pub fn status(&self) -> Value {
        self.request("status", json!({})).ok()
    }

    /// Every path under the fixture with its kind and contents, to show that nothing changed.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        snapshot_into(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(
                rel,
                format!("link -> {}", fs::read_link(&path).unwrap().display()),
            );
        } else if meta.is_dir() {
            out.insert(rel, "dir".into());
            snapshot_into(root, &path, out);
        } else {
            // The state lock file is created by every locked verb; it holds nothing.
            out.insert(
                rel,
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned(),
            );
        }
    }
}

/// Writes `bytes` the way Claude Code does: a temp sibling renamed over the path.
pub fn write_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(".tmp-cc-{}", std::process::id()));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

pub fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn session_of(v: &Value) -> Value {
    v["session"].clone()
}

/// A `serve` process on pipes.
pub struct Serve {
    pub child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    pub events: Vec<Value>,
    next_id: u64,
}

impl Fixture {
    pub fn serve(&self) -> Serve {
        use std::io::BufRead;
        let mut cmd = Bin::of(self).command(&["serve"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Serve {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            events: Vec::new(),
            next_id: 0,
        }
    }
}

impl Serve {
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line on stdout, decoded and checked (one JSON object, protocol 1, no secret).
    pub fn next_line(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("serve answered within 30 s");
        assert_no_secret("serve stdout", line.as_bytes());
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(value["protocol"], json!(1), "{line}");
        value
    }

    /// The next response (event lines are kept aside in `events`).
    pub fn next_response(&mut self) -> Value {
        loop {
            let v = self.next_line();
            if v.get("event").is_some() {
                assert!(v.get("id").is_none(), "events carry no id: {v}");
                self.events.push(v);
            } else {
                return v;
            }
        }
    }

    /// Sends a request with a fresh id and returns the response that echoes it.
    pub fn call(&mut self, verb: &str, mut body: Value) -> Value {
        self.next_id += 1;
        body["verb"] = json!(verb);
        body["id"] = json!(self.next_id);
        self.write_line(&body.to_string());
        let resp = self.next_response();
        assert_eq!(
            resp["id"],
            json!(self.next_id),
            "the response echoes the id: {resp}"
        );
        resp
    }

    /// Waits for an event named `name`, for at most `secs` seconds.
    pub fn wait_event(&mut self, name: &str, secs: u64) -> Value {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == json!(name)) {
            return self.events.remove(pos);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                assert_no_secret("serve stdout", line.as_bytes());
                let v: Value = serde_json::from_str(&line).unwrap();
                validate("serve.event", &v);
                if v["event"] == json!(name) {
                    return v;
                }
                self.events.push(v);
            }
        }
        panic!("no {name} event within {secs} s; saw {:?}", self.events);
    }

    /// Closes stdin and waits for the exit status; returns stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_no_secret("serve stderr", stderr.as_bytes());
        (status, stderr)
    }
}

/// Validators for every schema in protocol/schema/, compiled once per test binary.
fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static CELL: std::sync::OnceLock<BTreeMap<String, jsonschema::Validator>> =
        std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/schema");
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&dir).expect("protocol/schema exists") {
            let path = entry.unwrap().path();
            let name = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".schema.json")
                .to_owned();
            let schema: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            out.insert(
                name,
                jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            );
        }
        out
    })
}

/// Asserts that `value` validates against `protocol/schema/<name>.schema.json`.
pub fn validate(name: &str, value: &Value) {
    let validator = validators()
        .get(name)
        .unwrap_or_else(|| panic!("no schema {name}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not match {name}: {errors:?}"
    );
}

/// Asserts that `value` is a valid response of some verb.
pub fn validate_any_response(value: &Value) {
    let ok = validators()
        .iter()
        .filter(|(name, _)| name.ends_with(".response"))
        .any(|(_, v)| v.is_valid(value));
    assert!(ok, "{value} matches no response schema");
}

/// Polls until `check` holds, for at most `secs` seconds (a bound, not a speed assertion).
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    check()
}
