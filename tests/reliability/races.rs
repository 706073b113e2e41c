//! Focused races between a tick and Claude Code writing its credentials, one session each, so a
//! lost refresh points at one code path.

use std::fs;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::both_modes;
use crate::common::*;
use crate::support::*;

const BASE_EXPIRY: i64 = 1_950_000_000_000;

both_modes!(
    a_refresh_renamed_in_while_a_tick_runs_is_saved_by_the_next_tick,
    |mode: &str| {
        // Each round renames refresh A into the runtime and starts a tick, which finds A and
        // saves it; 0-6 ms later, while that tick may be reading, saving or relinking, refresh B
        // is renamed in. After the tick and one more, B must be the profile's credentials.
        const ROUNDS: u64 = 100;
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let bin = Bin::of(&f);
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let session = a.ok()["session"].clone();
        let runtime_dir = f.store().join("runtimes/work");
        let creds = f.runtime("work").join(".credentials.json");
        let tick = json!({"session": session}).to_string();
        let mut rng = XorShift::new(seed() ^ if mode == "real" { 1 } else { 2 });
        let mut lost = Vec::new();
        for round in 0..ROUNDS {
            let n = 2 * round;
            let first = refreshed_credentials("race", n, BASE_EXPIRY + n as i64 * 1000);
            write_by_rename_in(&runtime_dir, &creds, &first);
            let expiry = BASE_EXPIRY + (n + 1) as i64 * 1000;
            let bytes = refreshed_credentials("race", n + 1, expiry);
            let child = bin.spawn(&["tick"], tick.as_bytes());
            thread::sleep(Duration::from_micros(rng.below(6000)));
            write_by_rename_in(&runtime_dir, &creds, &bytes);
            let out = child.wait_with_output().unwrap();
            bin.decode(
                "tick",
                tick.as_bytes(),
                &out.stdout,
                &out.stderr,
                out.status.code(),
            )
            .ok();
            bin.call("tick", &json!({"session": session})).ok();
            let canonical = fs::read(f.canonical("work")).unwrap();
            if canonical != bytes {
                lost.push((round, expiry, expires_at(&canonical)));
            }
        }
        bin.call("release", &json!({"session": session})).ok();
        eprintln!(
            "races/{mode}: {ROUNDS} rounds of a refresh renamed in during a tick that saves the \
             previous one: {} refreshes lost",
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "{mode}: {} of {ROUNDS} refreshes renamed into the runtime while a tick ran were lost \
             even after one more tick; the first (round, expiresAt written, canonical expiresAt \
             after): {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
);

both_modes!(
    a_tick_between_claude_codes_temp_write_and_its_rename_loses_nothing,
    |mode: &str| {
        // Claude Code writes a temp sibling of .credentials.json, then renames it over the path.
        // A tick may run between the two steps.
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let bin = Bin::of(&f);
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let session = a.ok()["session"].clone();
        let cfg = f.runtime("work");
        let tmp = cfg.join(".credentials.json.tmp.4242.1700000000000");
        let refreshed = fixture_credentials("work-refreshed");
        fs::write(&tmp, &refreshed).unwrap();
        let first = bin.call("tick", &json!({"session": session}));
        first.ok();
        fs::rename(&tmp, cfg.join(".credentials.json")).unwrap();
        let second = bin.call("tick", &json!({"session": session}));
        second.ok();
        let released = bin.call("release", &json!({"session": session}));
        released.ok();
        eprintln!(
            "races/{mode}: tick between temp write and rename answered adopted={} linked={} \
             copied_to_home={}; the next tick credentials_saved={}",
            first.json["adopted"],
            second.json["linked"],
            first.json["copied_to_home"],
            second.json["credentials_saved"]
        );
        let canonical = fs::read(f.canonical("work")).unwrap();
        assert!(
            canonical == refreshed,
            "{mode}: the refresh Claude Code renamed into place was not saved to the profile \
             (canonical expiresAt {:?}; first tick: {}; second tick: {})",
            expires_at(&canonical),
            first.stdout,
            second.stdout
        );
        // No copy of the session's tokens is left in the claude home.
        let stray: Vec<String> = names_in(&f.claude())
            .into_iter()
            .filter(|n| n.contains(".credentials.json."))
            .collect();
        assert!(
            stray.is_empty(),
            "{mode}: the claude home kept the session's temp credentials file: {stray:?}"
        );
    }
);

both_modes!(
    keys_claude_code_keeps_adding_to_claude_json_survive_ticks_running_meanwhile,
    |mode: &str| {
        // Claude Code saves .claude.json under its lock directory by read-modify-write and
        // rename. A writer thread does exactly that, one new key each time, while one-shot
        // ticks run back to back; after release, every key it wrote must be in ~/.claude.json.
        const WRITES: usize = 300;
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let bin = Bin::of(&f);
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
        let session = a.ok()["session"].clone();
        let doc = f.runtime("work").join(".claude.json");
        let tick = json!({"session": session});
        let stop = std::sync::atomic::AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    bin.call("tick", &tick).ok();
                }
            });
            // As Claude Code does: the lock directory beside the file, then read, modify,
            // write a temp file, rename, unlock.
            let lock = doc.with_file_name(".claude.json.lock");
            for i in 0..WRITES {
                while fs::create_dir(&lock).is_err() {
                    thread::sleep(Duration::from_micros(200));
                }
                let mut v: serde_json::Value =
                    serde_json::from_slice(&fs::read(&doc).unwrap()).unwrap();
                v[format!("writerKey{i}")] = json!(i);
                let tmp =
                    doc.with_file_name(format!(".claude.json.tmp.{}.{i}", std::process::id()));
                fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
                fs::rename(&tmp, &doc).unwrap();
                fs::remove_dir(&lock).unwrap();
                thread::sleep(Duration::from_micros(1500));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        bin.call("release", &json!({"session": session})).ok();
        let home: serde_json::Value =
            serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        let missing: Vec<usize> = (0..WRITES)
            .filter(|i| home.get(format!("writerKey{i}")).is_none())
            .collect();
        eprintln!(
            "{mode}: {WRITES} read-modify-write saves of .claude.json during ticks, {} keys missing",
            missing.len()
        );
        assert!(missing.is_empty(), "{mode}: keys lost: {missing:?}");
    }
);

