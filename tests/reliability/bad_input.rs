//! Bad input: property tests of every verb through the real binary. Every case spawns the
//! helper, checks that it answers exactly one JSON line with the code that PROTOCOL.md's order of
//! checks gives (an oracle below), exits non-zero exactly when `ok` is false, never panics, never
//! prints a token, and leaves every file of the fixture as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::both_modes;
use crate::common::*;
use crate::support::*;

const MAX_REQUEST_BYTES: usize = 1 << 20;
const MAX_LEASE_MS: u64 = 30 * 24 * 3600 * 1000;
const VERBS: [&str; 5] = ["acquire", "tick", "release", "status", "capabilities"];

/// What a request must get.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Ok,
    Code(&'static str),
}

fn valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// A field that is absent or null counts as absent.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn in_range(v: Option<&Value>, max: u64) -> bool {
    match v {
        None => true,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|v| (1..=max).contains(&v)),
        Some(_) => false,
    }
}

/// The world every case runs against: profile `work` with a live real-mode session `live`.
struct World {
    name: &'static str,
    f: Fixture,
    bin: Bin,
    live: String,
    /// How many answers carried each code (`ok` for success).
    codes: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl World {
    fn new(name: &'static str) -> World {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let bin = Bin::of(&f);
        let a = bin.call("acquire", &json!({"profile": "work", "link_mode": "real"}));
        let live = a.ok()["session"].as_str().unwrap().to_owned();
        World {
            name,
            f,
            bin,
            live,
            codes: Default::default(),
        }
    }

    fn expect_object(&self, verb: &str, obj: &Map<String, Value>) -> Expect {
        expect_object(&self.live, verb, obj)
    }

    /// The oracle for raw bytes of a one-shot request.
    fn expect_bytes(&self, verb: &str, bytes: &[u8]) -> Expect {
        if !VERBS.contains(&verb) {
            return Expect::Code("unknown_verb");
        }
        match parse_object(bytes) {
            Some(obj) => self.expect_object(verb, &obj),
            None => Expect::Code("invalid_request"),
        }
    }

    /// Sends one request and checks everything a bad request must satisfy.
    fn check(&self, verb: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
        let expected = self.expect_bytes(verb, bytes);
        if expected == Expect::Ok && ["acquire", "tick", "release"].contains(&verb) {
            // A valid state-changing request is not bad input.
            return Err(TestCaseError::reject("a valid request"));
        }
        let before = self.f.snapshot();
        let reply = self.bin.raw(verb, bytes);
        match expected {
            Expect::Ok => {
                reply.ok();
            }
            Expect::Code(code) => {
                reply.err(code);
            }
        }
        *self
            .codes
            .lock()
            .unwrap()
            .entry(reply.error_code().unwrap_or("ok").to_owned())
            .or_default() += 1;
        let after = self.f.snapshot();
        prop_assert!(
            before == after,
            "{verb} changed files\n{}\nchanged: {:?}",
            reply.context(),
            diff(&before, &after)
        );
        Ok(())
    }
}

/// The oracle: PROTOCOL.md section 2's order of checks, then each verb's own. `live` is the one
/// live session of the world.
fn expect_object(live: &str, verb: &str, obj: &Map<String, Value>) -> Expect {
    use Expect::Code;
    match field(obj, "protocol") {
        None => {}
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => {}
        Some(Value::Number(_)) => return Code("unsupported_protocol"),
        Some(_) => return Code("invalid_request"),
    }
    match verb {
        "acquire" => {
            let profile = match field(obj, "profile") {
                Some(Value::String(s)) => s,
                _ => return Code("invalid_request"),
            };
            if !in_range(field(obj, "owner_pid"), i32::MAX as u64)
                || !in_range(field(obj, "lease_ms"), MAX_LEASE_MS)
            {
                return Code("invalid_request");
            }
            let link_mode = match field(obj, "link_mode") {
                None => None,
                Some(Value::String(s)) if ["auto", "real", "fake"].contains(&s.as_str()) => {
                    Some(s.as_str())
                }
                Some(_) => return Code("invalid_request"),
            };
            if !valid_profile_name(profile) {
                return Code("invalid_profile_name");
            }
            if profile != "work" {
                return Code("profile_not_found");
            }
            if let Some(pid) = field(obj, "owner_pid").and_then(Value::as_u64)
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                return Code("invalid_request");
            }
            if link_mode == Some("fake") {
                return Code("link_mode_conflict");
            }
            Expect::Ok
        }
        "tick" | "release" => match field(obj, "session") {
            Some(Value::String(s)) if !valid_session_id(s) => Code("invalid_request"),
            Some(Value::String(s)) if s == live => Expect::Ok,
            Some(Value::String(_)) => Code("session_not_found"),
            _ => Code("invalid_request"),
        },
        "status" => match field(obj, "profile") {
            None => Expect::Ok,
            Some(Value::String(s)) if !valid_profile_name(s) => Code("invalid_profile_name"),
            Some(Value::String(s)) if s == "work" => Expect::Ok,
            Some(Value::String(_)) => Code("profile_not_found"),
            Some(_) => Code("invalid_request"),
        },
        "capabilities" => Expect::Ok,
        _ => Code("unknown_verb"),
    }
}

