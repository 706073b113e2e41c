//! `serve`: newline-delimited protocol requests on one pipe, sessions held by this process and
//! ticked every second, released when input ends or a termination signal arrives.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::{CodedError, ErrorCode};
use crate::helper::{acquire_options, dispatch, to_coded, unknown_verb};
use crate::hold::{self, Held};
use crate::layout::Layout;
use crate::platform::Signals;
use crate::protocol::envelope::EventBody;
use crate::protocol::{self, Request, Verb};
use crate::runtime;

/// How often held sessions are ticked.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

enum Input {
    Line(Vec<u8>),
    TooLong,
    End,
}

/// Reads lines on a thread, so the loop can tick while a caller is silent.
fn spawn_reader(input: impl Read + Send + 'static) -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(input);
        // A request may be as long as a one-shot one, plus its line ending.
        let limit = protocol::MAX_REQUEST_BYTES as u64 + 2;
        loop {
            let mut line = Vec::new();
            let msg = match (&mut reader).take(limit).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::End);
                    return;
                }
                Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= limit => {
                    if !skip_line(&mut reader) {
                        let _ = tx.send(Input::TooLong);
                        let _ = tx.send(Input::End);
                        return;
                    }
                    Input::TooLong
                }
                Ok(_) => {
                    while matches!(line.last(), Some(b'\n' | b'\r')) {
                        line.pop();
                    }
                    Input::Line(line)
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    rx
}

/// Discards input up to and including the next newline without holding it in memory. Returns
/// false at end of input.
fn skip_line(reader: &mut impl BufRead) -> bool {
    loop {
        let (found, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            },
        };
        reader.consume(used);
        if found {
            return true;
        }
    }
}

struct Server<'a, W: Write> {
    layout: Result<&'a Layout, &'a CodedError>,
    output: W,
    held: BTreeMap<String, Held>,
    /// One per profile with a held session: its runtime is ticked once per interval.
    caches: BTreeMap<String, runtime::TickCache>,
}

impl<W: Write> Server<'_, W> {
    fn send(&mut self, value: &Value) {
        let _ = self.output.write_all(&protocol::encode_line(value));
        let _ = self.output.flush();
    }

    fn handle_line(&mut self, bytes: &[u8]) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let (id, result) = match protocol::parse_object(bytes) {
            Err(e) => (Value::Null, Err(e)),
            Ok(obj) => {
                let id = obj.get("id").cloned().unwrap_or(Value::Null);
                (id, self.handle(&obj))
            }
        };
        let response = match result {
            Ok(body) => protocol::success(Some(&id), &body),
            Err(e) => protocol::failure(Some(&id), &e),
        };
        self.send(&response);
    }

    fn handle(&mut self, obj: &Map<String, Value>) -> Result<Value, CodedError> {
        let verb = match obj.get("verb") {
            Some(Value::String(v)) => Verb::parse(v).ok_or_else(|| unknown_verb(v))?,
            Some(_) => {
                return Err(CodedError {
                    code: ErrorCode::InvalidRequest,
                    message: "verb must be a string".into(),
                });
            }
            None => {
                return Err(CodedError {
                    code: ErrorCode::InvalidRequest,
                    message: "verb is required in serve mode".into(),
                });
            }
        };
        let request = protocol::decode(verb, obj)?;
        match request {
            Request::Acquire(req) => {
                let opts = acquire_options(req);
                let layout = self.layout.map_err(Clone::clone)?;
                let held = hold::acquire(layout, &opts).map_err(|e| to_coded(&e))?;
                let body = serde_json::to_value(&held.acquired).map_err(|e| to_coded(&e.into()))?;
                self.held.insert(held.acquired.session.clone(), held);
                Ok(body)
            }
            Request::Release(r) => {
                let session = r.session.clone();
                let body = dispatch(self.layout, Request::Release(r))?;
                self.held.remove(&session);
                Ok(body)
            }
            other => dispatch(self.layout, other),
        }
    }

    /// Ticks one held session per profile (they share a runtime) and reports what it saved.
    fn tick_all(&mut self) {
        let Ok(layout) = self.layout else { return };
        let mut seen = std::collections::BTreeSet::new();
        let ids: Vec<(String, String)> = self
            .held
            .iter()
            .map(|(id, h)| (id.clone(), h.acquired.profile.clone()))
            .collect();
        // A session released by another process: only one session per profile is ticked, so
        // every other one is checked by its record.
        for (id, _) in &ids {
            if !layout.session_record(id).exists() {
                self.held.remove(id);
                self.send(&protocol::event(EventBody::SessionEnded {
                    session: id.clone(),
                }));
            }
        }
        let ids: Vec<(String, String)> = ids
            .into_iter()
            .filter(|(id, _)| self.held.contains_key(id))
            .collect();
        let profiles: std::collections::BTreeSet<String> =
            ids.iter().map(|(_, p)| p.clone()).collect();
        self.caches.retain(|p, _| profiles.contains(p));
        for (id, profile) in ids {
            if !seen.insert(profile.clone()) {
                continue;
            }
            let cache = self
                .caches
                .entry(profile.clone())
                .or_insert_with(runtime::TickCache::long_lived);
            match runtime::tick_with(layout, &id, cache) {
                Ok(ticked) if ticked.report.is_eventful() => {
                    self.send(&protocol::event(EventBody::Synced {
                        session: id,
                        report: ticked.report,
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    let err = to_coded(&e);
                    if err.code == ErrorCode::SessionNotFound {
                        // Released by someone else: this process no longer holds it.
                        self.held.remove(&id);
                        self.send(&protocol::event(EventBody::SessionEnded { session: id }));
                    } else {
                        self.send(&protocol::event(EventBody::TickFailed {
                            session: id,
                            error: protocol::error_body(&err),
                        }));
                    }
                }
            }
        }
    }

    /// Releases every held session (final sync; teardown when last).
    fn release_all(&mut self) {
        let Ok(layout) = self.layout else { return };
        let ids: Vec<String> = self.held.keys().cloned().collect();
        for id in ids {
            if let Err(e) = runtime::release(layout, &id) {
                let err = to_coded(&e);
                eprintln!(
                    "clauth-helper serve: could not release {id}: {}",
                    err.message
                );
            }
            self.held.remove(&id);
        }
    }
}

/// Runs the serve loop until input ends or SIGINT/SIGTERM/SIGHUP arrives.
pub fn serve(
    layout: Result<&Layout, &CodedError>,
    input: impl Read + Send + 'static,
    output: impl Write,
) -> std::io::Result<()> {
    let mut signals = Signals::catch()?;
    let rx = spawn_reader(input);
    let mut server = Server {
        layout,
        output,
        held: BTreeMap::new(),
        caches: BTreeMap::new(),
    };
    let mut next_tick = Instant::now() + TICK_INTERVAL;
    loop {
        if !signals.pending().is_empty() {
            break;
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(Input::Line(line)) => server.handle_line(&line),
            Ok(Input::TooLong) => {
                let err = CodedError {
                    code: ErrorCode::InvalidRequest,
                    message: format!(
                        "the request line is longer than {} bytes",
                        protocol::MAX_REQUEST_BYTES
                    ),
                };
                server.send(&protocol::failure(Some(&Value::Null), &err));
            }
            Ok(Input::End) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next_tick {
            server.tick_all();
            next_tick = Instant::now() + TICK_INTERVAL;
        }
    }
    server.release_all();
    Ok(())
}