/// A shell fragment that starts a process of its own holding the store's state lock for `secs`
/// seconds, as a long command of another clauth-helper would, and waits (bounded) until it
/// holds it, so what follows meets a held lock however loaded the machine is.
fn state_lock_holder(f: &Fixture, secs: u64) -> String {
    let ready = f.dir.path().join("holder.ready");
    format!(
        "rm -f {ready}; python3 -c 'import fcntl,sys,time; f=open(sys.argv[1],\"a\"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2],\"w\").close(); time.sleep({secs})' {lock} {ready} >/dev/null 2>&1 & echo $! > {pid}; i=0; while [ ! -e {ready} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done;",
        lock = f.store().join("state.lock").display(),
        ready = ready.display(),
        pid = f.dir.path().join("holder.pid").display()
    )
}

/// Stops the last holder by its own process id.
fn stop_holder(f: &Fixture) {
    if let Ok(pid) = fs::read_to_string(f.dir.path().join("holder.pid")) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

/// `run` retries a release that meets a held state lock (`lock_timeout`, retryable) instead of
/// leaving the refresh in an orphaned runtime, and says so and exits non-zero only when the
/// failure persists.
#[test]
fn run_retries_a_retryable_release_and_fails_loudly_only_when_it_persists() {
    let mut f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.set_env("CLAUTH_LOCK_TIMEOUT_MS", "200");
    let refreshed = f.dir.path().join("refreshed.json");
    fs::write(&refreshed, fixture_credentials("work-refreshed")).unwrap();
    // The command refreshes, starts a holder that takes the lock, and exits once it holds it.
    let script = |holder: String| {
        format!(
            "cp {r} \"$CLAUDE_CONFIG_DIR/.t\" && mv \"$CLAUDE_CONFIG_DIR/.t\" \"$CLAUDE_CONFIG_DIR/.credentials.json\"; {holder}",
            r = refreshed.display()
        )
    };
    let out = f.run(
        &[
            "run",
            "work",
            "--",
            "sh",
            "-c",
            &script(state_lock_holder(&f, 2)),
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert!(!f.store().join("runtimes/work").exists());
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work-refreshed")
    );
    // Held for longer than every try: a non-zero exit that says what is left and how to finish.
    stop_holder(&f);
    let holder = state_lock_holder(&f, 20);
    let out = f.run(&["run", "work", "--", "sh", "-c", &holder], b"");
    stop_holder(&f);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("gc"), "{stderr}");
    eprintln!(
        "races/run retries: a release retried past a 2 s lock; a 20 s lock reported, exit 125"
    );
}

fn read_doc(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap_or(serde_json::Value::Null)
}

both_modes!(
    session_keys_reach_a_home_document_another_writer_keeps_rewriting,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let home = f.claude_json();
        let runtime = f.runtime("work").join(".claude.json");
        // A plain claude beside the profile rewrites the home document every millisecond,
        // as Claude Code saves it (its lock directory, read, modify, rename), for a bounded time.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (home, stop) = (home.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && std::time::Instant::now() < deadline
                {
                    let lock = home.with_file_name(".claude.json.lock");
                    if fs::create_dir(&lock).is_ok() {
                        let mut doc = read_doc(&home);
                        if doc.is_object() {
                            doc["writerCounter"] = json!(n);
                            write_by_rename(&home, &serde_json::to_vec_pretty(&doc).unwrap());
                        }
                        fs::remove_dir(&lock).unwrap();
                    }
                    n += 1;
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        for k in 0..20 {
            let mut doc = read_doc(&runtime);
            doc[format!("sessionKey{k}")] = json!(k);
            write_by_rename(&runtime, &serde_json::to_vec_pretty(&doc).unwrap());
            f.tick(&session_of(&a));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        let doc = read_doc(&home);
        let missing: Vec<u64> = (0..20)
            .filter(|k| doc[format!("sessionKey{k}")] != json!(k))
            .collect();
        assert!(missing.is_empty(), "{mode}: session keys lost: {missing:?}");
        eprintln!(
            "races/plain writer ({mode}): 20 of 20 session keys reached a home rewritten every ms"
        );
    }
);

both_modes!(
    a_home_document_that_does_not_parse_keeps_the_session_s_changes_until_it_does,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let good = fs::read(f.claude_json()).unwrap();
        fs::write(f.claude_json(), b"{ \"numStartups\": 12, oops }").unwrap();
        let runtime = f.runtime("work").join(".claude.json");
        let mut doc = read_doc(&runtime);
        doc["sessionModel"] = json!("opus");
        write_by_rename(&runtime, &serde_json::to_vec_pretty(&doc).unwrap());
        let t = f.tick(&session_of(&a));
        assert!(
            t["rejected_documents"]
                .as_array()
                .unwrap()
                .contains(&json!(f.claude_json().to_string_lossy())),
            "{mode}: {t}"
        );
        f.tick(&session_of(&a));
        assert_eq!(read_doc(&runtime)["sessionModel"], json!("opus"), "{mode}");
        // Fixed by hand: the change goes home.
        fs::write(f.claude_json(), &good).unwrap();
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        assert_eq!(
            read_doc(&f.claude_json())["sessionModel"],
            json!("opus"),
            "{mode}"
        );
        eprintln!(
            "races/broken home ({mode}): the session's key waited and reached the home once it parsed"
        );
    }
);
