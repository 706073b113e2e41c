//! The tick loop that `serve` and `run` share: the profiles of the sessions this process holds
//! (they share a runtime) are ticked when a file a tick looks at changes, when a lease needs
//! renewing, and now and then in case a notification was lost; a cache per runtime; and what
//! each tick found, for the caller to report its own way.
//!
//! Nothing here polls while the file-system watch works: an idle holder costs a tick a minute.
//! Where the watch cannot be set up (the kernel's limit on watches), or cannot see the login
//! (a Keychain), every held profile is ticked each second as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::app;
use crate::error::{CodedError, ErrorCode, to_coded};
use crate::ids::now_ms;
use crate::layout::Layout;
use crate::protocol::{SessionId, SyncReport};
use crate::runtime::{Filter, Notifier, Route, TickCache, Touched, Waker};

/// How often held sessions are ticked when changes cannot be waited for.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How long after the first of a burst of changes their tick runs: Claude Code writes a
/// document as a temp file and a rename, and a refresh touches the credentials and their lock.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often a profile is ticked while nothing changes, in case a notification was lost.
pub const SAFETY_INTERVAL: Duration = Duration::from_secs(60);
/// What [`Ticker::until_due`] says while nothing is held.
const NOTHING_HELD: Duration = Duration::from_secs(3600);

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

/// Whom a notification is for.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    /// One profile's runtime or store entry.
    Profile(String),
    /// The claude home, which every held profile's ticks read.
    Home,
    /// The session records: one of ours may have been released elsewhere.
    Sessions,
}

/// Changes notified since the last round, filled in on the notification threads.
#[derive(Default)]
struct Pending {
    profiles: BTreeSet<String>,
    every: bool,
    sessions: bool,
    /// When the first of them arrived: the round runs [`DEBOUNCE`] later.
    since: Option<Instant>,
}

impl Pending {
    /// Notes a change; true when it is the first since the last round (the loop must wake).
    fn note(&mut self, key: Touched<Key>) -> bool {
        match key {
            Touched::One(Key::Profile(p)) => {
                self.profiles.insert(p);
            }
            Touched::One(Key::Home) => self.every = true,
            Touched::One(Key::Sessions) => self.sessions = true,
            Touched::All => {
                self.every = true;
                self.sessions = true;
            }
        }
        let first = self.since.is_none();
        self.since.get_or_insert_with(Instant::now);
        first
    }
}

/// The pending changes, shared with the notification threads, and how to wake the holder.
#[derive(Clone)]
struct Shared {
    pending: Arc<Mutex<Pending>>,
    wake: Waker,
}

