//! Security: private modes under a permissive umask, even for an instant; stores and profile
//! directories that are symlinks or someone else's; path traversal; tokens in outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_modes;
use crate::common::*;
use crate::support::*;

/// Paths of the store whose modes the helper decides (mirrored copies of the claude home inside
/// a fake-mode runtime keep the home's modes; see the mirror test below).
fn own_store_paths(f: &Fixture) -> Vec<PathBuf> {
    let mut out = vec![f.store()];
    for p in walk(&f.store()) {
        let mirrored = p.components().count() > 0
            && p.ancestors().any(|a| {
                a.file_name().is_some_and(|n| n == "config")
                    && a.parent()
                        .and_then(Path::parent)
                        .is_some_and(|r| r.ends_with("runtimes"))
            })
            && !p.file_name().is_some_and(|n| {
                [".credentials.json", "settings.json", ".claude.json"]
                    .contains(&n.to_string_lossy().as_ref())
                    && p.parent().is_some_and(|d| d.ends_with("config"))
            })
            && !p.ends_with("config");
        if !mirrored {
            out.push(p);
        }
    }
    out
}

/// Every directory the helper owns is 0700 and every file 0600 (symlinks aside).
fn assert_private(f: &Fixture, when: &str) -> usize {
    let mut checked = 0;
    for p in own_store_paths(f) {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let bits = mode_bits(&meta);
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            bits,
            want,
            "{when}: {} is {bits:o}, not {want:o}",
            p.strip_prefix(f.dir.path()).unwrap().display()
        );
        checked += 1;
    }
    checked
}

