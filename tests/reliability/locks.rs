//! The store's two kinds of lock (see `src/lock.rs`): a profile's lock, held while that
//! profile's runtime is built or synced, and the store lock, held only briefly for what profiles
//! share. One profile's long work holds up no other profile, and two profiles working at once
//! beside plain writers of both home documents lose nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_modes;
use crate::common::*;
use crate::support::*;

/// A process of its own holding the lock file at `lock` (as another clauth-helper working on
/// that profile would) until it is killed; returned once it holds it (bounded wait).
fn hold_lock(f: &Fixture, lock: &Path) -> Child {
    let ready = f.dir.path().join("holder.ready");
    let _ = fs::remove_file(&ready);
    let child = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); \
             open(sys.argv[2],'w').close(); time.sleep(120)",
        ])
        .arg(lock)
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed for the lock holder");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(ready.exists(), "the holder never took {}", lock.display());
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

both_modes!(
    a_profile_busy_in_another_process_holds_up_no_other_profile,
    |mode: &str| {
        let mut f = Fixture::new();
        f.add_profile("a", Some("work"));
        f.add_profile("b", Some("personal"));
        // Anything that waited for the busy profile's lock would fail: it is held far longer.
        f.set_env("CLAUTH_LOCK_TIMEOUT_MS", "500");
        let b = f.acquire("b", mode);
        let holder = hold_lock(&f, &f.store().join("profiles/a/lock"));

        let t = f.tick(&session_of(&b));
        assert_eq!(t["session"], session_of(&b), "{mode}: {t}");
        let status = f.status();
        assert_eq!(status["profiles"].as_array().unwrap().len(), 2, "{status}");
        let only_b = f.request("status", json!({"profile": "b"})).ok();
        assert_eq!(
            only_b["profiles"][0]["sessions"].as_array().unwrap().len(),
            1
        );
        let b2 = f.acquire("b", mode);
        let r = f.release(&session_of(&b2));
        assert_eq!(r["remaining_sessions"], json!(1), "{mode}: {r}");
        // gc leaves the busy profile alone and finishes.
        assert_eq!(gc_json(&f)["runtimes_removed"], json!([]));

        // The busy profile's own verbs wait, say which profile is busy, and change nothing.
        let before = f.snapshot();
        let refused = f.request("acquire", json!({"profile": "a", "link_mode": mode}));
        let error = refused.err("lock_timeout")["error"].clone();
        assert_eq!(error["retryable"], json!(true));
        assert!(
            error["message"].as_str().unwrap().contains("profile a"),
            "{error}"
        );
        assert_eq!(
            f.snapshot(),
            before,
            "{mode}: a refused acquire changed files"
        );

        stop(holder);
        let a = f.acquire("a", mode);
        f.release(&session_of(&a));
        f.release(&session_of(&b));
        assert!(names_in(&f.store().join("runtimes")).is_empty());
        eprintln!(
            "locks/{mode}: with profile a's lock held elsewhere, b's tick, status, acquire, \
             release and gc answered under a 500 ms lock timeout; a's acquire got lock_timeout"
        );
    }
);

/// An idle runtime that `gc` would reclaim is left alone while its profile's lock is held (an
/// acquire may be building it before any record names it), and reclaimed after.
#[test]
fn gc_leaves_the_runtime_of_a_busy_profile_alone() {
    let mut f = Fixture::new();
    f.add_profile("a", Some("work"));
    // A session whose owner is gone leaves its runtime idle.
    let mut owner = Command::new("sleep").arg("30").spawn().unwrap();
    let a = f.request(
        "acquire",
        json!({"profile": "a", "link_mode": "fake", "owner_pid": owner.id()}),
    );
    let session = a.ok()["session"].clone();
    let _ = owner.kill();
    let _ = owner.wait();
    f.set_env("CLAUTH_LOCK_TIMEOUT_MS", "500");
    let holder = hold_lock(&f, &f.store().join("profiles/a/lock"));
    let gc = gc_json(&f);
    assert_eq!(gc["runtimes_removed"], json!([]), "{gc}");
    assert!(f.store().join("runtimes/a").is_dir());
    stop(holder);
    let gc = gc_json(&f);
    assert_eq!(gc["runtimes_removed"], json!(["a"]), "{gc}");
    assert!(!f.store().join("runtimes/a").exists());
    let _ = session;
}

