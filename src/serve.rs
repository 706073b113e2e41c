//! `serve`: newline-delimited protocol requests on one pipe, sessions held by this process and
//! ticked every second, released when input ends or a termination signal arrives.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use crate::app::{self, Held, OneShot};
use crate::error::{CodedError, to_coded};
use crate::layout::Layout;
use crate::platform::Signals;
use crate::protocol::framing::{Input, spawn_line_reader, write_line};
use crate::protocol::handler::line_too_long;
use crate::protocol::{
    self, AcquireRequest, Acquired, Capabilities, ErrorBody, EventBody, Handler, Released,
    SessionId, SessionRequest, Status, StatusRequest, Ticked,
};
use crate::ticker::{Outcome, Ticker};

/// The one-shot handler, with acquire and release of sessions this process holds.
struct Server<'a> {
    inner: OneShot<'a>,
    held: BTreeMap<SessionId, Held>,
    ticker: Ticker,
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
    }
    server.release_all();
    Ok(())
}