/// Whether serve would hold a session for this line.
fn is_ok_acquire(line: &[u8]) -> bool {
    parse_object(line).is_some_and(|o| {
        o.get("verb") == Some(&json!("acquire")) && expect_object("", "acquire", &o) == Expect::Ok
    })
}

impl Drop for World {
    fn drop(&mut self) {
        let codes = self.codes.lock().unwrap();
        if !codes.is_empty() {
            eprintln!("bad_input/{}: answers by code {:?}", self.name, *codes);
        }
        if !std::thread::panicking() {
            self.bin
                .call("release", &json!({"session": self.live}))
                .ok();
        }
    }
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.push(format!("- {k}"));
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("+ {k}"));
        }
    }
    out
}

/// What the helper's framing accepts as a request object.
fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(obj) => Some(obj),
        _ => None,
    }
}

fn run_property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        max_global_rejects: cases * 4,
        rng_seed: RngSeed::Fixed(seed()),
        ..Config::default()
    };
    let ran = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    eprintln!(
        "bad_input/{name}: {} inputs sent ({cases} cases wanted), seed {}",
        ran.load(Ordering::Relaxed),
        seed()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn verb() -> impl Strategy<Value = &'static str> {
    prop::sample::select(VERBS.to_vec())
}

/// Strings that have broken path handling, parsers or terminals somewhere.
fn nasty_string() -> impl Strategy<Value = String> {
    let fixed: Vec<String> = [
        "",
        ".",
        "..",
        "../x",
        "../../etc/passwd",
        "a/b",
        "a\\b",
        "/tmp/x",
        "x\0y",
        "\0",
        "work\0",
        "work\n",
        " work",
        "work/",
        "work/..",
        "./work",
        "~",
        "~root",
        "%2e%2e",
        "\u{202e}krow",
        "ｗｏｒｋ",
        "wörk",
        "😀",
        "\u{feff}work",
        "s-../../x",
        "s-000000000000000000000000/..",
        "\t",
        "\r\n",
        "\u{7f}",
        "\u{1b}[2J",
        "$(id)",
        "`id`",
        "${HOME}",
        "work;rm -rf /",
        "CON",
        "nul",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    prop_oneof![
        prop::sample::select(fixed),
        "[a-zA-Z0-9._-]{65,80}",
        // Control characters, format characters, astral planes, mixed with plain ones.
        prop::collection::vec(
            prop_oneof![
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                Just('\u{7f}'),
                Just('\u{85}'),
                Just('\u{2028}'),
                Just('\u{200b}'),
                Just('/'),
                Just('.'),
                any::<char>(),
                prop::char::range('a', 'z'),
            ],
            1..24
        )
        .prop_map(|cs| cs.into_iter().collect()),
        any::<String>(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        nasty_string().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "profile",
            "session",
            "owner_pid",
            "lease_ms",
            "link_mode",
            "protocol",
            "verb",
            "id",
        ])
        .prop_map(str::to_owned),
        nasty_string(),
    ]
}

