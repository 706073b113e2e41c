//! Load: many processes acquiring, ticking and releasing sessions of four profiles (two per link
//! mode) on one store, while refreshed credentials land in the runtimes every few milliseconds.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// (profile, link mode, fixture credentials it starts with).
const PROFILES: [(&str, &str, &str); 4] = [
    ("work-real", "real", "work"),
    ("personal-real", "real", "personal"),
    ("work-fake", "fake", "work"),
    ("personal-fake", "fake", "personal"),
];
/// Worker threads; each runs every call as its own process.
const WORKERS: u64 = 8;
const CYCLES_PER_WORKER: u64 = 250;
/// Threads that refresh credentials in bursts while holding a session of their own.
const REFRESHERS: u64 = 2;
const BASE_EXPIRY: i64 = 1_900_000_000_000;

/// One refresh written into a runtime.
struct Written {
    n: u64,
    expires_at: i64,
    bytes: Vec<u8>,
}

/// Refreshes of one profile, in the order they were written (which is also expiry order: a
/// profile's writes are serialised, as one Claude Code process's refreshes are).
#[derive(Default)]
struct ProfileLog {
    next: u64,
    writes: Vec<Written>,
}

#[derive(Default)]
struct Stats {
    acquire: AtomicU64,
    tick: AtomicU64,
    release: AtomicU64,
    retries: AtomicU64,
    cycles: AtomicU64,
    worker_refreshes: AtomicU64,
    refresher_refreshes: AtomicU64,
    refresher_bursts: AtomicU64,
    ticks_saving: AtomicU64,
    runtime_teardowns: AtomicU64,
}

struct World<'a> {
    f: &'a Fixture,
    bin: Bin,
    logs: Vec<Mutex<ProfileLog>>,
    stats: Stats,
    violations: Mutex<Vec<String>>,
}

