//! `serve`: newline-delimited protocol requests on one pipe, sessions held by this process and
//! ticked when what they look at changes (see `ticker`), released when input ends or a
//! termination signal arrives; while it holds sessions, their accounts' usage is looked at once
//! a minute, and a session whose account passes 90 % of a window is told so.
//!
//! The loop sleeps until one of these wakes it: a request line, a signal, a change a tick must
//! see, a usage answer, or the next thing due; it never wakes only to look.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::app::{self, Held, OneShot};
use crate::error::{CodedError, to_coded};
use crate::layout::Layout;
use crate::platform::Signals;
use crate::protocol::framing::{Input, send_lines, write_line};
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

/// What wakes the serve loop.
enum Wake {
    Input(Input),
    Signal,
    /// Something a tick looks at changed; the ticker knows what.
    Files,
    Usage(Looked),
}

/// The usage of the held sessions' accounts, looked at on a thread of its own (a request may
/// take seconds, and serve answers meanwhile), and the windows already past the mark, so each
/// session hears of each crossing once.
struct UsageWatch {
    next: Instant,
    /// A look is under way; its answer comes as [`Wake::Usage`] on `answers`.
    pending: bool,
    answers: Sender<Wake>,
    /// (session, window) pairs at or past `USAGE_ALERT` when last looked at.
    past: BTreeSet<(String, String)>,
}

impl UsageWatch {
    /// How long until the next look is due, while one can start.
    fn until_due(&self, holding: bool) -> Option<Duration> {
        (holding && !self.pending).then(|| self.next.saturating_duration_since(Instant::now()))
    }
}

impl Handler for Server<'_> {
    fn acquire(&mut self, request: AcquireRequest) -> Result<Acquired, CodedError> {
        let layout = self.inner.layout()?;
        let held = app::acquire_held(layout, &request).map_err(|e| to_coded(&e))?;
        let acquired = held.acquired.clone();
        let id = SessionId::parse(&acquired.session)?;
        self.ticker.add(layout, id.clone(), &acquired.profile);
        self.held.insert(id, held);
        Ok(acquired)
    }

    fn tick(&mut self, request: SessionRequest) -> Result<Ticked, CodedError> {
        self.inner.tick(request)
    }

    fn release(&mut self, request: SessionRequest) -> Result<Released, CodedError> {
        let session = request.session.clone();
        let released = self.inner.release(request)?;
        if let Ok(layout) = self.inner.layout() {
            self.ticker.remove(layout, &session);
        }
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

    /// Starts a look at the usage of the held sessions' accounts when one is due; its answer
    /// ([`Server::looked`]) sends a `usage` event to every held session of an account whose
    /// window has just passed the mark.
    fn watch_usage(&mut self) {
        let Ok(layout) = self.inner.layout() else {
            return;
        };
        if self.watch.pending {
            return;
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
        let tx = self.watch.answers.clone();
        let layout = layout.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Wake::Usage(app::usage_reports(&layout, &names)));
        });
        self.watch.pending = true;
    }

    /// A look at usage came back.
    fn looked(&mut self, looked: Looked, output: &mut impl Write) {
        self.watch.pending = false;
        if let Ok(reports) = looked {
            self.alert(&reports, output);
        }
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
    let signals = Signals::catch()?;
    let (tx, wakes) = mpsc::channel();
    let to_stop = tx.clone();
    // Any of them ends serve; the thread ends with the loop.
    let _signals = signals.forward(move |_| to_stop.send(Wake::Signal).is_ok());
    send_lines(input, tx.clone(), Wake::Input);
    let files = tx.clone();
    let mut server = Server {
        inner: OneShot::new(layout),
        held: BTreeMap::new(),
        ticker: Ticker::new(move || {
            let _ = files.send(Wake::Files);
        }),
        watch: UsageWatch {
            next: Instant::now(),
            pending: false,
            answers: tx,
            past: BTreeSet::new(),
        },
    };
    loop {
        let ticks = server.ticker.until_due();
        let wait = match server.watch.until_due(!server.held.is_empty()) {
            Some(usage) => ticks.min(usage),
            None => ticks,
        };
        match wakes.recv_timeout(wait) {
            Ok(Wake::Input(Input::Line(line))) => {
                if let Some(response) = protocol::answer_line(&mut server, &line) {
                    let _ = write_line(&mut output, &response);
                }
            }
            Ok(Wake::Input(Input::TooLong)) => {
                let _ = write_line(&mut output, &line_too_long());
            }
            Ok(Wake::Input(Input::End) | Wake::Signal) | Err(RecvTimeoutError::Disconnected) => {
                break;
            }
            Ok(Wake::Usage(looked)) => server.looked(looked, &mut output),
            Ok(Wake::Files) | Err(RecvTimeoutError::Timeout) => {}
        }
        server.tick_held(&mut output);
        server.watch_usage();
    }
    server.release_all();
    Ok(())
}
