//! What a long-lived holder keeps between ticks of one runtime: the state and manifest it read
//! last (with the stamps that say they are still current) and a file-system watch.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::fake::{self, Manifest, Scope};
use super::watch::{self, Waker, Watch};
use super::{RuntimeState, load_state};
use crate::fsx::Stamp;
use crate::layout::Layout;

/// What a long-lived holder (`serve`, `run`) keeps between ticks of one runtime, so an idle tick
/// reads no state it has already seen and walks no tree that did not change.
#[derive(Default)]
pub struct TickCache {
    /// Off for one-shot ticks: a watch only pays for itself across many ticks.
    long_lived: bool,
    watch: Option<Watch>,
    watch_failed: bool,
    /// Told of every change the fake-mode watch sees, so its holder ticks when one comes.
    waker: Option<Waker>,
    pub(super) state: Option<(Stamp, RuntimeState)>,
    pub(super) manifest: Option<(ManifestStamp, Manifest)>,
    last_full: Option<Instant>,
    /// The two JSON documents of each side as last read or written, so a tick after a rewrite
    /// of one reads only that one, and parses only the keys that changed.
    pub(super) documents: super::documents::Cache,
}

/// Notifications can miss changes behind symlinked folders; a full pass now and then catches
/// them. Counted in time, not ticks: an idle holder ticks about once a minute, and at 50k files
/// a full pass costs some 200 ms of CPU, so one every 30 minutes is about 0.1 ms per second.
const FULL_PASS_INTERVAL: Duration = Duration::from_secs(30 * 60);

impl TickCache {
    /// A cache for a process that ticks the same runtime again and again.
    pub fn long_lived() -> TickCache {
        TickCache {
            long_lived: true,
            ..TickCache::default()
        }
    }

    /// A long-lived cache whose fake-mode watch calls `waker` on every change it sees.
    pub fn long_lived_waking(waker: Waker) -> TickCache {
        TickCache {
            long_lived: true,
            waker: Some(waker),
            ..TickCache::default()
        }
    }

    /// Whether changes can go unnoticed between ticks (the fake-mode watch could not be set
    /// up), so the holder must tick often rather than wait for notifications.
    pub fn needs_polling(&self) -> bool {
        self.long_lived && self.watch_failed
    }

    /// The scope of this tick's mirror pass in fake mode.
    pub(super) fn scope(&mut self, layout: &Layout, profile: &str) -> Scope {
        if !self.long_lived {
            return Scope::Full;
        }
        if self.watch.is_none() && !self.watch_failed {
            let runtime = layout.runtime_config_dir(profile);
            match Watch::new(&layout.claude_home, &runtime, self.waker.clone()) {
                // The first pass after the watch starts is full: it covers what came before.
                Ok(w) => {
                    self.watch = Some(w);
                    self.last_full = Some(Instant::now());
                    return Scope::Full;
                }
                Err(_) => self.watch_failed = true,
            }
        }
        let recent = self
            .last_full
            .is_some_and(|t| t.elapsed() < FULL_PASS_INTERVAL);
        match self.watch.as_mut().map(Watch::changes) {
            Some(watch::Changes::Dirs(dirs)) if recent => Scope::Dirs(dirs),
            _ => {
                self.last_full = Some(Instant::now());
                Scope::Full
            }
        }
    }
}

/// The runtime's state, from the cache when the file has not changed since it was read.
pub(super) fn cached_state<'c>(
    layout: &Layout,
    profile: &str,
    cache: &'c mut TickCache,
) -> Result<Option<&'c mut RuntimeState>> {
    let path = layout.runtime_state(profile);
    let Some(stamp) = Stamp::at(&path)? else {
        cache.state = None;
        return Ok(None);
    };
    if cache.state.as_ref().is_none_or(|(s, _)| *s != stamp) {
        cache.state = load_state(layout, profile)?.map(|state| (stamp, state));
    }
    Ok(cache.state.as_mut().map(|(_, state)| state))
}

/// The stamps of a manifest and its journal: the cached manifest is current while both match.
pub(super) type ManifestStamp = (Option<Stamp>, Option<Stamp>);

pub(super) fn manifest_stamp(path: &Path) -> Result<ManifestStamp> {
    Ok((Stamp::at(path)?, Stamp::at(&fake::journal_path(path))?))
}