both_modes!(
    store_files_are_0600_and_directories_0700_under_umask_000,
    |mode: &str| {
        let f = Fixture::new();
        let bin = Bin::of(&f).with_permissive_umask();
        for (name, creds) in [("work", "work"), ("personal", "personal")] {
            let (_, err, code) = bin.run(
                &["profile", "add", name, "--credentials", "-"],
                &fixture_credentials(creds),
            );
            assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
        }
        let (_, _, code) = bin.run(&["profile", "add", "gateway", "--env", "X=1"], b"");
        assert_eq!(code, Some(0));
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let s1 = a.ok()["session"].clone();
        let b = bin.call(
            "acquire",
            &json!({"profile": "work", "link_mode": mode, "lease_ms": 600000}),
        );
        let s2 = b.ok()["session"].clone();
        write_by_rename_in(
            &f.store().join("runtimes/work"),
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        let t = bin.call("tick", &json!({"session": s1}));
        assert_eq!(t.ok()["credentials_saved"], json!(true));
        bin.call("tick", &json!({"session": s2})).ok();
        bin.call("status", &json!({})).ok();
        // A held session from serve, with its lock file.
        let mut serve = bin
            .command(&["serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = serve.stdin.take().unwrap();
        let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
        writeln!(
            stdin,
            "{}",
            json!({"verb": "acquire", "id": 1, "profile": "personal", "link_mode": mode})
        )
        .unwrap();
        let line = lines.next().unwrap().unwrap();
        scan("serve stdout", line.as_bytes());
        assert!(line.contains("\"ok\":true"), "{line}");
        let mut checked = assert_private(&f, "with three live sessions");
        drop(stdin);
        assert_eq!(serve.wait().unwrap().code(), Some(0));
        let (_, err) = drain(&mut serve);
        scan("serve stderr", &err);
        bin.call("release", &json!({"session": s1})).ok();
        checked += assert_private(&f, "with one live session");
        bin.call("release", &json!({"session": s2})).ok();
        let (_, _, code) = bin.run(&["gc"], b"");
        assert_eq!(code, Some(0));
        checked += assert_private(&f, "after every release");
        eprintln!("security/umask/{mode}: {checked} store paths checked at three points");
    }
);

#[test]
fn the_fake_mode_mirror_never_makes_a_copy_more_open_than_its_source_under_umask_000() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let home = f.claude();
    fs::create_dir(home.join("private")).unwrap();
    fs::set_permissions(home.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(home.join("private/notes.md"), "private").unwrap();
    fs::set_permissions(
        home.join("private/notes.md"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let bin = Bin::of(&f).with_permissive_umask();
    let a = bin.call("acquire", &json!({"profile": "work", "link_mode": "fake"}));
    let s = a.ok()["session"].clone();
    // The session creates a private folder, as Claude Code may.
    let cfg = f.runtime("work");
    fs::create_dir(cfg.join("session-private")).unwrap();
    fs::set_permissions(
        cfg.join("session-private"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::write(cfg.join("session-private/todo.md"), "todo").unwrap();
    fs::set_permissions(
        cfg.join("session-private/todo.md"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let t = bin.call("tick", &json!({"session": s}));
    t.ok();
    let mut widened = Vec::new();
    let mut compared = 0;
    for (from, to) in [(&home, &cfg), (&cfg, &home)] {
        for p in walk(from) {
            let rel = p.strip_prefix(from).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            if [".credentials.json", "settings.json", ".claude.json"].contains(&first.as_ref())
                || first.starts_with(".clauth")
            {
                continue;
            }
            let (Ok(src), Ok(dst)) = (fs::symlink_metadata(&p), fs::symlink_metadata(to.join(rel)))
            else {
                continue;
            };
            compared += 1;
            let extra = mode_bits(&dst) & !mode_bits(&src);
            if extra != 0 {
                widened.push(format!(
                    "{} {:o} -> {:o}",
                    rel.display(),
                    mode_bits(&src),
                    mode_bits(&dst)
                ));
            }
        }
    }
    bin.call("release", &json!({"session": s})).ok();
    eprintln!(
        "security/mirror modes: {compared} mirrored entries compared, {} wider than their source",
        widened.len()
    );
    assert!(
        widened.is_empty(),
        "the fake-mode mirror made copies more open than their sources (source -> copy): \
         {widened:?}"
    );
}

/// Every path under the fixture's temp dir, with kind and contents.
fn everything(f: &Fixture) -> BTreeMap<String, String> {
    f.snapshot()
}

/// Runs every command that touches the store; returns how many ran and the ones that were not
/// refused with `code` (none may change a file).
fn refused_everywhere(bin: &Bin, f: &Fixture, what: &str, code: &str) -> (usize, Vec<String>) {
    let before = everything(f);
    let mut calls = 0;
    let mut wrong = Vec::new();
    for (verb, body) in [
        ("acquire", json!({"profile": "work", "link_mode": "real"})),
        ("acquire", json!({"profile": "work", "link_mode": "fake"})),
        ("status", json!({})),
        ("status", json!({"profile": "work"})),
        ("tick", json!({"session": "s-000000000000000000000000"})),
        ("release", json!({"session": "s-000000000000000000000000"})),
    ] {
        let r = bin.call(verb, &body);
        if r.error_code() == Some(code) {
            r.err(code);
        } else {
            wrong.push(format!(
                "{what}: {verb} {body} answered {}",
                r.stdout.trim()
            ));
        }
        calls += 1;
    }
    for args in [
        vec!["profile", "add", "other", "--credentials", "-"],
        vec!["profile", "add", "work", "--replace", "--credentials", "-"],
        vec!["profile", "list", "--json"],
        vec!["profile", "show", "work"],
        vec!["profile", "remove", "work"],
        vec!["gc"],
        vec!["run", "work", "--", "true"],
    ] {
        let (_, err, exit) = bin.run(&args, &fixture_credentials("personal"));
        let err = String::from_utf8_lossy(&err);
        if exit == Some(0) || !err.contains(code) {
            wrong.push(format!(
                "{what}: `{}` exited {exit:?} with stderr {}",
                args.join(" "),
                err.trim()
            ));
        }
        calls += 1;
    }
    // serve answers the same.
    let mut child = bin
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"verb\":\"acquire\",\"id\":1,\"profile\":\"work\"}\n{\"verb\":\"status\",\"id\":2}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    scan("serve stdout", &out.stdout);
    scan("serve stderr", &out.stderr);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["error"]["code"] != json!(code) {
            wrong.push(format!("{what}: serve answered {line}"));
        }
    }
    calls += 2;
    assert_eq!(
        before,
        everything(f),
        "{what}: a refused command changed files"
    );
    (calls, wrong)
}

#[test]
fn a_store_that_is_a_symlink_is_refused_and_nothing_is_written() {
    // A symlink to an empty directory, and one to a complete store.
    let f = Fixture::new();
    let real_store = f.dir.path().join("real-store");
    let (mut calls, mut wrong) = (0, Vec::new());
    for prepared in [false, true] {
        let _ = fs::remove_file(f.store());
        let _ = fs::remove_dir_all(&real_store);
        if prepared {
            let g = Fixture::new();
            g.add_profile("work", Some("work"));
            copy_dir(&g.store(), &real_store);
        } else {
            fs::create_dir(&real_store).unwrap();
        }
        std::os::unix::fs::symlink(&real_store, f.store()).unwrap();
        let what = if prepared {
            "CLAUTH_HOME is a symlink to a store"
        } else {
            "CLAUTH_HOME is a symlink to an empty directory"
        };
        let (n, w) = refused_everywhere(&Bin::of(&f), &f, what, "unsafe_store");
        calls += n;
        wrong.extend(w);
    }
    // A store that is a regular file.
    fs::remove_file(f.store()).unwrap();
    fs::write(f.store(), "not a directory").unwrap();
    let (n, w) = refused_everywhere(&Bin::of(&f), &f, "CLAUTH_HOME is a file", "unsafe_store");
    calls += n;
    wrong.extend(w);
    eprintln!(
        "security/symlinked store: {calls} commands, {} not refused with unsafe_store, no file \
         changed",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "not refused with unsafe_store:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_store_directory_that_is_a_symlink_is_refused_and_nothing_is_written() {
    let (mut calls, mut wrong) = (0, Vec::new());
    for dir in ["profiles", "runtimes", "sessions"] {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let elsewhere = f.dir.path().join(format!("elsewhere-{dir}"));
        fs::rename(f.store().join(dir), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, f.store().join(dir)).unwrap();
        let (n, w) = refused_everywhere(
            &Bin::of(&f),
            &f,
            &format!("store/{dir} is a symlink"),
            "unsafe_store",
        );
        calls += n;
        wrong.extend(w);
    }
    eprintln!(
        "security/symlinked store dirs: {calls} commands, {} not refused with unsafe_store, no \
         file changed",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "not refused with unsafe_store:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_profile_directory_that_is_a_symlink_is_refused_and_nothing_is_written() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let elsewhere = f.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::rename(f.store().join("profiles/work"), elsewhere.join("work")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("work"), f.store().join("profiles/work")).unwrap();
    let calls = every_command_on_work_is_refused(&f);
    eprintln!("security/symlinked profile: {calls} commands refused, no file changed");
}

/// Every command on profile `work` answers `unsafe_store` and no file changes; returns how
/// many ran.
fn every_command_on_work_is_refused(f: &Fixture) -> usize {
    let bin = Bin::of(f);
    let before = everything(f);
    for mode in ["real", "fake"] {
        bin.call("acquire", &json!({"profile": "work", "link_mode": mode}))
            .err("unsafe_store");
    }
    bin.call("status", &json!({"profile": "work"}))
        .err("unsafe_store");
    let commands = [
        vec!["profile", "add", "work", "--replace", "--credentials", "-"],
        vec!["profile", "show", "work"],
        vec!["profile", "remove", "work"],
        vec!["run", "work", "--", "true"],
    ];
    for args in &commands {
        let (_, err, exit) = bin.run(args, &fixture_credentials("personal"));
        let err = String::from_utf8_lossy(&err);
        assert!(
            exit != Some(0) && err.contains("unsafe_store"),
            "`{}` was not refused: exit {exit:?}, stderr {err}",
            args.join(" ")
        );
    }
    assert_eq!(before, everything(f), "a refused command changed files");
    3 + commands.len()
}

both_modes!(
    a_profile_directory_swapped_for_a_symlink_during_a_session_is_refused_by_tick_and_release,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let bin = Bin::of(&f);
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let s = a.ok()["session"].clone();
        let elsewhere = f.dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::rename(f.store().join("profiles/work"), elsewhere.join("work")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("work"), f.store().join("profiles/work"))
            .unwrap();
        write_by_rename_in(
            &f.store().join("runtimes/work"),
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        let target = elsewhere.join("work/credentials.json");
        let before = fs::read(&target).unwrap();
        let t = bin.call("tick", &json!({"session": s}));
        let tick_wrote = fs::read(&target).unwrap() != before;
        let r = bin.call("release", &json!({"session": s}));
        let release_wrote = fs::read(&target).unwrap() != before;
        eprintln!(
            "security/swapped profile/{mode}: tick answered {:?}, release answered {:?}; wrote \
             through the symlink: tick {tick_wrote}, release {release_wrote}",
            t.error_code().unwrap_or("ok"),
            r.error_code().unwrap_or("ok"),
        );
        assert!(
            !tick_wrote && t.error_code() == Some("unsafe_store"),
            "{mode}: tick wrote the session's credentials through the symlinked profile \
             directory (wrote: {tick_wrote}) instead of refusing with unsafe_store:\n{}",
            t.context()
        );
        assert!(
            !release_wrote && r.error_code() == Some("unsafe_store"),
            "{mode}: release went through the symlinked profile directory (wrote: \
             {release_wrote}):\n{}",
            r.context()
        );
    }
);

#[test]
fn a_store_owned_by_another_user_is_refused_when_running_as_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "security/foreign owner: SKIPPED: not running as root, so no directory can be given \
             to another user"
        );
        return;
    }
    let chown = |p: &Path, uid: u32| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; lchown does not follow symlinks.
        let rc = unsafe { libc::lchown(c.as_ptr(), uid, u32::MAX) };
        assert_eq!(rc, 0, "lchown {}", p.display());
    };
    let (mut calls, mut wrong) = (0, Vec::new());
    for dir in ["", "profiles", "runtimes", "sessions"] {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let target = f.store().join(dir);
        chown(&target, 65534);
        let (n, w) = refused_everywhere(
            &Bin::of(&f),
            &f,
            &format!("store/{dir} owned by uid 65534"),
            "unsafe_store",
        );
        calls += n;
        wrong.extend(w);
        chown(&target, 0);
    }
    // A profile directory owned by another user.
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    chown(&f.store().join("profiles/work"), 65534);
    let bin = Bin::of(&f);
    let before = everything(&f);
    bin.call("acquire", &json!({"profile": "work"}))
        .err("unsafe_store");
    bin.call("status", &json!({"profile": "work"}))
        .err("unsafe_store");
    assert_eq!(before, everything(&f));
    chown(&f.store().join("profiles/work"), 0);
    assert!(
        wrong.is_empty(),
        "not refused with unsafe_store:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "security/foreign owner: {} commands refused with the store, a store directory or the \
         profile owned by uid 65534; no file changed",
        calls + 2
    );
}

#[test]
fn path_traversal_through_profile_names_and_session_ids_is_refused_and_creates_nothing() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let outside = f.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep.txt"), "keep").unwrap();
    let abs = std::env::temp_dir().join(format!("clauth-traversal-{}", std::process::id()));
    let abs = abs.to_string_lossy().into_owned();
    let bin = Bin::of(&f);
    let a = bin.call("acquire", &json!({"profile": "work", "link_mode": "real"}));
    let live = a.ok()["session"].clone();
    let before = everything(&f);
    let names: Vec<String> = [
        "..",
        ".",
        "../x",
        "../outside",
        "../../outside",
        "a/b",
        "work/../work",
        "work/",
        "./work",
        "/",
        abs.as_str(),
        "../store/profiles/work",
        "..\\x",
        "x\0y",
        "work\0",
        "\0",
        "",
        "~",
        ".work",
        "%2e%2e",
        "..%2f",
        "ｗｏｒｋ",
        "wo\u{200b}rk",
        "\u{202e}krow",
        "work\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([abs.clone() + "/x", "x".repeat(65), "a/".repeat(40)])
    .collect();
    let mut calls = 0;
    for name in &names {
        for (verb, body) in [
            ("acquire", json!({"profile": name})),
            ("acquire", json!({"profile": name, "link_mode": "fake"})),
            ("status", json!({"profile": name})),
        ] {
            bin.call(verb, &body).err("invalid_profile_name");
            calls += 1;
        }
        if name.contains('\0') || name.is_empty() {
            continue;
        }
        for args in [
            vec!["profile", "add", name.as_str(), "--credentials", "-"],
            vec!["profile", "add", name.as_str(), "--replace"],
            vec!["profile", "show", name.as_str()],
            vec!["profile", "remove", name.as_str()],
            vec!["run", name.as_str(), "--", "true"],
        ] {
            let (_, err, exit) = bin.run(&args, &fixture_credentials("work"));
            let err = String::from_utf8_lossy(&err);
            assert!(
                exit != Some(0) && err.contains("invalid_profile_name"),
                "`{}` was not refused with invalid_profile_name: exit {exit:?}, stderr {err}",
                args.join(" ").escape_debug()
            );
            calls += 1;
        }
    }
    let ids: Vec<String> = [
        "..",
        ".",
        "../x",
        "../sessions/x",
        "../../outside/keep",
        "a/b",
        "/etc/passwd",
        abs.as_str(),
        "s-../../x",
        "s-000000000000000000000000/..",
        "s-000000000000000000000000\0",
        "\0",
        "",
        " ",
        "s-😀",
        "s-1.json",
        "s-1 ",
        "x\\y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "s".repeat(65),
        format!("{}/..", live.as_str().unwrap()),
        format!("../sessions/{}", live.as_str().unwrap()),
        format!("./{}", live.as_str().unwrap()),
    ])
    .collect();
    for id in &ids {
        for verb in ["tick", "release"] {
            bin.call(verb, &json!({"session": id}))
                .err("invalid_request");
            calls += 1;
        }
    }
    // serve too.
    let mut child = bin
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for name in &names {
        input.extend(
            json!({"verb": "acquire", "profile": name})
                .to_string()
                .bytes(),
        );
        input.push(b'\n');
    }
    for id in &ids {
        input.extend(
            json!({"verb": "release", "session": id})
                .to_string()
                .bytes(),
        );
        input.push(b'\n');
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    scan("serve stdout", &out.stdout);
    scan("serve stderr", &out.stderr);
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["error"]["code"].as_str().unwrap_or("ok").to_owned()
        })
        .collect();
    let mut expected = vec!["invalid_profile_name".to_owned(); names.len()];
    expected.extend(vec!["invalid_request".to_owned(); ids.len()]);
    assert_eq!(codes, expected);
    calls += names.len() + ids.len();
    assert_eq!(before, everything(&f), "a refused command changed files");
    assert!(
        !Path::new(&abs).exists(),
        "{abs} was created outside the store"
    );
    bin.call("release", &json!({"session": live})).ok();
    eprintln!(
        "security/traversal: {} profile names and {} session ids, {calls} refused calls \
         (one-shot, human commands, serve); nothing created or changed",
        names.len(),
        ids.len()
    );
}

#[test]
fn no_command_prints_a_token_even_with_secrets_everywhere() {
    let f = Fixture::new();
    let bin = Bin::of(&f);
    let secret_env = "sk-ant-api03-ENVSECRET-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut exits = Vec::new();
    let mut calls = 0;
    let mut run = |args: &[&str], stdin: &[u8]| {
        let (out, err, code) = bin.run(args, stdin);
        for (what, bytes) in [("stdout", &out), ("stderr", &err)] {
            assert!(
                !String::from_utf8_lossy(bytes).contains("ENVSECRET"),
                "{what} of {args:?} holds the env secret"
            );
        }
        exits.push(code);
    };
    run(
        &["profile", "add", "work", "--credentials", "-"],
        &fixture_credentials("work"),
    );
    let env_arg = format!("ANTHROPIC_AUTH_TOKEN={secret_env}");
    run(&["profile", "add", "gateway", "--env", &env_arg], b"");
    // Documents that are not usable credentials but hold tokens.
    for bad in [
        br#"{"claudeAiOauth": "sk-ant-oat01-LEAKED-AAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.to_vec(),
        br#"{"claudeAiOauth": {"accessToken": "", "refreshToken": "sk-ant-ort01-LEAKED-AAAAAAAAAAAAAAAA"}}"#.to_vec(),
        br#"{"sk-ant-oat01-LEAKED-AAAAAAAAAAAAAAAAAAAAAA": 1, "#.to_vec(),
        fixture_credentials("truncated"),
        fixture_credentials("no-access-token"),
    ] {
        run(&["profile", "add", "bad", "--credentials", "-"], &bad);
    }
    run(&["profile", "show", "gateway"], b"");
    run(&["profile", "show", "gateway", "--json"], b"");
    run(&["profile", "show", "work", "--json"], b"");
    run(&["profile", "list"], b"");
    run(&["profile", "list", "--json"], b"");
    for mode in ["real", "fake"] {
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let s = a.ok()["session"].clone();
        let cfg = f.runtime("work");
        for doc in [
            "no-access-token",
            "truncated",
            "work-older",
            "work-refreshed",
        ] {
            write_by_rename_in(
                &f.store().join("runtimes/work"),
                &cfg.join(".credentials.json"),
                &fixture_credentials(doc),
            );
            bin.call("tick", &json!({"session": s})).ok();
        }
        // A token pasted as a profile name or session id is refused without being repeated.
        let pasted = format!("sk-ant-oat01-PASTED-{}", "A".repeat(90));
        bin.call("acquire", &json!({"profile": pasted}))
            .err("invalid_profile_name");
        bin.call("tick", &json!({"session": pasted}))
            .err("invalid_request");
        bin.call("status", &json!({"profile": pasted}))
            .err("invalid_profile_name");
        bin.call("status", &json!({})).ok();
        bin.call("release", &json!({"session": s})).ok();
        calls += 10;
    }
    run(&["gc"], b"");
    run(&["run", "gateway", "--", "true"], b"");
    run(&["sk-ant-oat01-VERB-AAAAAAAAAAAAAAAAAAAAAAAAAA"], b"{}");
    eprintln!(
        "security/no token: stdout and stderr of {} human commands and {calls} protocol calls \
         scanned for every fixture token and for sk-ant-",
        exits.len()
    );
}

both_modes!(
    credentials_are_never_readable_by_group_or_others_even_for_an_instant,
    |mode: &str| {
        const TICKS: u64 = 150;
        let f = Fixture::new();
        let bin = Bin::of(&f).with_permissive_umask();
        let (_, _, code) = bin.run(
            &["profile", "add", "work", "--credentials", "-"],
            &fixture_credentials("work"),
        );
        assert_eq!(code, Some(0));
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let s = a.ok()["session"].clone();
        let dirs = [
            f.store().join("profiles/work"),
            f.store().join("runtimes/work"),
            f.runtime("work"),
        ];
        let done = AtomicBool::new(false);
        let polls = AtomicU64::new(0);
        let stats_seen = AtomicU64::new(0);
        let temps: Mutex<BTreeSet<String>> = Mutex::default();
        let violations: Mutex<Vec<String>> = Mutex::default();
        let started = Instant::now();
        thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    for dir in &dirs {
                        let Ok(entries) = fs::read_dir(dir) else {
                            continue;
                        };
                        for entry in entries.flatten() {
                            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                                continue;
                            };
                            if !meta.is_file() {
                                continue;
                            }
                            stats_seen.fetch_add(1, Ordering::Relaxed);
                            let name = entry.file_name().to_string_lossy().into_owned();
                            if name.starts_with(".clauth-tmp-") {
                                temps.lock().unwrap().insert(name.clone());
                            }
                            if meta.mode() & 0o077 != 0 {
                                violations.lock().unwrap().push(format!(
                                    "{} was {:o}",
                                    entry.path().strip_prefix(f.dir.path()).unwrap().display(),
                                    meta.mode() & 0o777
                                ));
                            }
                        }
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_micros(500));
                }
            });
            for n in 0..TICKS {
                write_by_rename_in(
                    &f.store().join("runtimes/work"),
                    &f.runtime("work").join(".credentials.json"),
                    &refreshed_credentials("mode", n, 2_100_000_000_000 + n as i64 * 1000),
                );
                let t = bin.call("tick", &json!({"session": s}));
                assert_eq!(t.ok()["credentials_saved"], json!(true));
            }
            bin.call("release", &json!({"session": s})).ok();
            done.store(true, Ordering::Relaxed);
        });
        let violations = violations.into_inner().unwrap();
        eprintln!(
            "security/instant modes/{mode}: {TICKS} refreshes saved under umask 000 in {:.1} s \
             while {} directory polls stat'ed {} files, {} distinct helper temp files among \
             them; {} seen open to group or others",
            started.elapsed().as_secs_f64(),
            polls.load(Ordering::Relaxed),
            stats_seen.load(Ordering::Relaxed),
            temps.lock().unwrap().len(),
            violations.len()
        );
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(file_mode(&f.canonical("work")), 0o600);
    }
);

