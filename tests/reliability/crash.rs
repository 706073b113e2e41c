//! Crashes: the helper is SIGKILLed at random points inside acquire, tick and release; every
//! time, the next calls recover and nothing is lost, rolled back or half written.
//!
//! The claude home holds a few hundred self-describing files (a header naming the path, a
//! version and a length, then a body derived from them), so a truncated or mixed file is caught
//! wherever it shows up.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_modes;
use crate::common::*;
use crate::support::*;

const ITERATIONS: u64 = 75;
/// A kill lands at a uniformly random point between the start of the helper and about the
/// duration of that verb when it is not killed (a moving average of the recovery calls). On an
/// idle 2-core machine that is 0-5 ms for a tick, 0-15 ms for a release and 0-40 ms for a
/// fake-mode acquire; the cap keeps a loaded machine from stretching it without end.
const MAX_SLEEP_US: u64 = 60_000;
const PROJECT_DIRS: usize = 30;
const FILES_PER_DIR: usize = 10;
const TOP_LEVEL_NOTES: usize = 100;
const BASE_EXPIRY: i64 = 2_000_000_000_000;

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The full contents of version `version` of the file at `rel`.
fn content(rel: &str, version: u32) -> Vec<u8> {
    let h = fnv(rel) ^ (version as u64).wrapping_mul(0x9E37_79B9);
    let len = 200 + (h % 3800) as usize;
    let mut out = format!("{rel} v{version} {len}\n").into_bytes();
    out.extend((0..len).map(|i| b'a' + ((h >> (i % 13)) as usize + i) as u8 % 26));
    out
}

/// Parses a self-describing file and checks every byte: `(rel, version)` when it is whole.
fn verify(bytes: &[u8]) -> Result<(String, u32), String> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not UTF-8")?;
    let mut parts = header.rsplitn(3, ' ');
    let _len = parts.next().ok_or("no length")?;
    let version: u32 = parts
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .ok_or("no version")?;
    let rel = parts.next().ok_or("no path")?.to_owned();
    if content(&rel, version) != bytes {
        return Err(format!(
            "{rel} v{version} is not whole ({} bytes, expected {})",
            bytes.len(),
            content(&rel, version).len()
        ));
    }
    Ok((rel, version))
}

