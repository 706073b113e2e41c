//! Whole-process benchmarks of clauth-helper on generated claude homes of 1k, 10k and 50k files.
//!
//! Run: `cargo bench --bench scale` (options after `--`: `--sizes 1000,10000 --runs 5`;
//! `--idle` measures only the CPU of an idle `serve`, in both link modes, over `--idle-secs`).
//! Every ratio is measured side by side in the same run, since absolute times drift: the
//! binary's own start-up, `cp -a` of the tree, a `find` metadata walk of both trees, and a naive
//! reference mirror that reads and compares every file (this binary re-invoked as
//! `--naive-mirror A B`). Results are printed as Markdown and written to
//! `target/bench-results.md`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clauth-helper");

/// One measured process: wall time and peak resident memory.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` with `stdin` and measures it through wait4's resource usage.
// The child is reaped by wait4 below, which std cannot see.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command, stdin: &[u8]) -> (Sample, Vec<u8>) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which std has not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: pid is our child; status and usage are valid for writes.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    let sample = Sample {
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
    };
    (sample, out)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Medians of a set of samples.
#[derive(Clone, Copy, Debug)]
struct Stat {
    wall: Duration,
    max_rss_kib: u64,
}

fn stat(samples: &[Sample]) -> Stat {
    Stat {
        wall: median(samples.iter().map(|s| s.wall).collect()),
        max_rss_kib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0),
    }
}

/// A deterministic generator, so every run measures the same tree.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Builds (once) a home of `files` files shaped like a year of use: 10% large transcripts
/// (200 KiB each), 50% small todos, 40% shell snapshots.
fn home(root: &Path, files: usize) -> PathBuf {
    let home = root.join(format!("home-{files}"));
    let done = home.join(".generated");
    if done.exists() {
        return home;
    }
    let _ = fs::remove_dir_all(&home);
    let claude = home.join(".claude");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ files as u64);
    let line = |rng: &mut Rng| {
        format!(
            "{{\"type\":\"assistant\",\"uuid\":\"{:016x}\",\"message\":{{\"content\":\"{}\"}}}}\n",
            rng.next(),
            "lorem ipsum dolor sit amet ".repeat(6)
        )
    };
    let transcripts = files / 10;
    let todos = files / 2;
    let snapshots = files - transcripts - todos;
    for i in 0..transcripts {
        let dir = claude.join(format!("projects/-home-me-project-{:02}", i % 40));
        fs::create_dir_all(&dir).unwrap();
        let mut text = String::with_capacity(210 * 1024);
        while text.len() < 200 * 1024 {
            text.push_str(&line(&mut rng));
        }
        fs::write(
            dir.join(format!("{:08x}-{i}.jsonl", rng.next() as u32)),
            text,
        )
        .unwrap();
    }
    fs::create_dir_all(claude.join("todos")).unwrap();
    for i in 0..todos {
        fs::write(
            claude.join(format!("todos/{:016x}-agent-{i}.json", rng.next())),
            "[]",
        )
        .unwrap();
    }
    for i in 0..snapshots {
        let dir = claude.join(format!("shell-snapshots/{:02}", i % 50));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("snapshot-bash-{i}.sh")),
            "export PATH=/usr/bin\n".repeat(60),
        )
        .unwrap();
    }
    fs::write(claude.join("settings.json"), "{\"model\": \"sonnet\"}\n").unwrap();
    fs::write(home.join(".claude.json"), "{\"numStartups\": 1}\n").unwrap();
    fs::write(&done, "").unwrap();
    home
}

struct World {
    home: PathBuf,
    store: PathBuf,
}

impl World {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("CLAUTH_HOME", &self.store)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c
    }

    fn call(&self, verb: &str, body: &str) -> (Sample, serde_json::Value) {
        let (s, out) = measure(&mut self.cmd(&[verb]), body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json response");
        assert_eq!(v["ok"], true, "{verb} failed: {v}");
        (s, v)
    }

    fn runtime(&self) -> PathBuf {
        self.store.join("runtimes/bench/config")
    }
}