fn profile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(json!("work")),
        2 => "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,63}".prop_map(Value::from),
        3 => nasty_string().prop_map(Value::from),
        1 => json_leaf(),
        1 => json_value(),
    ]
}

fn session_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => "s-[0-9a-f]{24}".prop_map(Value::from),
        1 => "[A-Za-z0-9_-]{1,64}".prop_map(Value::from),
        3 => nasty_string().prop_map(Value::from),
        1 => json_leaf(),
        1 => json_value(),
    ]
}

fn number_value(max: u64) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1.0)),
        Just(json!(max + 1)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!("12")),
        any::<i64>().prop_map(Value::from),
        (1..=max).prop_map(Value::from),
        json_leaf(),
    ]
}

/// pids above the largest pid_max Linux allows (2^22): never a running process.
fn owner_pid_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => ((1u64 << 22) + 1..=i32::MAX as u64).prop_map(Value::from),
        2 => number_value(i32::MAX as u64).prop_filter("no live pid", |v| {
            v.as_u64().is_none_or(|p| p > 1 << 22)
        }),
    ]
}

fn link_mode_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["auto", "real", "fake", "REAL", "", "symlink", "real "])
            .prop_map(Value::from),
        nasty_string().prop_map(Value::from),
        json_leaf(),
    ]
}

fn protocol_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(json!(1)),
        1 => Just(json!(1.0)),
        1 => Just(json!(2)),
        1 => Just(json!(0)),
        1 => Just(json!(1.5)),
        1 => Just(json!("1")),
        1 => json_leaf(),
    ]
}

/// A request object with any subset of the protocol's fields, each any value, plus junk keys.
fn request_object() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::option::weighted(0.8, profile_value()),
        prop::option::weighted(0.8, session_value()),
        prop::option::weighted(0.3, owner_pid_value()),
        prop::option::weighted(0.4, number_value(MAX_LEASE_MS)),
        prop::option::weighted(0.4, link_mode_value()),
        prop::option::weighted(0.3, protocol_value()),
        prop::collection::vec((nasty_string(), json_leaf()), 0..3),
    )
        .prop_map(
            |(profile, session, owner_pid, lease_ms, link_mode, protocol, junk)| {
                let mut obj = Map::new();
                for (k, v) in junk {
                    obj.insert(k, v);
                }
                for (k, v) in [
                    ("profile", profile),
                    ("session", session),
                    ("owner_pid", owner_pid),
                    ("lease_ms", lease_ms),
                    ("link_mode", link_mode),
                    ("protocol", protocol),
                ] {
                    if let Some(v) = v {
                        obj.insert(k.to_owned(), v);
                    }
                }
                obj
            },
        )
}

/// A JSON document nested `depth` deep, placed at the top or inside a field.
fn nested(depth: usize, object: bool, place: u8) -> Vec<u8> {
    let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
    let inner = format!("{}1{}", open.repeat(depth), close.repeat(depth));
    match place {
        0 => inner,
        1 => format!("{{\"profile\":{inner}}}"),
        2 => format!("{{\"session\":{inner},\"profile\":\"work\"}}"),
        _ => format!("{{\"protocol\":1,\"x\":{inner}}}"),
    }
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Properties.

#[test]
fn arbitrary_bytes_to_any_verb_get_one_invalid_request_line_and_change_nothing() {
    let w = World::new("arbitrary bytes");
    run_property(
        "arbitrary bytes",
        128,
        (
            verb(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..512),
                // Bytes that look almost like a request.
                (prop::collection::vec(any::<u8>(), 0..64), request_object()).prop_map(
                    |(noise, obj)| {
                        let mut b = serde_json::to_vec(&obj).unwrap();
                        let at = noise.len() % (b.len() + 1);
                        b.splice(at..at, noise);
                        b
                    }
                ),
            ]
            .prop_filter("not a request object", |b| parse_object(b).is_none()),
        ),
        |(verb, bytes)| w.check(verb, &bytes),
    );
}