fn rel_of(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// What the claude home must hold: every generated file at its confirmed version, and the
/// versions written into the runtime but not yet confirmed synced.
struct Model {
    confirmed: BTreeMap<String, u32>,
    pending: BTreeMap<String, u32>,
    /// The fixture's own files of `~/.claude`, which nothing here changes.
    fixture: BTreeMap<String, Vec<u8>>,
}

impl Model {
    fn populate(f: &Fixture) -> Model {
        let home = f.claude();
        let mut fixture = BTreeMap::new();
        for p in walk(&home) {
            if p.is_file() {
                fixture.insert(rel_of(&home, &p), fs::read(&p).unwrap());
            }
        }
        let mut confirmed = BTreeMap::new();
        for d in 0..PROJECT_DIRS {
            fs::create_dir_all(home.join(format!("projects/p{d}"))).unwrap();
            for k in 0..FILES_PER_DIR {
                let rel = format!("projects/p{d}/f{k}.jsonl");
                fs::write(home.join(&rel), content(&rel, 1)).unwrap();
                confirmed.insert(rel, 1);
            }
        }
        for t in 0..TOP_LEVEL_NOTES {
            let rel = format!("notes{t}.md");
            fs::write(home.join(&rel), content(&rel, 1)).unwrap();
            confirmed.insert(rel, 1);
        }
        Model {
            confirmed,
            pending: BTreeMap::new(),
            fixture,
        }
    }

    fn pick(&self, rng: &mut XorShift, prefix: &str) -> String {
        let keys: Vec<&String> = self
            .confirmed
            .keys()
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys[rng.below(keys.len() as u64) as usize].clone()
    }

    /// What a session does to its runtime besides refreshing: in fake mode it changes two
    /// mirrored files and creates one; in real mode it replaces a top-level file by rename and
    /// creates a new top-level folder, both of which a tick folds into the home.
    fn mutate(&mut self, f: &Fixture, mode: &str, rng: &mut XorShift, i: u64) {
        let mut changes = Vec::new();
        let next = |rel: String| {
            let v = self.confirmed[&rel].max(self.pending.get(&rel).copied().unwrap_or(0)) + 1;
            (rel, v)
        };
        if mode == "fake" {
            for _ in 0..2 {
                changes.push(next(self.pick(rng, "projects/")));
            }
            let d = rng.below(PROJECT_DIRS as u64 + 3);
            changes.push((format!("projects/p{d}/new{i}.jsonl"), 1));
        } else {
            changes.push(next(self.pick(rng, "notes")));
            changes.push((format!("adopt{i}/a.txt"), 1));
            changes.push((format!("adopt{i}/b.txt"), 1));
        }
        let cfg = f.runtime("work");
        for (rel, version) in changes {
            let path = cfg.join(&rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            if mode == "real" {
                write_by_rename_in(
                    &f.store().join("runtimes/work"),
                    &path,
                    &content(&rel, version),
                );
            } else {
                fs::write(&path, content(&rel, version)).unwrap();
            }
            self.pending.insert(rel, version);
        }
    }

    fn confirm(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.confirmed.extend(pending);
    }

    /// Checks the claude home. With `exact`, every file is at its newest version (a sync
    /// completed since the last change); otherwise a pending file may still be at its previous
    /// version or, when new, absent. Returns (conflict copies, temp files) seen.
    fn check_home(&self, f: &Fixture, exact: bool) -> Result<(usize, usize), String> {
        let home = f.claude();
        let mut seen = BTreeMap::new();
        let (mut conflicts, mut temps) = (0, 0);
        for p in walk(&home) {
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                continue;
            }
            let rel = rel_of(&home, &p);
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if meta.file_type().is_symlink() {
                return Err(format!("the claude home holds a symlink {rel}"));
            }
            if name.starts_with(".clauth-tmp-") {
                temps += 1;
                continue;
            }
            let bytes = fs::read(&p).unwrap();
            if let Some(original) = self.fixture.get(&rel) {
                if *original != bytes {
                    return Err(format!("the fixture file {rel} changed"));
                }
                continue;
            }
            let (named, version) = verify(&bytes).map_err(|e| format!("{rel}: {e}"))?;
            if rel.contains(".clauth-conflict-") {
                conflicts += 1;
                continue;
            }
            if named != rel {
                return Err(format!("{rel} holds the contents of {named}"));
            }
            seen.insert(rel, version);
        }
        let gone: Vec<&String> = self
            .confirmed
            .keys()
            .filter(|rel| !seen.contains_key(*rel))
            .collect();
        if !gone.is_empty() {
            return Err(format!(
                "{} of {} files are gone from the claude home, among them {:?}",
                gone.len(),
                self.confirmed.len(),
                &gone[..gone.len().min(4)]
            ));
        }
        for (rel, &version) in &self.confirmed {
            let newest = self.pending.get(rel).copied();
            match seen.get(rel) {
                None => unreachable!(),
                Some(&v) if exact && v != newest.unwrap_or(version) => {
                    return Err(format!(
                        "{rel} is at v{v}, expected v{}",
                        newest.unwrap_or(version)
                    ));
                }
                Some(&v) if v != version && Some(v) != newest => {
                    return Err(format!(
                        "{rel} is at v{v}, expected v{version} or {newest:?}"
                    ));
                }
                _ => {}
            }
        }
        for (rel, &version) in &self.pending {
            if self.confirmed.contains_key(rel) {
                continue;
            }
            match seen.get(rel) {
                None if exact => return Err(format!("the new file {rel} never reached the home")),
                Some(&v) if v != version => return Err(format!("{rel} is at v{v}")),
                _ => {}
            }
        }
        for rel in seen.keys() {
            if !self.confirmed.contains_key(rel) && !self.pending.contains_key(rel) {
                return Err(format!("{rel} appeared in the claude home from nowhere"));
            }
        }
        Ok((conflicts, temps))
    }

    /// Checks the files of a runtime that was handed out: every one whole.
    fn check_runtime(&self, f: &Fixture) -> Result<(), String> {
        let state = f.store().join("runtimes/work/state.json");
        let Ok(bytes) = fs::read(&state) else {
            return Ok(());
        };
        let state: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("runtimes/work/state.json does not parse: {e}"))?;
        if state["ready"] == json!(false) {
            // A build that never finished was never handed to a session.
            return Ok(());
        }
        let cfg = f.runtime("work");
        for p in walk(&cfg) {
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let rel = rel_of(&cfg, &p);
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(".clauth-tmp-") {
                continue;
            }
            let bytes = fs::read(&p).unwrap();
            if [".credentials.json", "settings.json", ".claude.json"].contains(&rel.as_str()) {
                serde_json::from_slice::<Value>(&bytes)
                    .map_err(|e| format!("the runtime's {rel} does not parse: {e}"))?;
            } else if self.fixture.get(&rel) != Some(&bytes) {
                verify(&bytes).map_err(|e| format!("runtime {rel}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// The canonical credentials parse, are one of the documents ever written, and are not older
/// than `floor`.
fn check_canonical(f: &Fixture, written: &[Vec<u8>], floor: i64) -> Result<(), String> {
    let bytes = fs::read(f.canonical("work")).map_err(|e| format!("canonical: {e}"))?;
    let expiry = expires_at(&bytes).ok_or("the canonical credentials do not parse")?;
    if !written.contains(&bytes) {
        return Err("the canonical credentials are none of the documents written".into());
    }
    if expiry < floor {
        return Err(format!(
            "the canonical credentials (expiresAt {expiry}) are older than a refresh a \
             completed call saved (expiresAt {floor})"
        ));
    }
    Ok(())
}

/// Every JSON file of the store parses (temp files aside).
fn check_store_json(f: &Fixture) -> Result<(), String> {
    for p in walk(&f.store()) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json")
            || name.starts_with(".clauth-tmp-")
            || p.starts_with(f.runtime("work"))
            || !fs::symlink_metadata(&p).is_ok_and(|m| m.is_file())
        {
            continue;
        }
        let bytes = fs::read(&p).unwrap_or_default();
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("{} does not parse: {e}", p.display()))?;
    }
    Ok(())
}

/// Typical durations of completed calls per verb (moving average, microseconds).
#[derive(Debug)]
struct Timing(BTreeMap<&'static str, u64>);

impl Timing {
    fn call(&mut self, bin: &Bin, verb: &'static str, body: &Value) -> Response {
        let started = Instant::now();
        let reply = bin.call(verb, body);
        let us = started.elapsed().as_micros() as u64;
        let avg = self.0.entry(verb).or_insert(us);
        *avg = (*avg * 3 + us) / 4;
        reply
    }

    /// Where a kill of `verb` may land.
    fn window(&self, verb: &str) -> u64 {
        let typical = self.0.get(verb).copied().unwrap_or(MAX_SLEEP_US);
        (typical + typical / 4).clamp(1_000, MAX_SLEEP_US)
    }
}

#[derive(Default, Debug)]
struct Tally {
    spawned: BTreeMap<&'static str, u64>,
    /// The longest wait before a kill, per verb (microseconds).
    longest_wait: BTreeMap<&'static str, u64>,
    landed: BTreeMap<&'static str, u64>,
    recoveries: u64,
    calls: u64,
    conflicts: usize,
    max_temps: usize,
}

fn sessions_of(status: &Value) -> Vec<Value> {
    status["profiles"][0]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].clone())
        .collect()
}

fn fail(mode: &str, seed: u64, i: u64, what: &str, why: String, tally: &Tally) -> ! {
    panic!(
        "{mode}, seed {seed}, iteration {i} ({what}): {why}\nso far: {tally:?}\nrerun: \
         CLAUTH_RELIABILITY_SEED={} cargo test --test reliability crash -- --nocapture",
        self::seed()
    )
}

fn crash_run(mode: &'static str) {
    let seed = seed() ^ if mode == "real" { 0x11 } else { 0x22 };
    let mut rng = XorShift::new(seed);
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let mut model = Model::populate(&f);
    let bin = Bin::of(&f);
    let mut written = vec![fixture_credentials("work")];
    let mut floor = expires_at(&written[0]).unwrap();
    let mut session: Option<Value> = None;
    let mut tally = Tally::default();
    let mut timing = Timing(BTreeMap::new());
    let started = Instant::now();
    let acquire = json!({"profile": "work", "link_mode": mode});
    let fail =
        |i: u64, what: &str, why: String, tally: &Tally| fail(mode, seed, i, what, why, tally);
    for i in 0..ITERATIONS {
        let s = match &session {
            Some(s) => s.clone(),
            None => {
                tally.calls += 1;
                let a = timing.call(&bin, "acquire", &acquire);
                let s = a.ok()["session"].clone();
                session = Some(s.clone());
                s
            }
        };
        // Claude Code's side: a refresh, and files.
        let n = written.len() as u64;
        let refresh = refreshed_credentials("crash", n, BASE_EXPIRY + n as i64 * 1000);
        write_by_rename_in(
            &f.store().join("runtimes/work"),
            &f.runtime("work").join(".credentials.json"),
            &refresh,
        );
        written.push(refresh);
        model.mutate(&f, mode, &mut rng, i);

        let verb: &'static str = ["acquire", "tick", "release"][rng.below(3) as usize];
        let body = match verb {
            "acquire" => {
                // A kill inside acquire matters when it builds: end the live session first.
                tally.calls += 1;
                timing.call(&bin, "release", &json!({"session": s})).ok();
                model.confirm();
                floor = expires_at(written.last().unwrap()).unwrap();
                session = None;
                acquire.clone()
            }
            _ => json!({"session": s}),
        };
        let body = body.to_string();
        let sleep = rng.below(timing.window(verb));
        let longest = tally.longest_wait.entry(verb).or_default();
        *longest = (*longest).max(sleep);
        let what = format!("{verb} killed after {} us", sleep);
        *tally.spawned.entry(verb).or_default() += 1;
        let mut child = bin.spawn(&[verb], body.as_bytes());
        thread::sleep(Duration::from_micros(sleep));
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let status = child.wait().unwrap();
        let (out, err) = drain(&mut child);
        if status.signal() == Some(libc::SIGKILL) && running {
            *tally.landed.entry(verb).or_default() += 1;
            scan("stdout of a killed helper", &out);
            scan("stderr of a killed helper", &err);
        } else {
            let response = bin.decode(verb, body.as_bytes(), &out, &err, status.code());
            response.ok();
            if verb == "acquire" {
                session = Some(response.json["session"].clone());
            }
        }

        // Right after the kill: nothing torn, nothing older than what was confirmed saved.
        let checks = check_canonical(&f, &written, floor)
            .and_then(|_| check_store_json(&f))
            .and_then(|_| model.check_home(&f, false))
            .and_then(|found| model.check_runtime(&f).map(|_| found));
        match checks {
            Ok((_, temps)) => tally.max_temps = tally.max_temps.max(temps),
            Err(why) => fail(i, &what, why, &tally),
        }

        // Recovery: the next calls succeed.
        let runtime_left = names_in(&f.store().join("runtimes/work"));
        let mut recovery = Vec::new();
        tally.calls += 1;
        let st = bin.call("status", &json!({"profile": "work"}));
        if !st.is_ok() {
            fail(i, &what, format!("status failed\n{}", st.context()), &tally);
        }
        let listed = sessions_of(&st.json);
        match verb {
            "tick" => {
                if !listed.contains(&s) {
                    fail(i, &what, format!("a killed tick lost session {s}"), &tally);
                }
                tally.calls += 1;
                let t = timing.call(&bin, "tick", &json!({"session": s}));
                if !t.is_ok() {
                    fail(
                        i,
                        &what,
                        format!("the recovery tick failed\n{}", t.context()),
                        &tally,
                    );
                }
                recovery.push(t.stdout);
            }
            _ => {
                // A killed release may have left its session; a killed acquire may have
                // recorded one that nobody heard of. Release whatever is listed.
                for other in &listed {
                    tally.calls += 1;
                    let r = timing.call(&bin, "release", &json!({"session": other}));
                    if !r.is_ok() {
                        fail(
                            i,
                            &what,
                            format!(
                                "the kill left runtimes/work holding {runtime_left:?}; the \
                                 recovery release failed\n{}",
                                r.context()
                            ),
                            &tally,
                        );
                    }
                    recovery.push(r.stdout);
                }
                session = None;
                tally.calls += 1;
                let (out, err, code) = bin.run(&["gc"], b"");
                if code != Some(0) || serde_json::from_slice::<Value>(&out).is_err() {
                    fail(
                        i,
                        &what,
                        format!("gc failed: {}", String::from_utf8_lossy(&err)),
                        &tally,
                    );
                }
                if f.store().join("runtimes/work").exists() {
                    fail(i, &what, "gc left the runtime".into(), &tally);
                }
            }
        }
        tally.recoveries += 1;

        // After a completed sync: the newest refresh is the profile's, every file is home.
        model.confirm();
        let last = written.last().unwrap();
        floor = expires_at(last).unwrap();
        let strong = check_canonical(&f, &written, floor)
            .and_then(|_| {
                if fs::read(f.canonical("work")).unwrap() == *last {
                    Ok(())
                } else {
                    Err("the newest refresh is not the profile's after recovery".to_owned())
                }
            })
            .and_then(|_| model.check_home(&f, true));
        match strong {
            Ok((conflicts, _)) => tally.conflicts = conflicts,
            Err(why) => fail(
                i,
                &format!("{what}, after recovery"),
                format!(
                    "{why}\nthe kill left runtimes/work holding {runtime_left:?}; the recovery \
                     calls answered:\n{}",
                    recovery.join("")
                ),
                &tally,
            ),
        }
    }
    if let Some(s) = session.take() {
        bin.call("release", &json!({"session": s})).ok();
    }
    let (_, _, code) = bin.run(&["gc"], b"");
    assert_eq!(code, Some(0));
    assert_eq!(names_in(&f.store().join("runtimes")), Vec::<String>::new());
    assert!(
        names_in(&f.store().join("sessions"))
            .iter()
            .all(|n| !n.ends_with(".json")),
        "session records left: {:?}",
        names_in(&f.store().join("sessions"))
    );
    let leftovers = temp_files(f.dir.path());
    let landed: u64 = tally.landed.values().sum();
    eprintln!(
        "crash/{mode}: seed {seed}, {} s: {ITERATIONS} helpers SIGKILLed at a random point \
         (spawned {:?}; the kill landed while running in {landed}: {:?}; typical durations in \
         us {:?}; longest waits in us {:?}); {} recovery calls all succeeded; {} refreshes, {} files in the claude home at \
         the end, {} conflict copies; temp files left by kills: at most {} at once in the claude \
         home, {} in the fixture at the end",
        started.elapsed().as_secs(),
        tally.spawned,
        tally.landed,
        timing.0,
        tally.longest_wait,
        tally.calls,
        written.len() - 1,
        model.confirmed.len(),
        tally.conflicts,
        tally.max_temps,
        leftovers.len(),
    );
    for p in &leftovers {
        eprintln!("crash/{mode}: left behind: {}", rel_of(f.dir.path(), p));
    }
    assert!(
        landed >= ITERATIONS / 2,
        "too few kills landed inside a running helper"
    );
}

both_modes!(
    sigkill_at_random_points_of_acquire_tick_and_release_loses_and_tears_nothing,
    |mode: &str| crash_run(if mode == "real" { "real" } else { "fake" })
);

both_modes!(
    a_release_killed_while_it_removes_the_runtime_loses_nothing_in_the_claude_home,
    |mode: &str| {
        // The kill is aimed: the test watches the runtime's config/ and kills the release as
        // soon as its first entry is gone (teardown's final sync is over and the removal has
        // begun). The calls that follow must finish the teardown without touching the home.
        const ATTEMPTS: u64 = 40;
        const WANTED: u64 = 5;
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let model = Model::populate(&f);
        let bin = Bin::of(&f);
        let cfg = f.runtime("work");
        let (mut landed, mut attempts) = (0, 0);
        let mut seen_states = Vec::new();
        while attempts < ATTEMPTS && landed < WANTED {
            attempts += 1;
            let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
            let s = a.ok()["session"].clone();
            let before = names_in(&cfg).len();
            let body = json!({"session": s}).to_string();
            let mut child = bin.spawn(&["release"], body.as_bytes());
            let mut hit = false;
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if fs::read_dir(&cfg).map_or(0, |d| d.count()) < before {
                    let _ = child.kill();
                    hit = true;
                    break;
                }
            }
            let status = child.wait().unwrap();
            let (out, err) = drain(&mut child);
            scan("stdout", &out);
            scan("stderr", &err);
            let killed = hit && status.signal() == Some(libc::SIGKILL);
            let left = names_in(&f.store().join("runtimes/work"));
            if killed {
                landed += 1;
                seen_states.push(format!(
                    "runtimes/work kept {left:?}, config/ kept {} of {before} entries",
                    names_in(&cfg).len()
                ));
            }
            // Recovery: status, release the session again if it is still there, gc.
            let st = bin.call("status", &json!({"profile": "work"}));
            let mut answers = Vec::new();
            for other in sessions_of(&st.ok()) {
                let r = bin.call("release", &json!({"session": other}));
                assert!(
                    r.is_ok(),
                    "{mode}: a release was SIGKILLed while it removed the runtime (attempt \
                     {attempts}; runtimes/work kept {left:?}, config/ kept {} of {before} \
                     entries), and the next release cannot finish the teardown:\n{}",
                    names_in(&cfg).len(),
                    r.context()
                );
                answers.push(r.stdout.clone());
            }
            let (gc_out, _, code) = bin.run(&["gc"], b"");
            assert_eq!(code, Some(0));
            answers.push(String::from_utf8_lossy(&gc_out).into_owned());
            assert!(
                !f.store().join("runtimes/work").exists(),
                "gc left the runtime"
            );
            if let Err(why) = model.check_home(&f, true) {
                panic!(
                    "{mode}: a release was SIGKILLed while it removed the runtime (attempt \
                     {attempts}; runtimes/work kept {left:?}, config/ kept {} of {before} \
                     entries), and the calls that finished the teardown damaged the claude \
                     home: {why}\nthey answered:\n{}",
                    names_in(&cfg).len(),
                    answers.join("")
                );
            }
        }
        eprintln!(
            "crash/{mode}: {attempts} releases started, {landed} SIGKILLed while removing the \
             runtime, the claude home intact after each recovery: {seen_states:?}"
        );
        assert!(
            landed >= 1,
            "no kill landed while the runtime was being removed"
        );
    }
);

both_modes!(
    a_runtime_whose_config_dir_a_kill_already_removed_is_reclaimed_without_touching_the_home,
    |mode: &str| {
        // Teardown removes runtimes/<profile>/ with remove_dir_all, which on this file system
        // empties config/ before it unlinks state.json: a SIGKILL between the two leaves a
        // runtime whose state says "ready" and whose config/ is gone. That window is one unlink
        // wide, so the test builds the state directly. A profile with credentials and one
        // without (a fresh profile waiting for /login) are both reclaimed by the next call.
        let mut failures = Vec::new();
        for creds in [Some("work"), None] {
            let f = Fixture::new();
            f.add_profile("work", creds);
            let model = Model::populate(&f);
            let bin = Bin::of(&f);
            let a = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
            let s = a.ok()["session"].clone();
            bin.call("tick", &json!({"session": s})).ok();
            fs::remove_dir_all(f.runtime("work")).unwrap();
            let label = if creds.is_some() {
                "with credentials"
            } else {
                "without credentials"
            };
            let r = bin.call("release", &json!({"session": s}));
            let (gc_out, gc_err, gc_code) = bin.run(&["gc"], b"");
            let again = bin.call("acquire", &json!({"profile": "work", "link_mode": mode}));
            let home = model.check_home(&f, true);
            eprintln!(
                "crash/{mode}: a runtime without config/ ({label}): release answered {:?}, gc \
                 exited {gc_code:?}, a new acquire answered {:?}, the claude home: {}",
                r.error_code().unwrap_or("ok"),
                again.error_code().unwrap_or("ok"),
                match &home {
                    Ok(_) => "intact".to_owned(),
                    Err(e) => e.clone(),
                }
            );
            if let Err(why) = home {
                failures.push(format!(
                    "{label}: the calls after the kill damaged the claude home: {why}"
                ));
            }
            if !r.is_ok() {
                failures.push(format!("{label}: the release failed: {}", r.stdout.trim()));
            }
            if gc_code != Some(0) {
                failures.push(format!(
                    "{label}: gc failed: {}{}",
                    String::from_utf8_lossy(&gc_out),
                    String::from_utf8_lossy(&gc_err).trim()
                ));
            }
            if !again.is_ok() {
                failures.push(format!(
                    "{label}: the next acquire failed: {}",
                    again.stdout.trim()
                ));
            } else {
                let cfg_exists = f.runtime("work").is_dir();
                if !cfg_exists {
                    failures.push(format!(
                        "{label}: the next acquire handed out {} which does not exist",
                        again.json["config_dir"]
                    ));
                }
                let s2 = again.json["session"].clone();
                let r2 = bin.call("release", &json!({"session": s2}));
                if !r2.is_ok() {
                    failures.push(format!(
                        "{label}: releasing that session failed: {}",
                        r2.stdout.trim()
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{mode}: a runtime left without config/ by a kill was not reclaimed cleanly:\n{}",
            failures.join("\n")
        );
    }
);

/// A `serve` or `run` killed between taking its hold lock and writing the session record leaves
/// `sessions/<id>.lock`; `gc` removes it, but never one a live process still holds.
#[test]
fn gc_removes_hold_locks_nobody_holds_and_keeps_held_ones() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    f.status();
    let sessions = f.store().join("sessions");
    let orphan = sessions.join("s-0123456789abcdef01234567.lock");
    let held = sessions.join("s-89abcdef0123456789abcdef.lock");
    fs::write(&orphan, b"").unwrap();
    fs::write(&held, b"").unwrap();
    // A process holding the lock, as serve does during its acquire.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ])
        .arg(&held)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let out = f.run(&["gc"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !orphan.exists(),
        "an unheld lock without a record is removed"
    );
    assert!(held.exists(), "a held lock stays");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(f.run(&["gc"], b"").status.success());
    assert!(!held.exists(), "once its holder is gone it goes too");
    eprintln!("crash/hold locks: 1 orphaned lock removed, 1 held lock kept until its holder died");
}