fn gc_json(f: &Fixture) -> Value {
    let out = f.run(&["gc", "--json"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Reads a document, `{}` when it is missing or does not parse (a rename in flight).
fn doc_of(path: &Path) -> Value {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

/// Adds `key` to the document at `path` the way Claude Code saves it: under its lock directory
/// (`<path>.lock`, which merges take too), read, modify, temp file, rename. False while the lock
/// is held by another.
fn plain_write(path: &Path, key: &str, value: Value) -> bool {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    if fs::create_dir(&lock).is_err() {
        return false;
    }
    let mut doc = doc_of(path);
    if doc.is_object() {
        doc[key] = value;
        write_by_rename_in(
            path.parent().unwrap(),
            path,
            &serde_json::to_vec_pretty(&doc).unwrap(),
        );
    }
    fs::remove_dir(&lock).unwrap();
    true
}

/// Adds `key` to a runtime's copy of a document as the session's Claude Code does: like a
/// plain writer, under its lock directory, waiting (bounded) while a sync holds it.
fn session_write(path: &Path, key: &str, value: Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plain_write(path, key, value.clone()) {
        assert!(
            Instant::now() < deadline,
            "{} stayed locked",
            path.display()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

const CYCLES: u64 = 12;

both_modes!(
    two_profiles_working_at_once_beside_plain_writers_of_both_documents_lose_nothing,
    |mode: &str| {
        let f = Fixture::new();
        let profiles = ["a", "b"];
        for p in profiles {
            let login = refreshed_credentials(&format!("locks-{p}"), 0, 1_893_456_000_000);
            let out = f.run(&["profile", "add", p, "--credentials", "-"], &login);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The prompt history both sessions append to (in real mode through the runtime's link
        // to it, in fake mode to their own copies, mirrored).
        fs::write(f.claude().join("history.jsonl"), "").unwrap();
        let bin = Bin::of(&f).with_env("CLAUTH_LOCK_TIMEOUT_MS", "30000");
        let claude_json = f.claude_json();
        let settings = f.claude().join("settings.json");
        let done = AtomicBool::new(false);
        let finished = AtomicUsize::new(0);
        let problems = Mutex::new(Vec::<String>::new());
        let problem = |p: String| problems.lock().unwrap().push(p);
        // The last credentials each profile's sessions wrote.
        let last_login = Mutex::new(std::collections::BTreeMap::<String, Vec<u8>>::new());
        let mut plain_keys = (0u64, 0u64);
        thread::scope(|s| {
            for p in profiles.iter() {
                let (bin, problem, last_login, finished) = (&bin, &problem, &last_login, &finished);
                // One thread per profile cycles sessions: acquire, write as Claude Code would
                // (a key in each document, a refreshed login), tick, write again, release.
                s.spawn(move || {
                    for n in 0..CYCLES {
                        let a = bin.call("acquire", &json!({"profile": p, "link_mode": mode}));
                        if !a.is_ok() {
                            problem(format!("{p} acquire {n}: {}", a.context()));
                            continue;
                        }
                        let session = a.json["session"].clone();
                        let cfg = PathBuf::from(a.json["config_dir"].as_str().unwrap());
                        session_write(&cfg.join(".claude.json"), &format!("{p}Doc{n}"), json!(n));
                        // A file both profiles' sessions append to, as Claude Code appends
                        // each prompt to history.jsonl.
                        let mut history = fs::OpenOptions::new()
                            .append(true)
                            .open(cfg.join("history.jsonl"))
                            .unwrap();
                        std::io::Write::write_all(&mut history, format!("{p}-{n}\n").as_bytes())
                            .unwrap();
                        drop(history);
                        let t = bin.call("tick", &json!({"session": session}));
                        if !t.is_ok() {
                            problem(format!("{p} tick {n}: {}", t.context()));
                        }
                        session_write(&cfg.join("settings.json"), &format!("{p}Set{n}"), json!(n));
                        let login = refreshed_credentials(
                            &format!("locks-{p}"),
                            n + 1,
                            1_893_456_000_000 + (n as i64 + 1) * 1000,
                        );
                        write_by_rename_in(&cfg, &cfg.join(".credentials.json"), &login);
                        last_login.lock().unwrap().insert(p.to_string(), login);
                        let r = bin.call("release", &json!({"session": session}));
                        if !r.is_ok() {
                            problem(format!("{p} release {n}: {}", r.context()));
                        }
                    }
                    finished.fetch_add(1, Ordering::Relaxed);
                });
                // And one keeps a session of its own, ticking, so some releases leave the
                // runtime to it and some acquires join it.
                s.spawn(move || {
                    let a = bin.call("acquire", &json!({"profile": p, "link_mode": mode}));
                    let session = a.ok()["session"].clone();
                    for n in 0..(CYCLES * 2) {
                        let t = bin.call("tick", &json!({"session": session}));
                        if !t.is_ok() {
                            problem(format!("{p} held tick {n}: {}", t.context()));
                        }
                        let st = bin.call("status", &json!({}));
                        if !st.is_ok() {
                            problem(format!("status: {}", st.context()));
                        }
                    }
                    let r = bin.call("release", &json!({"session": session}));
                    if !r.is_ok() {
                        problem(format!("{p} held release: {}", r.context()));
                    }
                    finished.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Plain claude beside the profiles rewrites both home documents.
            let (done, plain_keys, claude_json, settings) =
                (&done, &mut plain_keys, &claude_json, &settings);
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if plain_write(claude_json, &format!("plainDoc{}", plain_keys.0), json!(1)) {
                        plain_keys.0 += 1;
                    }
                    if plain_write(settings, &format!("plainSet{}", plain_keys.1), json!(1)) {
                        plain_keys.1 += 1;
                    }
                    thread::sleep(Duration::from_millis(3));
                }
            });
            // The plain writer stops once every session thread is done.
            let deadline = Instant::now() + Duration::from_secs(240);
            while finished.load(Ordering::Relaxed) < 2 * profiles.len() && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(50));
            }
            done.store(true, Ordering::Relaxed);
        });
        let problems = problems.into_inner().unwrap();
        assert!(problems.is_empty(), "{mode}: {problems:#?}");
        let home_doc = doc_of(&claude_json);
        let home_settings = doc_of(&settings);
        let mut lost = Vec::new();
        for p in profiles {
            for n in 0..CYCLES {
                if home_doc[format!("{p}Doc{n}")] != json!(n) {
                    lost.push(format!("~/.claude.json {p}Doc{n}"));
                }
                if home_settings[format!("{p}Set{n}")] != json!(n) {
                    lost.push(format!("settings.json {p}Set{n}"));
                }
            }
            let last = last_login.lock().unwrap()[p].clone();
            if fs::read(f.canonical(p)).unwrap() != last {
                lost.push(format!("{p}: the profile's login is not the last refresh"));
            }
        }
        // Every line either session appended is in the home's history or, where both changed
        // it at once, in a conflict copy beside it: none is written over unseen.
        let mut history = String::new();
        for entry in fs::read_dir(f.claude()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("history.jsonl") && entry.path().is_file() {
                history.push_str(&fs::read_to_string(entry.path()).unwrap());
            }
        }
        let lines: std::collections::BTreeSet<&str> = history.lines().collect();
        let history_files: Vec<String> = fs::read_dir(f.claude())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("history.jsonl"))
            .collect();
        for p in profiles {
            for n in 0..CYCLES {
                if !lines.contains(format!("{p}-{n}").as_str()) {
                    lost.push(format!("history.jsonl line {p}-{n}"));
                }
            }
        }
        for n in 0..plain_keys.0 {
            if home_doc[format!("plainDoc{n}")] != json!(1) {
                lost.push(format!("~/.claude.json plainDoc{n}"));
            }
        }
        for n in 0..plain_keys.1 {
            if home_settings[format!("plainSet{n}")] != json!(1) {
                lost.push(format!("settings.json plainSet{n}"));
            }
        }
        assert!(
            lost.is_empty(),
            "{mode}: lost {lost:#?}\nhistory files: {history_files:?}\n{history}"
        );
        assert!(names_in(&f.store().join("runtimes")).is_empty());
        assert!(names_in(&f.store().join("sessions")).is_empty());
        assert!(
            temp_files(f.dir.path()).is_empty(),
            "{:?}",
            temp_files(f.dir.path())
        );
        eprintln!(
            "locks/{mode}: profiles a and b, {CYCLES} session cycles each beside a held session \
             ticking, while a plain writer saved {} and {} keys into ~/.claude.json and \
             settings.json: every key and the last login of each profile kept",
            plain_keys.0, plain_keys.1
        );
    }
);

/// A copy of the home's login in a profile (left by an earlier `--from-claude`) is folded into
/// the home only while nobody works on that profile: with its lock held elsewhere the copy
/// stays as it is, and the next command after folds it.
#[test]
fn a_copy_of_the_home_login_is_folded_only_while_its_profile_is_not_busy() {
    let mut f = Fixture::new();
    f.add_profile("copy", None);
    let home_login = fs::read(f.claude().join(".credentials.json")).unwrap();
    let copy = f.canonical("copy");
    write_by_rename_in(&f.store().join("profiles/copy"), &copy, &home_login);
    fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f.set_env("CLAUTH_LOCK_TIMEOUT_MS", "500");
    let holder = hold_lock(&f, &f.store().join("profiles/copy/lock"));
    let status = f.status();
    assert_eq!(fs::read(&copy).unwrap(), home_login, "folded while busy");
    assert_eq!(status["profiles"][0]["home"], json!(false), "{status}");
    stop(holder);
    let status = f.status();
    assert!(!copy.exists(), "the copy stayed after: {status}");
    assert_eq!(status["profiles"][0]["home"], json!(true), "{status}");
    assert_eq!(
        fs::read(f.claude().join(".credentials.json")).unwrap(),
        home_login
    );
}