#[test]
fn arbitrary_json_values_get_the_documented_code_and_change_nothing() {
    let w = World::new("arbitrary JSON values");
    run_property(
        "arbitrary JSON values",
        128,
        (verb(), json_value()),
        |(verb, value)| w.check(verb, value.to_string().as_bytes()),
    );
}

#[test]
fn arbitrary_field_values_get_the_documented_code_and_change_nothing() {
    let w = World::new("arbitrary field values");
    run_property(
        "arbitrary field values",
        256,
        (verb(), request_object()),
        |(verb, obj)| w.check(verb, &serde_json::to_vec(&obj).unwrap()),
    );
}

#[test]
fn control_characters_unicode_and_invalid_utf8_in_fields_are_refused() {
    let w = World::new("control characters, unicode, invalid UTF-8");
    run_property(
        "control characters, unicode, invalid UTF-8",
        96,
        (
            verb(),
            prop::sample::select(vec!["profile", "session", "link_mode", "verb"]),
            nasty_string(),
            // Raw bytes inside the quotes: invalid UTF-8, raw control characters.
            prop::collection::vec(
                any::<u8>().prop_filter("no quote", |b| *b != b'"' && *b != b'\\'),
                1..40,
            ),
            any::<bool>(),
        ),
        |(verb, key, text, raw, escaped)| {
            let bytes = if escaped {
                // Valid JSON: the field carries the characters, escaped.
                serde_json::to_vec(&json!({ key: text })).unwrap()
            } else {
                let mut b = format!("{{\"{key}\":\"").into_bytes();
                b.extend(&raw);
                b.extend(b"\"}");
                b
            };
            w.check(verb, &bytes)
        },
    );
}

#[test]
fn deeply_nested_requests_are_refused() {
    let w = World::new("deep nesting");
    run_property(
        "deep nesting",
        64,
        (
            verb(),
            prop_oneof![1usize..200, 100usize..5000, Just(200_000usize)],
            any::<bool>(),
            0u8..4,
        ),
        |(verb, depth, object, place)| w.check(verb, &nested(depth, object, place)),
    );
}

#[test]
fn requests_over_one_mebibyte_are_refused_and_one_mebibyte_is_read() {
    let w = World::new("huge inputs");
    run_property(
        "huge inputs",
        12,
        (
            verb(),
            MAX_REQUEST_BYTES + 1..MAX_REQUEST_BYTES + 400_000,
            0u8..4,
        ),
        |(verb, size, kind)| {
            let bytes = match kind {
                0 => {
                    // A well-formed request, padded.
                    let head = format!(
                        "{{\"profile\":\"work\",\"session\":\"{}\",\"pad\":\"",
                        w.live
                    );
                    let mut b = head.into_bytes();
                    b.resize(size - 2, b'x');
                    b.extend(b"\"}");
                    b
                }
                1 => vec![b' '; size],
                2 => {
                    let mut b = vec![b'['; size / 2];
                    b.resize(size, b']');
                    b
                }
                _ => (0..size).map(|i| (i * 7919 % 251) as u8).collect(),
            };
            assert!(bytes.len() > MAX_REQUEST_BYTES);
            w.check(verb, &bytes)
        },
    );
    // The boundary: exactly 1 MiB is read and decoded.
    let head = "{\"session\":\"s-000000000000000000000000\",\"pad\":\"";
    let mut exact = head.as_bytes().to_vec();
    exact.resize(MAX_REQUEST_BYTES - 2, b'x');
    exact.extend(b"\"}");
    assert_eq!(exact.len(), MAX_REQUEST_BYTES);
    w.check("tick", &exact).unwrap();
    exact.insert(1, b' ');
    w.check("tick", &exact).unwrap();
}