impl World<'_> {
    fn violation(&self, what: String) {
        eprintln!("load: VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }

    fn call(&self, verb: &str, body: Value) -> Option<Response> {
        let (reply, retries) = self.bin.call_retrying(verb, &body);
        self.stats.retries.fetch_add(retries, Ordering::Relaxed);
        let counter = match verb {
            "acquire" => &self.stats.acquire,
            "tick" => &self.stats.tick,
            _ => &self.stats.release,
        };
        counter.fetch_add(1 + retries, Ordering::Relaxed);
        if reply.is_ok() {
            Some(reply)
        } else {
            self.violation(format!("a non-retryable error\n{}", reply.context()));
            None
        }
    }

    fn acquire(&self, p: usize) -> Option<Value> {
        let (name, mode, _) = PROFILES[p];
        let reply = self.call("acquire", json!({"profile": name, "link_mode": mode}))?;
        let body = &reply.json;
        if body["link_mode"] != json!(mode)
            || body["config_dir"] != json!(self.f.runtime(name).to_string_lossy())
        {
            self.violation(format!(
                "acquire answered another runtime: {}",
                reply.stdout
            ));
        }
        Some(body["session"].clone())
    }

    /// Writes the profile's next refresh into its runtime; the caller holds a live session.
    fn refresh(&self, p: usize) -> (u64, i64) {
        let (name, _, _) = PROFILES[p];
        let mut log = self.logs[p].lock().unwrap();
        let n = log.next;
        log.next += 1;
        let expires_at = BASE_EXPIRY + n as i64 * 1000;
        let bytes = refreshed_credentials(name, n, expires_at);
        // As Claude Code does: `.credentials.json.tmp.<pid>.<n>` beside the file, renamed over it.
        let cfg = self.f.runtime(name);
        write_by_rename_in(&cfg, &cfg.join(".credentials.json"), &bytes);
        log.writes.push(Written {
            n,
            expires_at,
            bytes,
        });
        (n, expires_at)
    }

    fn canonical_expiry(&self, p: usize) -> Option<i64> {
        let bytes = fs::read(self.f.canonical(PROFILES[p].0)).ok()?;
        expires_at(&bytes)
    }

    /// After a release returned, the newest refresh written during that session is saved.
    fn check_saved(&self, p: usize, who: &str, session: &Value, newest: (u64, i64)) {
        let found = self.canonical_expiry(p);
        if found.is_none_or(|e| e < newest.1) {
            self.violation(format!(
                "{who}: refresh #{} of {} (expiresAt {}) was written while session {session} was \
                 alive, but after that session's release returned the canonical credentials \
                 expire at {found:?}",
                newest.0, PROFILES[p].0, newest.1
            ));
        }
    }
}

fn worker(w: &World, id: u64) {
    let mut rng = XorShift::new(seed() ^ (id + 1).wrapping_mul(0x51ED));
    for _ in 0..CYCLES_PER_WORKER {
        let p = rng.below(PROFILES.len() as u64) as usize;
        let Some(session) = w.acquire(p) else {
            continue;
        };
        let written = w.refresh(p);
        w.stats.worker_refreshes.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = w.call("tick", json!({"session": session})) {
            if t.json["session"] != session {
                w.violation(format!("tick answered another session: {}", t.stdout));
            }
            if t.json["credentials_saved"] == json!(true) {
                w.stats.ticks_saving.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(r) = w.call("release", json!({"session": session}))
            && r.json["runtime_removed"] == json!(true)
        {
            w.stats.runtime_teardowns.fetch_add(1, Ordering::Relaxed);
        }
        w.check_saved(p, &format!("worker {id}"), &session, written);
        w.stats.cycles.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds a session of one profile at a time and refreshes its credentials every 2-5 ms, as a
/// Claude Code process under heavy refresh would.
fn refresher(w: &World, id: u64, done: &AtomicBool) {
    let mut rng = XorShift::new(seed() ^ (id + 101).wrapping_mul(0xBEEF));
    while !done.load(Ordering::Relaxed) {
        let p = rng.below(PROFILES.len() as u64) as usize;
        let Some(session) = w.acquire(p) else {
            continue;
        };
        let mut newest = (0, 0);
        for _ in 0..(10 + rng.below(20)) {
            newest = w.refresh(p);
            w.stats.refresher_refreshes.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(2 + rng.below(4)));
        }
        if let Some(r) = w.call("release", json!({"session": session}))
            && r.json["runtime_removed"] == json!(true)
        {
            w.stats.runtime_teardowns.fetch_add(1, Ordering::Relaxed);
        }
        w.check_saved(p, &format!("refresher {id}"), &session, newest);
        w.stats.refresher_bursts.fetch_add(1, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(rng.below(15)));
    }
}

#[test]
fn many_processes_cycling_sessions_under_constant_refreshes_lose_no_refresh_and_leave_nothing_behind()
 {
    let f = Fixture::new();
    // Each profile its own login: one login has one place.
    for (name, _, creds) in PROFILES {
        let login = refreshed_credentials(&format!("{creds}-{name}"), 0, 1_893_456_000_000);
        let out = f.run(&["profile", "add", name, "--credentials", "-"], &login);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let home_before: BTreeMap<String, String> = f
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("home"))
        .collect();
    let world = World {
        f: &f,
        bin: Bin::of(&f).with_env("CLAUTH_LOCK_TIMEOUT_MS", "30000"),
        logs: PROFILES.iter().map(|_| Mutex::default()).collect(),
        stats: Stats::default(),
        violations: Mutex::new(Vec::new()),
    };
    let started = Instant::now();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let refreshers: Vec<_> = (0..REFRESHERS)
            .map(|id| {
                let (world, done) = (&world, &done);
                s.spawn(move || refresher(world, id, done))
            })
            .collect();
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| {
                let world = &world;
                s.spawn(move || worker(world, id))
            })
            .collect();
        for h in workers {
            h.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for h in refreshers {
            h.join().unwrap();
        }
    });
    let elapsed = started.elapsed();
    let st = &world.stats;
    let total_refreshes = st.worker_refreshes.load(Ordering::Relaxed)
        + st.refresher_refreshes.load(Ordering::Relaxed);
    eprintln!(
        "load: {} processes in {} worker and {} refresher threads, {:.1} s: {} cycles, \
         {} acquire / {} tick / {} release calls (incl. {} lock_timeout retries), {} refreshes \
         ({} by workers, {} by refreshers in {} bursts), {} ticks saved credentials, \
         {} runtime teardowns; every stdout and stderr scanned for tokens",
        st.acquire.load(Ordering::Relaxed)
            + st.tick.load(Ordering::Relaxed)
            + st.release.load(Ordering::Relaxed),
        WORKERS,
        REFRESHERS,
        elapsed.as_secs_f64(),
        st.cycles.load(Ordering::Relaxed),
        st.acquire.load(Ordering::Relaxed),
        st.tick.load(Ordering::Relaxed),
        st.release.load(Ordering::Relaxed),
        st.retries.load(Ordering::Relaxed),
        total_refreshes,
        st.worker_refreshes.load(Ordering::Relaxed),
        st.refresher_refreshes.load(Ordering::Relaxed),
        st.refresher_bursts.load(Ordering::Relaxed),
        st.ticks_saving.load(Ordering::Relaxed),
        st.runtime_teardowns.load(Ordering::Relaxed),
    );
    assert!(st.cycles.load(Ordering::Relaxed) >= 400);

    // The end state, checked whatever happened on the way, so one run shows every problem.
    let mut end = Vec::new();
    // Each profile's canonical credentials are, byte for byte, the last refresh written for it.
    for (p, (name, _, creds)) in PROFILES.iter().enumerate() {
        let log = world.logs[p].lock().unwrap();
        let canonical = fs::read(f.canonical(name)).unwrap();
        match log.writes.last() {
            Some(last) if canonical != last.bytes => end.push(format!(
                "{name}: the canonical credentials are not the last refresh #{} (expiresAt {}); \
                 they expire at {:?}",
                last.n,
                last.expires_at,
                expires_at(&canonical)
            )),
            None if canonical != fixture_credentials(creds) => {
                end.push(format!("{name}: the canonical credentials changed"))
            }
            _ => {}
        }
    }
    // No runtime, session record or temp file is left, and status agrees.
    let leftovers: Vec<PathBuf> = temp_files(f.dir.path());
    if !leftovers.is_empty() {
        end.push(format!("temp files left: {leftovers:?}"));
    }
    for dir in ["runtimes", "sessions"] {
        let left = names_in(&f.store().join(dir));
        if !left.is_empty() {
            end.push(format!("{dir}/ still holds {left:?}"));
        }
    }
    let mine: Vec<PathBuf> = walk(f.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".credentials.json.tmp."))
        .collect();
    if !mine.is_empty() {
        end.push(format!("refresh temp files left: {mine:?}"));
    }
    let status = world.bin.call("status", &json!({}));
    let profiles = status.ok()["profiles"].as_array().unwrap().clone();
    if profiles.len() != PROFILES.len() {
        end.push(format!("status lists {} profiles", profiles.len()));
    }
    for prof in &profiles {
        let p = PROFILES
            .iter()
            .position(|(name, _, _)| prof["name"] == json!(name))
            .unwrap();
        let log = world.logs[p].lock().unwrap();
        let expiry = log.writes.last().map(|last| json!(last.expires_at));
        if prof["sessions"] != json!([])
            || prof["runtime"] != Value::Null
            || expiry.is_some_and(|e| prof["credentials"]["expires_at"] != e)
        {
            end.push(format!("status disagrees: {prof}"));
        }
    }
    // The claude home is as it was: the load touched credentials only.
    let home_after: BTreeMap<String, String> = f
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("home"))
        .collect();
    if home_before != home_after {
        end.push("the claude home changed under load".into());
    }
    let violations = world.violations.lock().unwrap();
    assert!(
        violations.is_empty() && end.is_empty(),
        "{} violation(s) under load, {} problem(s) in the end state\n\nend state:\n{}\n\nthe \
         first violations:\n{}",
        violations.len(),
        end.len(),
        end.join("\n"),
        violations
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