#[test]
fn a_store_writable_by_others_is_refused_with_the_chmod_that_fixes_it() {
    let (mut calls, mut wrong) = (0, Vec::new());
    for (dir, mode) in [("", 0o777), ("profiles", 0o775), ("runtimes", 0o757)] {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let path = f.store().join(dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let bin = Bin::of(&f);
        let (n, w) = refused_everywhere(&bin, &f, &format!("{dir:?} {mode:o}"), "unsafe_store");
        calls += n;
        wrong.extend(w);
        let r = bin.call("status", &json!({}));
        let message = r.err("unsafe_store")["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("chmod 700"), "{message}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        bin.call("status", &json!({})).ok();
    }
    // A profile's own directory open to others: every command on that profile is refused.
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let dir = f.store().join("profiles/work");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    calls += every_command_on_work_is_refused(&f);
    assert!(wrong.is_empty(), "{wrong:#?}");
    eprintln!("security/open modes: {calls} commands refused, no file changed");
}

/// `profile show` hides an env value by what it holds, not only by its name.
#[test]
fn profile_show_redacts_secrets_by_content_as_well_as_by_name() {
    let f = Fixture::new();
    let env_file = f.dir.path().join("gw.env");
    let secrets = [
        ("ANTHROPIC_CUSTOM_HEADERS", "x-api-key: gw-HEADERSECRET-123"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer gw-OTELSECRET-456",
        ),
        (
            "ANTHROPIC_BASE_URL",
            "https://me:gw-URLSECRET-789@llm.example.com/v1",
        ),
        ("SOME_SETTING", "gwLONGSECRETq8Zr2LmN0pXvT5wYcB7dK1sH4"),
    ];
    let text: String = secrets
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .chain(["ANTHROPIC_MODEL=claude-sonnet-4-5\n".to_owned()])
        .collect();
    fs::write(&env_file, text).unwrap();
    let out = f.run(
        &[
            "profile",
            "add",
            "gw",
            "--env-file",
            &env_file.to_string_lossy(),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        vec!["profile", "show", "gw"],
        vec!["profile", "show", "gw", "--json"],
    ] {
        let out = f.run(&args, b"");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for (k, v) in &secrets {
            let secret = v
                .split(['-', ':', '=', '@', ' '])
                .find(|p| p.contains("SECRET"))
                .unwrap();
            assert!(!stdout.contains(secret), "{args:?}: {k} shown: {stdout}");
            assert!(stdout.contains(k), "{args:?}: {k} is listed: {stdout}");
        }
        assert!(
            stdout.contains("claude-sonnet-4-5"),
            "harmless values stay: {stdout}"
        );
    }
    eprintln!("security/redaction: 4 secrets in innocent-looking variables hidden, both forms");
}
