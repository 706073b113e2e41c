//! The tick loop that `serve` and `run` share: every interval, one tick per profile of the
//! sessions this process holds (they share a runtime), with a cache per runtime, and what each
//! tick found, for the caller to report its own way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::app;
use crate::error::{CodedError, ErrorCode, to_coded};
use crate::layout::Layout;
use crate::protocol::{SessionId, SyncReport};
use crate::runtime::TickCache;

/// How often held sessions are ticked.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// What a round of ticks found for one session.
#[derive(Debug)]
pub enum Outcome {
    /// The tick saved or moved something.
    Synced {
        session: SessionId,
        report: SyncReport,
    },
    /// The session was released by another process; it is no longer ticked here.
    Ended { session: SessionId },
    /// The tick failed; the session stays and is ticked again next time.
    Failed {
        session: SessionId,
        error: CodedError,
    },
}

/// Held sessions, by id, with the profile each belongs to.
pub struct Ticker {
    sessions: BTreeMap<SessionId, String>,
    caches: BTreeMap<String, TickCache>,
    next: Instant,
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker::new()
    }
}

impl Ticker {
    pub fn new() -> Ticker {
        Ticker {
            sessions: BTreeMap::new(),
            caches: BTreeMap::new(),
            next: Instant::now() + TICK_INTERVAL,
        }
    }

    pub fn add(&mut self, session: SessionId, profile: &str) {
        self.sessions.insert(session, profile.to_owned());
    }

    pub fn remove(&mut self, session: &SessionId) {
        self.sessions.remove(session);
    }

    /// How long until the next round is due (zero when it is).
    pub fn until_due(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Runs a round when one is due; what it found, otherwise nothing.
    pub fn tick_if_due(&mut self, layout: &Layout) -> Vec<Outcome> {
        if Instant::now() < self.next {
            return Vec::new();
        }
        let outcomes = self.tick_all(layout);
        self.next = Instant::now() + TICK_INTERVAL;
        outcomes
    }

    fn tick_all(&mut self, layout: &Layout) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        // Only one session per profile is ticked, so every other one is checked by its record.
        let gone: Vec<SessionId> = self
            .sessions
            .keys()
            .filter(|id| !layout.session_record(id).exists())
            .cloned()
            .collect();
        for session in gone {
            self.sessions.remove(&session);
            outcomes.push(Outcome::Ended { session });
        }
        let profiles: BTreeSet<String> = self.sessions.values().cloned().collect();
        self.caches.retain(|p, _| profiles.contains(p));
        let mut seen = BTreeSet::new();
        let ids: Vec<(SessionId, String)> = self
            .sessions
            .iter()
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        for (session, profile) in ids {
            if !seen.insert(profile.clone()) {
                continue;
            }
            let cache = self
                .caches
                .entry(profile)
                .or_insert_with(TickCache::long_lived);
            match app::tick_with(layout, &session, cache) {
                Ok(ticked) if ticked.report.is_eventful() => outcomes.push(Outcome::Synced {
                    session,
                    report: ticked.report,
                }),
                Ok(_) => {}
                Err(e) => {
                    let error = to_coded(&e);
                    if error.code == ErrorCode::SessionNotFound {
                        self.sessions.remove(&session);
                        outcomes.push(Outcome::Ended { session });
                    } else {
                        outcomes.push(Outcome::Failed { session, error });
                    }
                }
            }
        }
        outcomes
    }
}