impl Shared {
    fn note(&self, key: Touched<Key>) {
        let first = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(key);
        if first {
            (self.wake)();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One held profile: its cache and when it must be ticked at the latest.
struct Held {
    cache: TickCache,
    due: Instant,
}

/// Held sessions, by id, with the profile each belongs to.
pub struct Ticker {
    sessions: BTreeMap<SessionId, String>,
    profiles: BTreeMap<String, Held>,
    shared: Shared,
    /// `None` until a session is held, and when notifications could not be set up.
    notifier: Option<Notifier<Key>>,
    /// Ticks come every [`TICK_INTERVAL`]: notifications cannot be relied on.
    polling: bool,
}

impl Ticker {
    /// A ticker that calls `wake` (from another thread) when a change wants a round: the
    /// holder's wait ends then, and [`Ticker::until_due`] says how long to wait next.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Ticker {
        Ticker {
            sessions: BTreeMap::new(),
            profiles: BTreeMap::new(),
            shared: Shared {
                pending: Arc::default(),
                wake: Arc::new(wake),
            },
            notifier: None,
            polling: false,
        }
    }

    pub fn add(&mut self, layout: &Layout, session: SessionId, profile: &str) {
        self.sessions.insert(session, profile.to_owned());
        if !self.profiles.contains_key(profile) {
            let shared = self.shared.clone();
            let name = profile.to_owned();
            let waker: Waker =
                Arc::new(move || shared.note(Touched::One(Key::Profile(name.clone()))));
            self.profiles.insert(
                profile.to_owned(),
                Held {
                    cache: TickCache::long_lived_waking(waker),
                    // Soon, once the watch is on: it covers what changed since the acquire.
                    due: Instant::now() + DEBOUNCE,
                },
            );
            self.watch(layout);
        }
    }

    pub fn remove(&mut self, layout: &Layout, session: &SessionId) {
        self.sessions.remove(session);
        self.forget_unheld(layout);
    }

    /// Drops the profiles no held session belongs to, and their watches.
    fn forget_unheld(&mut self, layout: &Layout) {
        let held: BTreeSet<&String> = self.sessions.values().collect();
        let before = self.profiles.len();
        self.profiles.retain(|p, _| held.contains(p));
        if self.profiles.len() != before {
            self.watch(layout);
        }
    }

    /// Points the watch at what the held profiles' ticks look at; on failure, polls.
    fn watch(&mut self, layout: &Layout) {
        if self.polling {
            return;
        }
        // A Keychain item changes without a file event.
        if layout.keychain.is_some() {
            self.polling = true;
            return;
        }
        if self.notifier.is_none() {
            let shared = self.shared.clone();
            match Notifier::new(move |key| shared.note(key)) {
                Ok(n) => self.notifier = Some(n),
                Err(_) => {
                    self.polling = true;
                    return;
                }
            }
        }
        let routes = routes(layout, self.profiles.keys());
        if let Some(notifier) = &mut self.notifier
            && notifier.set(routes).is_err()
        {
            self.polling = true;
            self.notifier = None;
        }
    }

    /// How long until the next round is due (zero when it is).
    pub fn until_due(&self) -> Duration {
        let now = Instant::now();
        let debounced = self.shared.lock().since.map(|t| t + DEBOUNCE);
        self.profiles
            .values()
            .map(|h| h.due)
            .chain(debounced)
            .min()
            .map_or(NOTHING_HELD, |t| t.saturating_duration_since(now))
    }

    /// Runs a round when one is due; what it found, otherwise nothing.
    pub fn tick_if_due(&mut self, layout: &Layout) -> Vec<Outcome> {
        let now = Instant::now();
        let pending = {
            let mut pending = self.shared.lock();
            match pending.since {
                Some(t) if t + DEBOUNCE <= now => std::mem::take(&mut *pending),
                _ => Pending::default(),
            }
        };
        let due: Vec<String> = self
            .profiles
            .iter()
            .filter(|(p, h)| pending.every || pending.profiles.contains(*p) || h.due <= now)
            .map(|(p, _)| p.clone())
            .collect();
        if due.is_empty() && !pending.sessions {
            return Vec::new();
        }
        let mut outcomes = self.drop_ended(layout);
        for profile in due {
            self.tick_profile(layout, &profile, &mut outcomes);
        }
        self.forget_unheld(layout);
        outcomes
    }

    /// Only one session per profile is ticked, so every other one is checked by its record.
    fn drop_ended(&mut self, layout: &Layout) -> Vec<Outcome> {
        let gone: Vec<SessionId> = self
            .sessions
            .keys()
            .filter(|id| !layout.session_record(id).exists())
            .cloned()
            .collect();
        gone.into_iter()
            .map(|session| {
                self.sessions.remove(&session);
                Outcome::Ended { session }
            })
            .collect()
    }

    fn tick_profile(&mut self, layout: &Layout, profile: &str, outcomes: &mut Vec<Outcome>) {
        let Some(session) = self
            .sessions
            .iter()
            .find(|(_, p)| *p == profile)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        let Some(held) = self.profiles.get_mut(profile) else {
            return;
        };
        let quiet = if self.polling {
            TICK_INTERVAL
        } else {
            SAFETY_INTERVAL
        };
        let mut next = quiet;
        match app::tick_with(layout, &session, &mut held.cache) {
            Ok(ticked) => {
                if let Some(expires) = ticked.lease_expires_at {
                    // Renewed at half the lease, and not more often than a poll would.
                    let left = u64::try_from(expires.saturating_sub(now_ms())).unwrap_or(0);
                    next = next.min(Duration::from_millis(left / 2).max(TICK_INTERVAL));
                }
                if ticked.report.is_eventful() {
                    outcomes.push(Outcome::Synced {
                        session,
                        report: ticked.report,
                    });
                }
            }
            Err(e) => {
                let error = to_coded(&e);
                if error.code == ErrorCode::SessionNotFound {
                    self.sessions.remove(&session);
                    outcomes.push(Outcome::Ended { session });
                } else {
                    // Tried again soon, as a poll would: the cause may pass (a lock held).
                    next = TICK_INTERVAL;
                    outcomes.push(Outcome::Failed { session, error });
                }
            }
        }
        if held.cache.needs_polling() {
            next = TICK_INTERVAL;
        }
        held.due = Instant::now() + next;
    }
}

/// What a tick of `profiles` looks at, by directory: each runtime's top level (its
/// credentials, documents and new entries) and the profile's own directory (its login and
/// settings); the claude home's top level, `~/.claude.json` beside it; and the session records.
fn routes<'a>(layout: &Layout, profiles: impl Iterator<Item = &'a String>) -> Vec<Route<Key>> {
    let mut routes = Vec::new();
    let mut profiles = profiles.peekable();
    if profiles.peek().is_none() {
        return routes;
    }
    for p in profiles {
        let key = Key::Profile(p.clone());
        routes.push(Route {
            dir: layout.runtime_config_dir(p),
            filter: Filter::TopLevel,
            key: key.clone(),
        });
        routes.push(Route {
            dir: layout.profile_dir(p),
            // The usage cache is written there every few minutes; no tick reads it.
            filter: Filter::AllBut(vec![crate::usage::cache::CACHE_NAME.into()]),
            key,
        });
    }
    routes.push(Route {
        dir: layout.claude_home.clone(),
        filter: Filter::TopLevel,
        key: Key::Home,
    });
    if let (Some(dir), Some(name)) = (layout.claude_json.parent(), layout.claude_json.file_name()) {
        routes.push(Route {
            dir: dir.to_path_buf(),
            filter: Filter::Named(name.to_owned()),
            key: Key::Home,
        });
    }
    routes.push(Route {
        dir: layout.sessions_dir(),
        filter: Filter::AllBut(Vec::new()),
        key: Key::Sessions,
    });
    routes
}
