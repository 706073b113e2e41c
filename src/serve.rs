//! `serve`: newline-delimited protocol requests on one pipe, sessions held by this process and
//! ticked every second, released when input ends or a termination signal arrives; while it
//! holds sessions, their accounts' usage is looked at once a minute, and a session whose account
//! passes 90 % of a window is told so.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use crate::app::{self, Held, OneShot};
use crate::error::{CodedError, to_coded};
use crate::layout::Layout;
use crate::platform::Signals;
use crate::protocol::framing::{Input, spawn_line_reader, write_line};
use crate::protocol::handler::line_too_long;
use crate::protocol::{
    self, AcquireRequest, Acquired, Capabilities, ErrorBody, EventBody, Handler, ProfileName,
    Released, SessionId, SessionRequest, Status, StatusRequest, Ticked, UsageReport,
};
use crate::ticker::{Outcome, Ticker};

/// How often the usage of the held sessions' accounts is looked at.
pub const USAGE_INTERVAL: Duration = Duration::from_secs(60);
/// The utilization (percent) of a window past which its sessions get a `usage` event.
pub const USAGE_ALERT: f64 = 90.0;

/// The one-shot handler, with acquire and release of sessions this process holds.
struct Server<'a> {
    inner: OneShot<'a>,
    held: BTreeMap<SessionId, Held>,
    ticker: Ticker,
    watch: UsageWatch,
}

type Looked = anyhow::Result<Vec<(ProfileName, UsageReport)>>;

/// The usage of the held sessions' accounts, looked at on a thread of its own (a request may
/// take seconds, and serve answers meanwhile), and the windows already past the mark, so each
/// session hears of each crossing once.
struct UsageWatch {
    next: Instant,
    pending: Option<Receiver<Looked>>,
    /// (session, window) pairs at or past `USAGE_ALERT` when last looked at.
    past: BTreeSet<(String, String)>,
}

impl Handler for Server<'_> {
    fn acquire(&mut self, request: AcquireRequest) -> Result<Acquired, CodedError> {
        let layout = self.inner.layout()?;
        let held = app::acquire_held(layout, &request).map_err(|e| to_coded(&e))?;
        let acquired = held.acquired.clone();
        let id = SessionId::parse(&acquired.session)?;
        self.ticker.add(id.clone(), &acquired.profile);
        self.held.insert(id, held);
        Ok(acquired)
    }

    fn tick(&mut self, request: SessionRequest) -> Result<Ticked, CodedError> {
        self.inner.tick(request)
    }

    fn release(&mut self, request: SessionRequest) -> Result<Released, CodedError> {
        let session = request.session.clone();
        let released = self.inner.release(request)?;
        self.ticker.remove(&session);
        self.held.remove(&session);
        Ok(released)
    }

    fn status(&mut self, request: StatusRequest) -> Result<Status, CodedError> {
        self.inner.status(request)
    }

    fn capabilities(&mut self) -> Result<Capabilities, CodedError> {
        self.inner.capabilities()
    }
}