/// Touches `k` transcripts in the runtime (appends a line), as a session does.
fn change_files(runtime: &Path, k: usize, round: usize) {
    let mut n = 0;
    let projects = runtime.join("projects");
    'outer: for dir in fs::read_dir(&projects).unwrap() {
        for file in fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            writeln!(f, "{{\"round\":{round}}}").unwrap();
            n += 1;
            if n == k {
                break 'outer;
            }
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Counts files under the trees that a one-shot tick opened for reading (strace, if present).
fn files_opened_by_tick(w: &World, session: &str) -> Option<usize> {
    let trace = w.store.join("trace.txt");
    let mut c = Command::new("strace");
    c.args(["-f", "-e", "trace=openat", "-o"])
        .arg(&trace)
        .arg(BIN)
        .arg("tick");
    c.env_clear()
        .env("HOME", &w.home)
        .env("CLAUTH_HOME", &w.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().ok()?;
    child
        .stdin
        .take()?
        .write_all(format!("{{\"session\":\"{session}\"}}").as_bytes())
        .ok()?;
    if !child.wait().ok()?.success() {
        return None;
    }
    let text = fs::read_to_string(&trace).ok()?;
    let home = w.home.join(".claude").to_string_lossy().into_owned();
    let rt = w.runtime().to_string_lossy().into_owned();
    let managed = [
        ".credentials.json",
        "settings.json",
        ".claude.json",
        "manifest.tsv",
        "state.json",
    ];
    Some(
        text.lines()
            .filter(|l| l.contains("openat(") && !l.contains("O_DIRECTORY") && !l.contains("= -1"))
            .filter(|l| l.contains(&home) || l.contains(&rt))
            .filter(|l| !managed.iter().any(|m| l.contains(m)))
            .count(),
    )
}

struct Row {
    what: String,
    value: String,
}

fn bench_size(root: &Path, files: usize, runs: usize, rows: &mut Vec<Row>) {
    let home = home(root, files);
    let claude = home.join(".claude");
    let mut push = |what: String, value: String| rows.push(Row { what, value });
    let bytes: u64 = walk_bytes(&claude);
    push(
        format!("**{files} files** ({:.0} MiB)", bytes as f64 / 1048576.0),
        String::new(),
    );

    // Warm the page cache for the binary and the tree before anything is timed.
    measure(Command::new(BIN).arg("--version"), b"");
    walk_bytes(&claude);
    let version = stat(
        &(0..runs)
            .map(|_| measure(Command::new(BIN).arg("--version"), b"").0)
            .collect::<Vec<_>>(),
    );
    push(
        "start-up (`--version`)".into(),
        format!("{} ms", ms(version.wall)),
    );

    for mode in ["real", "fake"] {
        let w = fresh_world(root, &home, files, mode);
        let acquire_body = format!("{{\"profile\":\"bench\",\"link_mode\":\"{mode}\"}}");
        let (mut acq, mut rel, mut cp) = (Vec::new(), Vec::new(), Vec::new());
        let copy_to = root.join("cp-target");
        for _ in 0..runs {
            // `cp -a` of the same tree, interleaved with the acquires so that both meet the
            // same state of the file system (each follows the removal of a copy of the tree).
            if mode == "fake" {
                let _ = fs::remove_dir_all(&copy_to);
                cp.push(measure(Command::new("cp").arg("-a").arg(&claude).arg(&copy_to), b"").0);
                let _ = fs::remove_dir_all(&copy_to);
            }
            let (s, v) = w.call("acquire", &acquire_body);
            acq.push(s);
            let (s, _) = w.call("release", &format!("{{\"session\":{}}}", v["session"]));
            rel.push(s);
        }
        let (_, v) = w.call("acquire", &acquire_body);
        let session = v["session"].as_str().unwrap().to_owned();
        let tick_body = format!("{{\"session\":\"{session}\"}}");
        w.call("tick", &tick_body);
        let idle: Vec<Sample> = (0..runs).map(|_| w.call("tick", &tick_body).0).collect();
        let mut changed = Vec::new();
        for round in 0..runs {
            change_files(&w.runtime(), 10, round);
            changed.push(w.call("tick", &tick_body).0);
        }
        let status: Vec<Sample> = (0..runs).map(|_| w.call("status", "{}").0).collect();
        let (acq, rel, idle, changed, status) = (
            stat(&acq),
            stat(&rel),
            stat(&idle),
            stat(&changed),
            stat(&status),
        );
        let ratio = |s: Stat| {
            format!(
                "{} ms ({:.1}× start-up), peak {} MiB",
                ms(s.wall),
                s.wall.as_secs_f64() / version.wall.as_secs_f64(),
                s.max_rss_kib / 1024
            )
        };
        push(format!("{mode}: acquire"), ratio(acq));
        push(format!("{mode}: tick, nothing changed"), ratio(idle));
        push(format!("{mode}: tick, 10 files changed"), ratio(changed));
        push(format!("{mode}: release"), ratio(rel));
        push(format!("{mode}: status"), ratio(status));

        if mode == "fake" {
            let rt = w.runtime();
            let find: Vec<Sample> = (0..runs)
                .map(|_| {
                    measure(
                        Command::new("find")
                            .arg(&rt)
                            .arg(&claude)
                            .args(["-printf", "%s %T@\\n"]),
                        b"",
                    )
                    .0
                })
                .collect();
            let find = stat(&find);
            push(
                "fake: `find` metadata walk of both trees".into(),
                format!("{} ms", ms(find.wall)),
            );
            push(
                "fake: idle tick / find walk".into(),
                format!("{:.2}×", idle.wall.as_secs_f64() / find.wall.as_secs_f64()),
            );
            let me = std::env::current_exe().unwrap();
            let naive: Vec<Sample> = (0..runs)
                .map(|_| {
                    measure(
                        Command::new(&me)
                            .arg("--naive-mirror")
                            .arg(&claude)
                            .arg(&rt),
                        b"",
                    )
                    .0
                })
                .collect();
            let naive = stat(&naive);
            push(
                "fake: naive mirror (reads and compares every file)".into(),
                format!(
                    "{} ms, peak {} MiB",
                    ms(naive.wall),
                    naive.max_rss_kib / 1024
                ),
            );
            push(
                "fake: naive mirror / idle tick".into(),
                format!("{:.1}×", naive.wall.as_secs_f64() / idle.wall.as_secs_f64()),
            );
            let cp = stat(&cp);
            push(
                "fake: `cp -a` of the claude home".into(),
                format!("{} ms", ms(cp.wall)),
            );
            push(
                "fake: acquire / `cp -a`".into(),
                format!("{:.2}×", acq.wall.as_secs_f64() / cp.wall.as_secs_f64()),
            );
            match files_opened_by_tick(&w, &session) {
                Some(n) => push(
                    "fake: files opened by an idle one-shot tick (strace)".into(),
                    n.to_string(),
                ),
                None => push(
                    "fake: files opened by an idle one-shot tick".into(),
                    "strace not available".into(),
                ),
            }
        }
        w.call("release", &tick_body);

        idle_serve(&w, mode, IDLE_SECS, &mut push);
        if mode == "fake" {
            long_lived(&w, runs, &mut push);
        }
    }
}

/// How long an idle `serve` is watched for its CPU unless `--idle-secs` says otherwise (over
/// 60 s, the window holds the tick a minute that covers lost notifications).
const IDLE_SECS: u64 = 10;

/// The CPU an idle `serve` holding a session in `mode` spends per second, over `secs` after its
/// first pass (which starts the watch) is done, and the CPU of that first pass.
fn idle_serve(w: &World, mode: &str, secs: u64, push: &mut impl FnMut(String, String)) {
    let (mut child, stdin) = serve_holding(w, mode);
    let pid = child.id();
    let acquired = cpu_of(pid);
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_of(pid);
    push(
        format!("{mode}, long-lived (`serve`): CPU of the first pass after the acquire"),
        format!("{:.3} ms", (before - acquired).as_secs_f64() * 1000.0),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let per_second = (cpu_of(pid) - before) / secs as u32;
    push(
        format!("{mode}, long-lived (`serve`): CPU per idle second"),
        format!(
            "{:.4} ms (over {secs} s)",
            per_second.as_secs_f64() * 1000.0
        ),
    );
    drop(stdin);
    child.wait().unwrap();
}

/// `--idle`: only the idle `serve` figures, both modes, at each size.
fn bench_idle(root: &Path, files: usize, secs: u64, rows: &mut Vec<Row>) {
    let home = home(root, files);
    let mut push = |what: String, value: String| rows.push(Row { what, value });
    push(format!("**{files} files**"), String::new());
    for mode in ["real", "fake"] {
        idle_serve(
            &fresh_world(root, &home, files, mode),
            mode,
            secs,
            &mut push,
        );
    }
}

/// A new store for `home` in `mode`, with the profile `bench`.
fn fresh_world(root: &Path, home: &Path, files: usize, mode: &str) -> World {
    let store = root.join(format!("store-{files}-{mode}"));
    let _ = fs::remove_dir_all(&store);
    let w = World {
        home: home.to_path_buf(),
        store,
    };
    let creds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/credentials/work.json");
    measure(
        w.cmd(&["profile", "add", "bench", "--credentials"])
            .arg(&creds),
        b"",
    );
    w
}

/// A `serve` process that holds a session of profile `bench` in `mode`, and its input.
fn serve_holding(w: &World, mode: &str) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = w
        .cmd(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    writeln!(
        stdin,
        "{{\"verb\":\"acquire\",\"id\":1,\"profile\":\"bench\",\"link_mode\":\"{mode}\"}}"
    )
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    (child, stdin)
}

/// CPU time of every thread of `pid`, in nanoseconds (schedstat), finer than clock ticks.
fn cpu_of(pid: u32) -> Duration {
    let mut ns = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let text = fs::read_to_string(task.unwrap().path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// A `serve` process holding a fake-mode session: CPU of a change, peak memory, propagation.
fn long_lived(w: &World, _runs: usize, push: &mut impl FnMut(String, String)) {
    let (mut child, stdin) = serve_holding(w, "fake");
    // Let the first full pass after the watch starts run.
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id();
    let cpu = || cpu_of(pid);
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let per_second = (cpu() - before) / 2;
    // The tick (or ticks) that carry 10 changed files: CPU over 3 s less 3 idle seconds.
    let before = cpu();
    change_files(&w.runtime(), 10, 1000);
    std::thread::sleep(Duration::from_secs(3));
    let busy = (cpu() - before).saturating_sub(per_second * 3);
    push(
        "fake, long-lived: CPU of the tick that carries 10 changed files".into(),
        format!("{:.3} ms", busy.as_secs_f64() * 1000.0),
    );
    // Propagation: a file appended in the runtime reaches the home.
    let target = fs::read_dir(w.runtime().join("projects"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = fs::read_dir(&target)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rel = file.strip_prefix(w.runtime()).unwrap().to_path_buf();
    let start = Instant::now();
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    writeln!(f, "{{\"probe\":true}}").unwrap();
    drop(f);
    let want = fs::metadata(&file).unwrap().len();
    let home_file = w.home.join(".claude").join(&rel);
    while fs::metadata(&home_file).map(|m| m.len()).unwrap_or(0) != want
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    push(
        "fake, long-lived: a change in the runtime reaches the home after".into(),
        format!(
            "{} ms (woken by the watch, 50 ms debounce)",
            ms(start.elapsed())
        ),
    );
    let hwm = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024)
        .unwrap_or(0);
    push(
        "fake, long-lived: peak memory of `serve`".into(),
        format!("{hwm} MiB"),
    );
    drop(stdin);
    child.wait().unwrap();
}

fn walk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        total += if m.is_dir() {
            walk_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// The naive reference: read every file on both sides and compare, as a simple mirror does.
fn naive_mirror(a: &Path, b: &Path) -> usize {
    let mut differing = 0;
    for e in fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let (pa, pb) = (e.path(), b.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            differing += naive_mirror(&pa, &pb);
        } else if fs::read(&pa).ok() != fs::read(&pb).ok() {
            differing += 1;
        }
    }
    differing
}

/// A `.claude.json` of about `mib` MiB shaped as a long-time user's: per-project history under
/// `projects`, written as Claude Code writes it (`JSON.stringify(doc, null, 2)`).
fn big_claude_json(mib: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed + mib as u64);
    let mut projects = serde_json::Map::new();
    let mut size = 0usize;
    let mut i = 0usize;
    while size < mib << 20 {
        let prompt: String = (0..400)
            .map(|_| (b'a' + (rng.next() % 26) as u8) as char)
            .collect();
        let history: Vec<serde_json::Value> = (0..20)
            .map(|n| serde_json::json!({"display": format!("{prompt} {n}"), "pastedContents": {}}))
            .collect();
        size += 20 * 430 + 300;
        projects.insert(
            format!("/home/user/src/project-{i}"),
            serde_json::json!({
                "allowedTools": [], "history": history, "mcpServers": {},
                "hasTrustDialogAccepted": true, "lastCost": 0.25, "lastDuration": 12345
            }),
        );
        i += 1;
    }
    let doc = serde_json::json!({
        "numStartups": 412, "theme": "dark", "autoUpdates": false,
        "userID": "5f2d0c1a9b8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e",
        "mcpServers": {}, "projects": projects,
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap();
    out.push(b'\n');
    out
}

/// Rewrites the runtime's `.claude.json` as Claude Code does: one key changed, a temp file
/// renamed over it.
fn claude_rewrites(doc: &Path, round: usize) {
    let mut v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&fs::read(doc).unwrap()).unwrap();
    v.insert("numStartups".into(), serde_json::json!(1000 + round));
    let tmp = doc.with_extension(format!("json.tmp.{}.0123456789ab", std::process::id()));
    fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    fs::rename(&tmp, doc).unwrap();
}

/// The heavy user: ticks against a big `~/.claude.json`, each figure as a ratio to one parse of
/// the document in this process (serde_json into a `Value`, the floor of any reader).
fn bench_documents(root: &Path, mib: usize, runs: usize, rows: &mut Vec<Row>) {
    let mut push = |what: String, value: String| rows.push(Row { what, value });
    let home = root.join(format!("doc-home-{mib}"));
    let _ = fs::remove_dir_all(&home);
    fs::create_dir_all(home.join(".claude")).unwrap();
    let me = std::env::current_exe().unwrap();
    let doc_path = home.join(".claude.json");
    let status = Command::new(&me)
        .arg("--make-doc")
        .arg(&doc_path)
        .arg(mib.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let size = fs::metadata(&doc_path).unwrap().len() as usize;
    let parse_once = || {
        let (sample, out) = measure(Command::new(&me).arg("--parse").arg(&doc_path), b"");
        let ns: u64 = String::from_utf8_lossy(&out).trim().parse().unwrap();
        (Duration::from_nanos(ns), sample.max_rss_kib)
    };
    parse_once();
    let parses: Vec<(Duration, u64)> = (0..runs).map(|_| parse_once()).collect();
    let parse = median(parses.iter().map(|p| p.0).collect());
    let parse_rss = parses.iter().map(|p| p.1).max().unwrap_or(0);
    let ratio = |d: Duration| d.as_secs_f64() / parse.as_secs_f64();
    push(
        format!("**`.claude.json` of {:.1} MiB**", size as f64 / 1048576.0),
        String::new(),
    );
    push(
        "one parse of it into a `serde_json::Value` (the floor)".into(),
        format!("{} ms, peak {} MiB", ms(parse), parse_rss / 1024),
    );
    // The issue's own floor, one Python `json.load` of the file (the file read and parsed, the
    // interpreter's start-up left out), beside it.
    let python_once = || {
        let out = Command::new("python3")
            .args([
                "-c",
                "import json,sys,time; t=time.perf_counter(); json.load(open(sys.argv[1])); \
                 print(int((time.perf_counter()-t)*1e9))",
            ])
            .arg(&doc_path)
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .map(Duration::from_nanos)
    };
    let python: Vec<Duration> = (0..runs).filter_map(|_| python_once()).collect();
    let python = (!python.is_empty()).then(|| median(python));
    if let Some(p) = python {
        push(
            "one Python `json.load` of it (the issue's floor)".into(),
            format!("{} ms", ms(p)),
        );
    }
    let versus_python = |d: Duration| match python {
        Some(p) => format!(
            ", {:.2}× a Python `json.load`",
            d.as_secs_f64() / p.as_secs_f64()
        ),
        None => String::new(),
    };
    let rewrite = |doc: &Path, round: usize| {
        let status = Command::new(&me)
            .arg("--rewrite")
            .arg(doc)
            .arg(round.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let store = root.join(format!("doc-store-{mib}"));
    let _ = fs::remove_dir_all(&store);
    let w = World { home, store };
    let creds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/credentials/work.json");
    measure(
        w.cmd(&["profile", "add", "bench", "--credentials"])
            .arg(&creds),
        b"",
    );
    let (_, v) = w.call("acquire", "{\"profile\":\"bench\",\"link_mode\":\"real\"}");
    let tick_body = format!("{{\"session\":{}}}", v["session"]);
    w.call("tick", &tick_body);
    let idle = stat(
        &(0..runs)
            .map(|_| w.call("tick", &tick_body).0)
            .collect::<Vec<_>>(),
    );
    push(
        "one-shot tick, nothing changed".into(),
        format!(
            "{} ms ({:.2}× a parse), peak {} MiB",
            ms(idle.wall),
            ratio(idle.wall),
            idle.max_rss_kib / 1024
        ),
    );
    let doc = w.runtime().join(".claude.json");
    let changed: Vec<Sample> = (0..runs)
        .map(|round| {
            rewrite(&doc, round);
            w.call("tick", &tick_body).0
        })
        .collect();
    let changed = stat(&changed);
    push(
        "one-shot tick after Claude Code rewrote the runtime's copy".into(),
        format!(
            "{} ms ({:.2}× a parse{}), peak {} MiB ({:.1}× the document)",
            ms(changed.wall),
            ratio(changed.wall),
            versus_python(changed.wall),
            changed.max_rss_kib / 1024,
            (changed.max_rss_kib * 1024) as f64 / size as f64
        ),
    );
    w.call("release", &tick_body);

    // serve: CPU per rewrite, one rewrite every 1.5 s (each wakes a tick).
    let (mut child, stdin) = serve_holding(&w, "real");
    std::thread::sleep(Duration::from_millis(2500));
    let pid = child.id();
    let cpu = || cpu_of(pid);
    let before = cpu();
    let idle_secs = 10;
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle_cpu = (cpu() - before) / idle_secs as u32;
    let rewrites = runs.max(5);
    let before = cpu();
    for round in 0..rewrites {
        rewrite(&doc, 100 + round);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let spent = cpu() - before;
    let per = spent.saturating_sub(idle_cpu * (rewrites as u32 * 3 / 2)) / rewrites as u32;
    push(
        "`serve`: CPU per rewrite by Claude Code".into(),
        format!("{} ms ({:.2}× a parse)", ms(per), ratio(per)),
    );
    push(
        "`serve`: CPU per idle second".into(),
        format!("{:.3} ms", idle_cpu.as_secs_f64() * 1000.0),
    );
    // The peak resident memory of `serve` over its whole life, rewrites included.
    let hwm_kib: u64 = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    push(
        "`serve`: peak memory".into(),
        format!(
            "{} MiB ({:.1}× the document)",
            hwm_kib / 1024,
            (hwm_kib * 1024) as f64 / size as f64
        ),
    );
    drop(stdin);
    let _ = child.wait();
}

/// Another profile's verbs while one profile's fake-mode acquire copies a home of `files`
/// files: each `tick` and `status` of the other profile is a whole process, timed one after
/// another for as long as the acquire runs, and the same calls timed with nothing else running,
/// side by side in this run.
fn bench_busy(root: &Path, files: usize, runs: usize, rows: &mut Vec<Row>) {
    let home = home(root, files);
    let claude = home.join(".claude");
    let mut push = |what: String, value: String| rows.push(Row { what, value });
    push(
        format!(
            "**{files} files** ({:.0} MiB), profile `bench` acquired in fake mode",
            walk_bytes(&claude) as f64 / 1048576.0
        ),
        String::new(),
    );
    let store = root.join(format!("store-busy-{files}"));
    let _ = fs::remove_dir_all(&store);
    let w = World { home, store };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/credentials");
    for (name, creds) in [("bench", "work.json"), ("other", "personal.json")] {
        let (_, _) = measure(
            w.cmd(&["profile", "add", name, "--credentials"])
                .arg(fixtures.join(creds)),
            b"",
        );
    }
    let (_, v) = w.call("acquire", r#"{"profile":"other","link_mode":"real"}"#);
    let tick_body = format!("{{\"session\":{}}}", v["session"]);
    let quiet = |w: &World| -> (Vec<Duration>, Vec<Duration>) {
        let ticks = (0..20).map(|_| w.call("tick", &tick_body).0.wall).collect();
        let statuses = (0..20).map(|_| w.call("status", "{}").0.wall).collect();
        (ticks, statuses)
    };
    let (mut idle_ticks, mut idle_status) = (Vec::new(), Vec::new());
    let (mut busy_ticks, mut busy_status) = (Vec::new(), Vec::new());
    let mut acquires = Vec::new();
    let mut failed = 0;
    for _ in 0..runs {
        let (t, s) = quiet(&w);
        idle_ticks.extend(t);
        idle_status.extend(s);
        walk_bytes(&claude);
        let start = Instant::now();
        let mut acquire = w
            .cmd(&["acquire"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        acquire
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"profile":"bench","link_mode":"fake"}"#)
            .unwrap();
        // Every call that starts while the acquire runs counts, with its whole wait; one that
        // gives up (`lock_timeout`) counts as failed.
        while acquire.try_wait().unwrap().is_none() {
            for (verb, body, times) in [
                ("tick", tick_body.as_str(), &mut busy_ticks),
                ("status", "{}", &mut busy_status),
            ] {
                let (sample, out) = measure(&mut w.cmd(&[verb]), body.as_bytes());
                let v: serde_json::Value = serde_json::from_slice(&out).expect("json response");
                if v["ok"] != true {
                    failed += 1;
                }
                times.push(sample.wall);
            }
        }
        let out = acquire.wait_with_output().unwrap();
        acquires.push(start.elapsed());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], true, "acquire failed: {v}");
        w.call("release", &format!("{{\"session\":{}}}", v["session"]));
    }
    let max = |xs: &[Duration]| xs.iter().max().copied().unwrap_or_default();
    push(
        "fake acquire of `bench` (median)".into(),
        format!("{} ms", ms(median(acquires))),
    );
    for (what, idle, busy) in [
        ("tick", &idle_ticks, &busy_ticks),
        ("status", &idle_status, &busy_status),
    ] {
        push(
            format!("`other`'s {what}, nothing else running: median / max"),
            format!("{} / {} ms", ms(median(idle.clone())), ms(max(idle))),
        );
        push(
            format!(
                "`other`'s {what} started during the acquire: median / max ({} calls)",
                busy.len()
            ),
            format!("{} / {} ms", ms(median(busy.clone())), ms(max(busy))),
        );
    }
    push(
        "calls that gave up (`lock_timeout`) during the acquire".into(),
        failed.to_string(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Helpers run as processes of their own, so that the documents they hold never count in
    // the peak memory of the processes measured (a fork starts from its parent's).
    if let Some(i) = args.iter().position(|a| a == "--make-doc") {
        let bytes = big_claude_json(args[i + 2].parse().unwrap());
        fs::write(&args[i + 1], bytes).unwrap();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--rewrite") {
        claude_rewrites(Path::new(&args[i + 1]), args[i + 2].parse().unwrap());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--parse") {
        let start = Instant::now();
        let text = fs::read(&args[i + 1]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        std::hint::black_box(&v);
        println!("{}", start.elapsed().as_nanos());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--naive-mirror") {
        let n = naive_mirror(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        println!("{n}");
        return;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let sizes: Vec<usize> = value("--sizes")
        .unwrap_or_else(|| "1000,10000,50000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes takes numbers"))
        .collect();
    let runs: usize = value("--runs").map(|r| r.parse().unwrap()).unwrap_or(5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-homes");
    fs::create_dir_all(&root).unwrap();
    let mut rows = Vec::new();
    if let Some(sizes) = value("--busy") {
        for files in sizes
            .split(',')
            .map(|s| s.parse::<usize>().expect("--busy takes numbers of files"))
        {
            eprintln!("benchmarking another profile during a fake acquire of {files} files ...");
            bench_busy(&root, files, runs, &mut rows);
        }
        let mut out = String::from("| measurement | whole processes |\n|---|---|\n");
        for r in rows {
            out.push_str(&format!("| {} | {} |\n", r.what, r.value));
        }
        println!("{out}");
        return;
    }
    if let Some(sizes) = value("--documents") {
        for mib in sizes
            .split(',')
            .map(|s| s.parse::<usize>().expect("--documents takes MiB"))
        {
            eprintln!("benchmarking a .claude.json of {mib} MiB ...");
            bench_documents(&root, mib, runs, &mut rows);
        }
        let mut out = String::from("| measurement | median |\n|---|---|\n");
        for r in rows {
            out.push_str(&format!("| {} | {} |\n", r.what, r.value));
        }
        println!("{out}");
        return;
    }
    let idle_only = args.iter().any(|a| a == "--idle");
    let idle_secs: u64 = value("--idle-secs")
        .map(|s| s.parse().expect("--idle-secs takes seconds"))
        .unwrap_or(IDLE_SECS);
    for &files in &sizes {
        eprintln!("benchmarking {files} files ...");
        if idle_only {
            bench_idle(&root, files, idle_secs, &mut rows);
        } else {
            bench_size(&root, files, runs, &mut rows);
        }
    }
    let mut out = String::from("| measurement | median (whole process) |\n|---|---|\n");
    for r in rows {
        out.push_str(&format!("| {} | {} |\n", r.what, r.value));
    }
    println!("{out}");
    fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results.md"),
        &out,
    )
    .unwrap();
}
