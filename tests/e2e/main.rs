//! End to end with the real Claude Code, offline: two profiles' `claude -p` at once in each link
//! mode against a mock Messages API on loopback; the home profile and `profile use`; and a real
//! token refresh: two profiles with expired logins at once, in each link mode, whose `claude -p`
//! refreshes through `HTTPS_PROXY` at `platform.claude.com` (played by `support::tls_proxy` with
//! a CA made at run time and trusted through `NODE_EXTRA_CA_CERTS`), saves the new pair in its
//! profile, calls the Messages API with the new access token, and leaves nothing of its lock
//! family behind. Every other host reached through the proxy is refused.
//!
//! Ignored by default: it needs Claude Code from the npm registry. `.ci/run` installs it into
//! `target/e2e-<version>` and runs these tests with `--include-ignored`; when the install fails it
//! says so and the tests are reported as ignored, never as passed. By hand:
//! `npm install --prefix target/e2e @anthropic-ai/claude-code && cargo test --test e2e -- --include-ignored`
//! (or point `CLAUTH_E2E_CLAUDE` at a `claude` binary).

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod bundle;
mod mock;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use support::tls_proxy::{HttpRequest, HttpResponse, Outcome, TlsProxy};
use support::*;

fn claude_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLAUTH_E2E_CLAUDE") {
        return PathBuf::from(path);
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/e2e/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
    assert!(
        default.exists(),
        "Claude Code is not installed at {}: run `npm install --prefix target/e2e @anthropic-ai/claude-code` or set CLAUTH_E2E_CLAUDE",
        default.display()
    );
    default
}

fn access_token(fixture: &str) -> String {
    let v: Value = serde_json::from_slice(&fixture_credentials(fixture)).unwrap();
    v["claudeAiOauth"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn read_json(path: &Path) -> Map<String, Value> {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// Every `.jsonl` under `dir` whose text contains `needle`.
fn transcripts_with(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(transcripts_with(&path, needle));
        } else if path.extension().is_some_and(|e| e == "jsonl")
            && fs::read_to_string(&path)
                .unwrap_or_default()
                .contains(needle)
        {
            out.push(path);
        }
    }
    out
}

/// Claude Code kept on loopback and quiet: it also calls api.anthropic.com directly, through
/// this proxy, which refuses, so nothing leaves the machine.
fn offline<'c>(cmd: &'c mut Command, proxy: &str) -> &'c mut Command {
    cmd.env("TERM", "dumb")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("HTTPS_PROXY", proxy)
        .env("HTTP_PROXY", proxy)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// Waits (bounded) for one `claude -p`, and checks it answered with the mock's reply.