#[test]
fn unknown_verbs_get_unknown_verb_whatever_the_input() {
    let w = World::new("unknown verbs");
    let commands = [
        "acquire",
        "tick",
        "release",
        "status",
        "capabilities",
        "serve",
        "run",
        "profile",
        "gc",
        "completions",
        "help",
    ];
    run_property(
        "unknown verbs",
        64,
        (
            prop_oneof![
                "[a-z][a-z_]{0,15}",
                "[A-Z][a-zA-Z]{0,10}",
                prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 1..12)
                    .prop_map(|cs| cs.into_iter().collect::<String>()),
            ]
            .prop_filter("not a command or an option", move |v| {
                !commands.contains(&v.as_str()) && !v.starts_with('-')
            }),
            prop_oneof![
                Just(b"{}".to_vec()),
                request_object().prop_map(|o| serde_json::to_vec(&o).unwrap()),
                prop::collection::vec(any::<u8>(), 0..64),
            ],
        ),
        |(verb, bytes)| w.check(&verb, &bytes),
    );
}

// ---------------------------------------------------------------------------------------------
// serve.

/// One line for serve: never a valid acquire (that would hold a session).
fn serve_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (
            prop_oneof![
                prop::sample::select(VERBS.to_vec()).prop_map(Value::from),
                Just(json!("launch")),
                json_leaf(),
            ],
            prop::option::weighted(0.7, json_value()),
            request_object(),
        )
            .prop_map(|(verb, id, mut obj)| {
                obj.insert("verb".into(), verb);
                if let Some(id) = id {
                    obj.insert("id".into(), id);
                }
                serde_json::to_vec(&obj).unwrap()
            }),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::collection::vec(
            prop::sample::select(vec![b' ', b'\t', b'\r', 0x0b, 0x0c]),
            0..4
        ),
    ]
    .prop_map(|mut l| {
        l.retain(|b| *b != b'\n');
        l
    })
    .prop_filter("a valid acquire would hold a session", |l| {
        !is_ok_acquire(l)
    })
}

/// What serve must answer to `line`: nothing for a blank line, else (id, expectation).
fn serve_expect(w: &World, line: &[u8]) -> Option<(Value, Expect)> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Some(obj) = parse_object(line) else {
        return Some((Value::Null, Expect::Code("invalid_request")));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let expect = match obj.get("verb") {
        Some(Value::String(v)) if VERBS.contains(&v.as_str()) => w.expect_object(v, &obj),
        Some(Value::String(_)) => Expect::Code("unknown_verb"),
        _ => Expect::Code("invalid_request"),
    };
    Some((id, expect))
}