impl Server<'_> {
    /// Ticks the held sessions when due; every tick that did something becomes an event.
    fn tick_held(&mut self, output: &mut impl Write) {
        let Ok(layout) = self.inner.layout() else {
            return;
        };
        for outcome in self.ticker.tick_if_due(layout) {
            let event = match outcome {
                Outcome::Synced { session, report } => EventBody::Synced {
                    session: session.to_string(),
                    report,
                },
                Outcome::Ended { session } => {
                    // Released by someone else: this process no longer holds it.
                    self.held.remove(&session);
                    EventBody::SessionEnded {
                        session: session.to_string(),
                    }
                }
                Outcome::Failed { session, error } => EventBody::TickFailed {
                    session: session.to_string(),
                    error: ErrorBody::of(&error),
                },
            };
            let _ = write_line(output, &protocol::event(event));
        }
    }

    /// Looks at the usage of the held sessions' accounts when due, and sends a `usage` event
    /// to every held session of an account whose window has just passed the mark.
    fn watch_usage(&mut self, output: &mut impl Write) {
        let Ok(layout) = self.inner.layout() else {
            return;
        };
        if let Some(pending) = &self.watch.pending {
            match pending.try_recv() {
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => self.watch.pending = None,
                Ok(looked) => {
                    self.watch.pending = None;
                    if let Ok(reports) = looked {
                        self.alert(&reports, output);
                    }
                }
            }
        }
        if self.held.is_empty() {
            // Looked at as soon as a session is held again.
            self.watch.next = Instant::now();
            return;
        }
        if Instant::now() < self.watch.next {
            return;
        }
        self.watch.next = Instant::now() + USAGE_INTERVAL;
        let names: Vec<ProfileName> = self
            .held
            .values()
            .filter_map(|h| ProfileName::parse(&h.acquired.profile).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (tx, rx) = mpsc::channel();
        let layout = layout.clone();
        std::thread::spawn(move || {
            let _ = tx.send(app::usage_reports(&layout, &names));
        });
        self.watch.pending = Some(rx);
    }

    fn alert(&mut self, reports: &[(ProfileName, UsageReport)], output: &mut impl Write) {
        let held: BTreeSet<String> = self.held.keys().map(|id| id.to_string()).collect();
        self.watch
            .past
            .retain(|(session, _)| held.contains(session));
        for (name, report) in reports {
            let Some(usage) = &report.usage else {
                continue;
            };
            let sessions: Vec<String> = self
                .held
                .iter()
                .filter(|(_, h)| h.acquired.profile == name.as_str())
                .map(|(id, _)| id.to_string())
                .collect();
            for (window, w) in crate::usage::windows_of(usage) {
                for session in &sessions {
                    let key = (session.clone(), window.to_owned());
                    if w.utilization < USAGE_ALERT {
                        self.watch.past.remove(&key);
                    } else if self.watch.past.insert(key) {
                        let event = EventBody::Usage {
                            session: session.clone(),
                            profile: name.to_string(),
                            window: window.to_owned(),
                            utilization: w.utilization,
                            resets_at: w.resets_at.clone(),
                            usage: usage.clone(),
                        };
                        let _ = write_line(output, &protocol::event(event));
                    }
                }
            }
        }
    }

    /// Releases every held session (final sync; teardown when last).
    fn release_all(&mut self) {
        let Ok(layout) = self.inner.layout() else {
            return;
        };
        for (id, held) in std::mem::take(&mut self.held) {
            if let Err(e) = app::release(layout, &id) {
                let err = to_coded(&e);
                eprintln!(
                    "clauth-helper serve: could not release {id}: {}",
                    err.message
                );
            }
            drop(held);
        }
    }
}

/// Runs the serve loop until input ends or SIGINT/SIGTERM/SIGHUP arrives.
pub fn serve(
    layout: Result<&Layout, &CodedError>,
    input: impl Read + Send + 'static,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut signals = Signals::catch()?;
    let lines = spawn_line_reader(input);
    let mut server = Server {
        inner: OneShot::new(layout),
        held: BTreeMap::new(),
        ticker: Ticker::new(),
        watch: UsageWatch {
            next: Instant::now(),
            pending: None,
            past: BTreeSet::new(),
        },
    };
    loop {
        if !signals.pending().is_empty() {
            break;
        }
        // Signals are looked at at least every 200 ms.
        let wait = server.ticker.until_due().min(Duration::from_millis(200));
        match lines.recv_timeout(wait) {
            Ok(Input::Line(line)) => {
                if let Some(response) = protocol::answer_line(&mut server, &line) {
                    let _ = write_line(&mut output, &response);
                }
            }
            Ok(Input::TooLong) => {
                let _ = write_line(&mut output, &line_too_long());
            }
            Ok(Input::End) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        server.tick_held(&mut output);
        server.watch_usage(&mut output);
    }
    server.release_all();
    Ok(())
}