fn finish(what: &str, mut child: std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: claude did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_no_secret("claude stdout", &out.stdout);
    assert_no_secret("claude stderr", &out.stderr);
    assert!(
        out.status.success() && stdout.contains(mock::REPLY),
        "{what}: claude failed ({:?})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The access tokens the mock saw with Messages requests carrying `prompt`.
fn tokens_for(api: &mock::MockApi, prompt: &str) -> Vec<Option<String>> {
    api.requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/messages") && r.body.contains(prompt))
        .map(|r| r.authorization.clone())
        .collect()
}

fn home_access_token(f: &Fixture) -> String {
    let v: Value =
        serde_json::from_slice(&fs::read(f.claude().join(".credentials.json")).unwrap()).unwrap();
    v["claudeAiOauth"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn both_profiles_at_once(mode: &str, claude: &Path) {
    let api = mock::MockApi::start();
    let f = Fixture::new();
    let base_url = format!("ANTHROPIC_BASE_URL=http://127.0.0.1:{}", api.port());
    for (profile, creds) in [("work", "work"), ("personal", "personal")] {
        let out = f.run(
            &[
                "profile",
                "add",
                profile,
                "--credentials",
                "-",
                "--env",
                &base_url,
            ],
            &fixture_credentials(creds),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let home_json_before = read_json(&f.claude_json());
    let project = f.dir.path().join(format!("project-{mode}"));
    fs::create_dir_all(&project).unwrap();

    let proxy = format!("http://127.0.0.1:{}", api.port());
    let bin = Bin::of(&f);
    let children: Vec<(&str, String, std::process::Child)> = ["work", "personal"]
        .into_iter()
        .map(|profile| {
            let prompt = format!("e2e prompt from {profile} in {mode} mode");
            let mut child = bin.command(&["run", profile, "--link-mode", mode, "--"]);
            child
                .arg(claude)
                .args(["-p", &prompt])
                .current_dir(&project);
            let child = offline(&mut child, &proxy).spawn().unwrap();
            (profile, prompt, child)
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut prompts = Vec::new();
    for (profile, prompt, mut child) in children {
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{mode}: claude under {profile} did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_no_secret("claude stdout", &out.stdout);
        assert_no_secret("claude stderr", &out.stderr);
        assert!(
            out.status.success(),
            "{mode}: claude under {profile} failed ({:?})\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        assert!(
            stdout.contains(mock::REPLY),
            "{mode}: {profile} did not print the mock's reply: {stdout}"
        );
        prompts.push((profile, prompt));
    }

    // Each request carried its own profile's access token.
    let requests = api.requests();
    for (profile, prompt) in &prompts {
        let mine: Vec<_> = requests
            .iter()
            .filter(|r| r.path.starts_with("/v1/messages") && r.body.contains(prompt.as_str()))
            .collect();
        assert!(
            !mine.is_empty(),
            "{mode}: no Messages request carried {profile}'s prompt"
        );
        let want = format!("Bearer {}", access_token(profile));
        for r in mine {
            assert_eq!(
                r.authorization.as_deref(),
                Some(want.as_str()),
                "{mode}: a request of {profile} carried another token"
            );
        }
    }
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with('/') || r.method == "CONNECT"),
        "only loopback requests"
    );

    // Both sessions released: runtimes gone, transcripts in ~/.claude/projects.
    assert!(
        fs::read_dir(f.store().join("runtimes"))
            .unwrap()
            .next()
            .is_none(),
        "{mode}: a runtime was left behind"
    );
    for (profile, prompt) in &prompts {
        let found = transcripts_with(&f.claude().join("projects"), prompt);
        assert!(
            !found.is_empty(),
            "{mode}: {profile}'s transcript is not under ~/.claude/projects"
        );
    }

    // Account keys stayed apart: each profile kept its own, ~/.claude.json kept the home's.
    let account = |p: &str| read_json(&f.store().join("profiles").join(p).join("account.json"));
    let (work, personal) = (account("work"), account("personal"));
    assert!(
        work.contains_key("userID") && personal.contains_key("userID"),
        "{mode}: Claude Code's device ids were kept per profile: {work:?} {personal:?}"
    );
    assert_ne!(
        work.get("userID"),
        personal.get("userID"),
        "{mode}: two profiles share an id"
    );
    let home_json = read_json(&f.claude_json());
    for key in clauth_helper::runtime::ACCOUNT_KEYS {
        assert_eq!(
            home_json.get(*key),
            home_json_before.get(*key),
            "{mode}: {key} of ~/.claude.json changed"
        );
    }
    // ~/.claude.json kept the keys Claude Code added in the sessions.
    let before: BTreeSet<&String> = home_json_before.keys().collect();
    let added: Vec<&String> = home_json.keys().filter(|k| !before.contains(k)).collect();
    assert!(
        !added.is_empty(),
        "{mode}: no key Claude Code wrote reached ~/.claude.json"
    );
    eprintln!(
        "{mode}: keys Claude Code added to ~/.claude.json: {added:?}; per-profile keys: {:?}",
        work.keys().collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs Claude Code from the npm registry; .ci/run installs it and runs this with --include-ignored"]
fn real_claude_code_runs_two_profiles_at_once_in_both_link_modes() {
    let claude = claude_binary();
    for mode in ["real", "fake"] {
        both_profiles_at_once(mode, &claude);
    }
}

#[test]
#[ignore = "needs Claude Code from the npm registry; .ci/run installs it and runs this with --include-ignored"]
fn real_claude_code_under_the_home_profile_and_after_profile_use() {
    let claude = claude_binary();
    let api = mock::MockApi::start();
    let f = Fixture::new();
    let base_url = format!("ANTHROPIC_BASE_URL=http://127.0.0.1:{}", api.port());
    let proxy = format!("http://127.0.0.1:{}", api.port());
    let home_token = home_access_token(&f);
    let home_login = fs::read(f.claude().join(".credentials.json")).unwrap();
    for args in [
        vec![
            "profile",
            "add",
            "home",
            "--from-claude",
            "--env",
            &base_url,
        ],
        vec![
            "profile",
            "add",
            "work",
            "--credentials",
            "-",
            "--env",
            &base_url,
        ],
    ] {
        let out = f.run(&args, &fixture_credentials("work"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The home's settings.json points ANTHROPIC_BASE_URL nowhere; Claude Code applies its env
    // block over the process environment, so the home profile's override could not win.
    let settings = f.claude().join("settings.json");
    let mut doc = read_json(&settings);
    if let Some(Value::Object(env)) = doc.get_mut("env") {
        env.remove("ANTHROPIC_BASE_URL");
    }
    fs::write(&settings, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let project = f.dir.path().join("project-home");
    fs::create_dir_all(&project).unwrap();
    let bin = Bin::of(&f);

    // The home profile runs in the claude home itself, with its own login.
    let mut cmd = bin.command(&["run", "home", "--"]);
    cmd.arg(&claude)
        .args(["-p", "e2e prompt as the home profile"])
        .current_dir(&project);
    finish("run home", offline(&mut cmd, &proxy).spawn().unwrap());
    assert_eq!(
        tokens_for(&api, "e2e prompt as the home profile"),
        vec![Some(format!("Bearer {home_token}"))]
    );
    assert!(
        fs::read_dir(f.store().join("runtimes"))
            .unwrap()
            .next()
            .is_none(),
        "nothing was built for the home profile"
    );

    // `profile use work`: plain claude now runs as work, and home is a profile like others.
    let out = f.run(&["profile", "use", "work"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(&claude);
    bin.apply_env(&mut cmd);
    cmd.env(
        base_url.split_once('=').unwrap().0,
        base_url.split_once('=').unwrap().1,
    )
    .args(["-p", "e2e prompt from plain claude"])
    .current_dir(&project);
    finish("plain claude", offline(&mut cmd, &proxy).spawn().unwrap());
    assert_eq!(
        tokens_for(&api, "e2e prompt from plain claude"),
        vec![Some(format!("Bearer {}", access_token("work")))]
    );
    let mut cmd = bin.command(&["run", "home", "--"]);
    cmd.arg(&claude)
        .args(["-p", "e2e prompt from home after use"])
        .current_dir(&project);
    finish(
        "run home after use",
        offline(&mut cmd, &proxy).spawn().unwrap(),
    );
    assert_eq!(
        tokens_for(&api, "e2e prompt from home after use"),
        vec![Some(format!("Bearer {home_token}"))]
    );
    // Each login in one place: work's in the home, home's in its profile.
    assert_eq!(
        fs::read(f.claude().join(".credentials.json")).unwrap(),
        fixture_credentials("work")
    );
    assert_eq!(
        fs::read(f.store().join("profiles/home/credentials.json")).unwrap(),
        home_login
    );
    assert!(!f.store().join("profiles/work/credentials.json").exists());
}

/// Where Claude Code refreshes a login (docs/claude-code-facts.md, section 5).
const TOKEN_HOST: &str = "platform.claude.com";

/// One rotation the mock token endpoint knows: the pair it hands out for one refresh token.
#[derive(Clone)]
struct Rotation {
    profile: &'static str,
    old_refresh: String,
    new_access: String,
    new_refresh: String,
}

impl Rotation {
    fn new(profile: &'static str, fixture: &str, mode: &str) -> Rotation {
        let v: Value = serde_json::from_slice(&fixture_credentials(fixture)).unwrap();
        let tag = format!("{}-{}", profile.to_uppercase(), mode.to_uppercase());
        Rotation {
            profile,
            old_refresh: v["claudeAiOauth"]["refreshToken"]
                .as_str()
                .unwrap()
                .to_owned(),
            new_access: format!("sk-ant-oat01-E2E-{tag}-ACCESS2-{}", "B".repeat(64)),
            new_refresh: format!("sk-ant-ort01-E2E-{tag}-REFRESH2-{}", "B".repeat(64)),
        }
    }
}

/// `fixtures/credentials/<fixture>.json` with `expiresAt` an hour ago.
fn expired_login(fixture: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture_credentials(fixture)).unwrap();
    v["claudeAiOauth"]["expiresAt"] = Value::from(now_ms() - 3_600_000);
    serde_json::to_vec_pretty(&v).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The OAuth token endpoint as Claude Code expects it: a JSON refresh request answered with the
/// new pair, its account and organisation; `invalid_grant` for a refresh token it does not know.
fn token_endpoint(rotations: Vec<Rotation>) -> impl Fn(&HttpRequest) -> HttpResponse {
    move |request| {
        if request.method != "POST" || request.route() != "/v1/oauth/token" {
            return HttpResponse::json(404, &serde_json::json!({"error": "not_found"}));
        }
        let body = request.json().unwrap_or_default();
        if body["grant_type"] != "refresh_token" {
            return HttpResponse::json(400, &serde_json::json!({"error": "invalid_request"}));
        }
        let Some(rotation) = rotations
            .iter()
            .find(|r| body["refresh_token"] == r.old_refresh.as_str())
        else {
            return HttpResponse::json(
                400,
                &serde_json::json!({"error": "invalid_grant", "error_description": "Refresh token not found or invalid"}),
            );
        };
        let profile = rotation.profile;
        HttpResponse::json(
            200,
            &serde_json::json!({
                "token_type": "Bearer",
                "access_token": rotation.new_access,
                "refresh_token": rotation.new_refresh,
                "expires_in": 28800,
                "scope": body["scope"].as_str().unwrap_or("user:inference user:profile"),
                "account": {"uuid": format!("00000000-0000-4000-8000-{profile:0>12}"), "email_address": format!("{profile}@example.com")},
                "organization": {"uuid": "00000000-0000-4000-8000-000000000e2e", "name": "E2E"},
            }),
        )
    }
}

/// Whether `name` is of Claude Code's lock family or its temp files (docs/claude-code-facts.md,
/// section 2), or a `clauth-conflict` copy of one.
fn is_lock_debris(name: &str) -> bool {
    let name = name.split(".clauth-conflict-").next().unwrap_or(name);
    name.ends_with(".lock")
        || name.ends_with(".lock.owner")
        || name.contains(".owner.tmp.")
        || name.contains(".tmp.")
}

/// Every path under `root` that `is_lock_debris` (symlinks not followed).
fn lock_debris(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        if is_lock_debris(&entry.file_name().to_string_lossy()) {
            out.push(path);
        } else if entry.file_type().unwrap().is_dir() {
            out.extend(lock_debris(&path));
        }
    }
    out
}

/// Every file under `root` whose bytes hold `needle` (symlinks not followed).
fn files_holding(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_holding(&path, needle));
        } else if kind.is_file()
            && String::from_utf8_lossy(&fs::read(&path).unwrap_or_default()).contains(needle)
        {
            out.push(path);
        }
    }
    out
}

fn two_expired_profiles_refresh_at_once(mode: &str, claude: &Path) {
    let api = mock::MockApi::start();
    let rotations = [
        Rotation::new("work", "work", mode),
        Rotation::new("personal", "personal", mode),
    ];
    let proxy = TlsProxy::builder()
        .host(TOKEN_HOST, token_endpoint(rotations.to_vec()))
        .start();
    let f = Fixture::new();
    let base_url = format!("ANTHROPIC_BASE_URL=http://127.0.0.1:{}", api.port());
    for r in &rotations {
        let out = f.run(
            &[
                "profile",
                "add",
                r.profile,
                "--credentials",
                "-",
                "--env",
                &base_url,
            ],
            &expired_login(r.profile),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let project = f.dir.path().join(format!("project-refresh-{mode}"));
    fs::create_dir_all(&project).unwrap();

    let bin = Bin::of(&f);
    let children: Vec<(&Rotation, String, std::process::Child)> = rotations
        .iter()
        .map(|r| {
            let prompt = format!("e2e refresh prompt from {} in {mode} mode", r.profile);
            let mut cmd = bin.command(&["run", r.profile, "--link-mode", mode, "--"]);
            cmd.arg(claude).args(["-p", &prompt]).current_dir(&project);
            offline(&mut cmd, &proxy.url()).env("NODE_EXTRA_CA_CERTS", proxy.ca_file());
            (r, prompt, cmd.spawn().unwrap())
        })
        .collect();
    let mut prompts = Vec::new();
    for (r, prompt, child) in children {
        finish(&format!("{mode}: run {}", r.profile), child);
        prompts.push((r, prompt));
    }

    // The token endpoint saw each old refresh token once, and answered every request.
    let token_requests = proxy.requests_to(TOKEN_HOST);
    for (r, _) in &prompts {
        let posted = token_requests
            .iter()
            .filter(|q| q.json().unwrap_or_default()["refresh_token"] == r.old_refresh.as_str())
            .count();
        assert_eq!(
            posted, 1,
            "{mode}: {}'s refresh token was posted {posted} times",
            r.profile
        );
    }
    assert!(
        proxy
            .records()
            .iter()
            .all(|rec| rec.outcome == Outcome::Answered(200) || rec.outcome == Outcome::Refused),
        "{mode}: a request to the token endpoint failed: {:?}",
        proxy
            .records()
            .iter()
            .map(|rec| (&rec.request.method, &rec.request.host, &rec.outcome))
            .collect::<Vec<_>>()
    );
    assert!(
        proxy
            .refused()
            .iter()
            .all(|q| q.host != TOKEN_HOST || q.method != "CONNECT"),
        "{mode}: a CONNECT to the token host was refused"
    );

    for (r, prompt) in &prompts {
        // Claude Code called the Messages API with the new access token only.
        let want = format!("Bearer {}", r.new_access);
        let seen = tokens_for(&api, prompt);
        assert!(
            !seen.is_empty() && seen.iter().all(|t| t.as_deref() == Some(want.as_str())),
            "{mode}: {}'s Messages requests did not all carry its new access token ({} requests)",
            r.profile,
            seen.len()
        );
        // The profile keeps the new pair, and it is the one place that holds it.
        let stored = read_json(&f.canonical(r.profile));
        let oauth = &stored["claudeAiOauth"];
        assert!(
            oauth["accessToken"] == r.new_access.as_str()
                && oauth["refreshToken"] == r.new_refresh.as_str(),
            "{mode}: {} does not keep its refreshed pair\n{}",
            r.profile,
            listing(f.dir.path())
        );
        assert!(
            oauth["expiresAt"].as_u64().is_some_and(|t| t > now_ms()),
            "{mode}: {}'s saved expiry is not in the future",
            r.profile
        );
        assert_eq!(
            files_holding(f.dir.path(), &r.new_refresh),
            vec![f.canonical(r.profile)],
            "{mode}: {}'s new refresh token is not in exactly one place",
            r.profile
        );
        eprintln!(
            "{mode}: {} saved {:?}",
            r.profile,
            oauth.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
    }

    // Nothing of Claude Code's lock family is left in the home or the runtimes.
    let mut debris = lock_debris(&f.home());
    debris.extend(lock_debris(&f.store().join("runtimes")));
    assert!(
        debris.is_empty(),
        "{mode}: lock debris left behind: {debris:?}\n{}",
        listing(f.dir.path())
    );
    assert!(
        fs::read_dir(f.store().join("runtimes"))
            .unwrap()
            .next()
            .is_none(),
        "{mode}: a runtime was left behind\n{}",
        listing(&f.store())
    );
    // The Messages mock saw loopback requests only; everything else reached the proxy, which
    // answered for the token host alone.
    assert!(
        api.requests().iter().all(|q| q.path.starts_with('/')),
        "{mode}: the Messages mock was used as a proxy"
    );
    let refused: BTreeSet<String> = proxy.refused().into_iter().map(|q| q.host).collect();
    eprintln!("{mode}: hosts refused by the proxy: {refused:?}");
}

#[test]
#[ignore = "needs Claude Code from the npm registry; .ci/run installs it and runs this with --include-ignored"]
fn real_claude_code_refreshes_two_expired_profiles_at_once_in_both_link_modes() {
    let claude = claude_binary();
    for mode in ["real", "fake"] {
        two_expired_profiles_refresh_at_once(mode, &claude);
    }
}