#[test]
fn serve_answers_every_line_of_an_arbitrary_stream_once_and_exits_0_at_eof() {
    let w = World::new("serve streams");
    let responses = AtomicU64::new(0);
    run_property(
        "serve streams",
        48,
        prop::collection::vec(serve_line(), 1..12),
        |lines| {
            let before = w.f.snapshot();
            let mut child = Reaped(
                w.bin
                    .command(&["serve"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let mut stdin = child.0.stdin.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let stdout = child.0.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).split(b'\n') {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            let next = || -> Value {
                let line = rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("serve answers within 30 s");
                scan("serve stdout", &line);
                let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "serve wrote a line that is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                assert_eq!(v["protocol"], json!(1), "{v}");
                assert!(
                    v.get("event").is_none(),
                    "no session is held, so no event: {v}"
                );
                v
            };
            for (k, line) in lines.iter().enumerate() {
                stdin.write_all(line).unwrap();
                stdin.write_all(b"\n").unwrap();
                let probe = json!({"probe": k});
                stdin
                    .write_all(format!("{}\n", json!({"verb": "status", "id": probe})).as_bytes())
                    .unwrap();
                stdin.flush().unwrap();
                if let Some((id, expect)) = serve_expect(&w, line) {
                    let r = next();
                    responses.fetch_add(1, Ordering::Relaxed);
                    let what = format!(
                        "line {k}: {}\nresponse: {r}",
                        clip(&String::from_utf8_lossy(line))
                    );
                    prop_assert_eq!(&r["id"], &id, "{}", what);
                    match expect {
                        Expect::Ok => prop_assert_eq!(&r["ok"], &json!(true), "{}", what),
                        Expect::Code(code) => {
                            prop_assert_eq!(&r["ok"], &json!(false), "{}", what);
                            prop_assert_eq!(&r["error"]["code"], &json!(code), "{}", what);
                            prop_assert_eq!(&r["error"]["retryable"], &json!(false), "{}", what);
                        }
                    }
                }
                let r = next();
                responses.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(
                    &r["id"],
                    &probe,
                    "serve still serves after line {}: {}",
                    k,
                    r
                );
                prop_assert_eq!(&r["ok"], &json!(true));
            }
            drop(stdin);
            let status = child.0.wait().unwrap();
            let (rest, err) = drain(&mut child.0);
            scan("serve stderr", &err);
            prop_assert!(rest.is_empty());
            prop_assert!(
                rx.recv_timeout(Duration::from_secs(5)).is_err(),
                "a line too many"
            );
            prop_assert_eq!(status.code(), Some(0), "serve exits 0 at EOF");
            prop_assert!(before == w.f.snapshot(), "serve changed files");
            Ok(())
        },
    );
    eprintln!(
        "bad_input/serve streams: {} responses read",
        responses.load(Ordering::Relaxed)
    );
}

#[test]
fn serve_answers_a_line_over_one_mebibyte_once_and_keeps_serving() {
    let w = World::new("serve huge lines");
    let mut child = w
        .bin
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut huge = vec![b'x'; MAX_REQUEST_BYTES + 4096];
        huge.push(b'\n');
        stdin.write_all(&huge).unwrap();
        let mut big_json = b"{\"verb\":\"status\",\"id\":1,\"pad\":\"".to_vec();
        big_json.resize(MAX_REQUEST_BYTES * 2, b'y');
        big_json.extend(b"\"}\n");
        stdin.write_all(&big_json).unwrap();
        stdin
            .write_all(b"{\"verb\":\"status\",\"id\":\"after\"}\n")
            .unwrap();
    });
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    scan("serve stdout", &out.stdout);
    scan("serve stderr", &out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines[..2] {
        assert_eq!(l["id"], Value::Null, "{l}");
        assert_eq!(l["error"]["code"], json!("invalid_request"), "{l}");
    }
    assert_eq!(lines[2]["id"], json!("after"));
    assert_eq!(lines[2]["ok"], json!(true));
    assert_eq!(out.status.code(), Some(0));
    eprintln!("bad_input/serve: a 1 MiB + 4 KiB line and a 2 MiB line each answered once");
}

#[test]
fn serve_reads_a_request_line_of_exactly_one_mebibyte_as_one_shot_does() {
    // PROTOCOL.md: one-shot refuses requests larger than 1 MiB, serve a line longer than 1 MiB.
    // A line of exactly 1 MiB (its newline aside) is therefore a request like any other.
    let w = World::new("serve 1 MiB line");
    let head = b"{\"verb\":\"status\",\"id\":\"exact\",\"pad\":\"";
    let mut line = head.to_vec();
    line.resize(MAX_REQUEST_BYTES - 2, b'x');
    line.extend(b"\"}");
    assert_eq!(line.len(), MAX_REQUEST_BYTES);
    let one_shot = w.bin.raw("status", &line);
    one_shot.ok();
    line.push(b'\n');
    let mut child = w
        .bin
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&line).unwrap());
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    scan("serve stdout", &out.stdout);
    scan("serve stderr", &out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "bad_input/serve: a request line of exactly 1 MiB answered {}",
        clip(&v.to_string())
    );
    assert!(
        v["id"] == json!("exact") && v["ok"] == json!(true),
        "one-shot reads a request of exactly 1 MiB, serve refuses the same request as a line: {v}"
    );
}

both_modes!(
    names_near_the_file_system_limit_are_synced_and_released,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let cfg = f.runtime("work");
        let long = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
        // A top-level file and one in a new folder, both named near 255 bytes.
        let top = format!("{}.md", long('t', 240));
        let inner_dir = long('d', 200);
        let inner = long('f', 250);
        fs::write(cfg.join(&top), "top\n").unwrap();
        fs::create_dir_all(cfg.join(&inner_dir)).unwrap();
        fs::write(cfg.join(&inner_dir).join(&inner), "inner\n").unwrap();
        // The same long name changed on both sides: a conflict copy must fit too.
        let both = format!("{}.txt", long('b', 245));
        fs::create_dir_all(f.claude().join("projects")).unwrap();
        fs::write(f.claude().join("projects").join(&both), "home\n").unwrap();
        fs::create_dir_all(cfg.join("projects")).unwrap();
        if mode == "fake" {
            fs::write(cfg.join("projects").join(&both), "session\n").unwrap();
        }
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        assert_eq!(fs::read_to_string(f.claude().join(&top)).unwrap(), "top\n");
        assert_eq!(
            fs::read_to_string(f.claude().join(&inner_dir).join(&inner)).unwrap(),
            "inner\n"
        );
        let versions: Vec<String> = fs::read_dir(f.claude().join("projects"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
            .filter(|t| t == "home\n" || t == "session\n")
            .collect();
        let want = if mode == "fake" { 2 } else { 1 };
        assert_eq!(versions.len(), want, "{mode}: {versions:?}");
        eprintln!(
            "bad_input/long names ({mode}): names of 243-250 bytes synced, released, conflict copy kept"
        );
    }
);

/// A symlink loop in `~/.claude`, and a folder linked into itself, do not make fake mode
/// unusable: they are left alone, reported, and nothing is deleted for them.
#[test]
fn symlink_loops_in_the_claude_home_are_skipped_and_reported_in_fake_mode() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    std::os::unix::fs::symlink("loop", f.claude().join("loop")).unwrap();
    std::os::unix::fs::symlink(".", f.claude().join("projects").join("self")).unwrap();
    let a = f.acquire("work", "fake");
    let t = f.tick(&session_of(&a));
    let r = f.release(&session_of(&a));
    let skipped: Vec<Value> = [&t, &r]
        .iter()
        .flat_map(|v| v["skipped"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(skipped.contains(&json!("loop")), "{t}");
    assert!(fs::symlink_metadata(f.claude().join("loop")).is_ok());
    assert!(fs::symlink_metadata(f.claude().join("projects/self")).is_ok());
    assert!(f.claude().join("commands/review.md").exists());
    eprintln!("bad_input/symlink loops: fake mode acquired, ticked and released past 2 loops");
}

/// A file that became a folder (or the reverse) in a fake-mode runtime keeps both versions, as
/// real mode does, and no later tick, release or gc fails over it.
#[test]
fn a_file_that_became_a_folder_keeps_both_versions_in_fake_mode() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    fs::write(f.claude().join("notes"), "a file in the home\n").unwrap();
    let a = f.acquire("work", "fake");
    let cfg = f.runtime("work");
    // The session turns the folder todos/ into a file, and the file notes into a folder.
    fs::remove_dir_all(cfg.join("todos")).unwrap();
    fs::write(cfg.join("todos"), "now a file\n").unwrap();
    fs::remove_file(cfg.join("notes")).unwrap();
    fs::create_dir(cfg.join("notes")).unwrap();
    fs::write(cfg.join("notes").join("inside.md"), "inside\n").unwrap();
    let t = f.tick(&session_of(&a));
    assert_eq!(t["conflicts"].as_array().unwrap().len(), 2, "{t}");
    f.tick(&session_of(&a));
    f.release(&session_of(&a));
    assert_eq!(
        fs::read_to_string(f.claude().join("todos")).unwrap(),
        "now a file\n"
    );
    assert_eq!(
        fs::read_to_string(f.claude().join("notes/inside.md")).unwrap(),
        "inside\n"
    );
    let names: Vec<String> = fs::read_dir(f.claude())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let kept = |prefix: &str| {
        names
            .iter()
            .find(|n| n.starts_with(&format!("{prefix}.clauth-conflict-")))
            .map(|n| f.claude().join(n))
            .unwrap_or_else(|| panic!("no conflict copy of {prefix}: {names:?}"))
    };
    assert!(kept("todos").is_dir(), "the home's folder is kept");
    assert_eq!(
        fs::read_to_string(kept("notes")).unwrap(),
        "a file in the home\n"
    );
    let out = f.run(&["gc"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("bad_input/kind changes: a file and a folder swapped kinds; both versions kept");
}

/// With the store on another file system than `~/.claude` (adoption copies, then removes), a
/// FIFO, or a socket, in a folder the session created is never opened: the tick finishes in
/// bounded time and the folder's files reach the home.
#[test]
fn special_files_are_never_opened_when_the_store_is_on_another_file_system() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("bad_input/special files: SKIPPED: no /dev/shm for a second file system");
        return;
    }
    let store = tempfile::tempdir_in(shm).unwrap();
    let mut f = Fixture::new();
    let store_path = store.path().join("store");
    f.set_env("CLAUTH_HOME", &store_path.to_string_lossy());
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "real");
    let cfg = store_path.join("runtimes/work/config");
    fs::create_dir(cfg.join("made-here")).unwrap();
    fs::write(cfg.join("made-here/notes.md"), "kept\n").unwrap();
    let fifo = cfg.join("made-here/pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let _socket = std::os::unix::net::UnixListener::bind(cfg.join("made-here/sock")).unwrap();
    let mut tick = Bin::of(&f)
        .command(&["tick"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tick.stdin
        .take()
        .unwrap()
        .write_all(json!({"session": session_of(&a)}).to_string().as_bytes())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tick.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = tick.kill();
            panic!("the tick blocked on a special file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = tick.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        fs::read_to_string(f.claude().join("made-here/notes.md")).unwrap(),
        "kept\n"
    );
    f.release(&session_of(&a));
    eprintln!("bad_input/special files: a FIFO and a socket crossed file systems unopened");
}

both_modes!(
    a_home_reached_by_another_spelling_loses_nothing,
    |mode: &str| {
        let mut f = Fixture::new();
        fs::write(f.claude().join("CLAUDE.md"), "my instructions\n").unwrap();
        f.add_profile("work", Some("work"));
        // The same home through a symlinked parent, as with /home -> /var/home.
        let alias = f.dir.path().join("alias");
        std::os::unix::fs::symlink(f.dir.path(), &alias).unwrap();
        let a = f.acquire("work", mode);
        let before = f.snapshot();
        f.set_env("HOME", &alias.join("home").to_string_lossy());
        for _ in 0..2 {
            let t = f.tick(&session_of(&a));
            assert_eq!(t["adopted"], json!([]), "{mode}: {t}");
            assert_eq!(t["conflicts"], json!([]), "{mode}: {t}");
        }
        f.release(&session_of(&a));
        assert_eq!(
            fs::read_to_string(f.claude().join("CLAUDE.md")).unwrap(),
            "my instructions\n"
        );
        let home_now: BTreeMap<String, String> = f
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.starts_with("home/.claude/"))
            .collect();
        let home_before: BTreeMap<String, String> = before
            .into_iter()
            .filter(|(k, _)| k.starts_with("home/.claude/"))
            .collect();
        assert_eq!(
            home_now, home_before,
            "{mode}: the claude home is as it was"
        );
        eprintln!(
            "bad_input/home spellings ({mode}): ticks and release under an alias of HOME changed nothing"
        );
    }
);
