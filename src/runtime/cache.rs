//! What a long-lived holder keeps between ticks of one runtime: the state and manifest it read
//! last (with the stamps that say they are still current) and a file-system watch.

use std::path::Path;

use anyhow::Result;

use super::fake::{self, Manifest, Scope};
use super::watch::{self, Watch};
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
    pub(super) state: Option<(Stamp, RuntimeState)>,
    pub(super) manifest: Option<(ManifestStamp, Manifest)>,
    ticks_since_full: u32,
    /// The two JSON documents of each side as last read or written, so a tick after a rewrite
    /// of one reads only that one, and parses only the keys that changed.
    pub(super) documents: super::documents::Cache,
}

/// Notifications can miss changes behind symlinked folders; a full pass now and then catches them.
const FULL_PASS_EVERY: u32 = 60;

impl TickCache {
    /// A cache for a process that ticks the same runtime again and again.
    pub fn long_lived() -> TickCache {
        TickCache {
            long_lived: true,
            ..TickCache::default()
        }
    }

    /// The scope of this tick's mirror pass in fake mode.
    pub(super) fn scope(&mut self, layout: &Layout, profile: &str) -> Scope {
        if !self.long_lived {
            return Scope::Full;
        }
        if self.watch.is_none() && !self.watch_failed {
            match Watch::new(&layout.claude_home, &layout.runtime_config_dir(profile)) {
                // The first pass after the watch starts is full: it covers what came before.
                Ok(w) => {
                    self.watch = Some(w);
                    self.ticks_since_full = 0;
                    return Scope::Full;
                }
                Err(_) => self.watch_failed = true,
            }
        }
        self.ticks_since_full += 1;
        match self.watch.as_mut().map(Watch::changes) {
            Some(watch::Changes::Dirs(dirs)) if self.ticks_since_full < FULL_PASS_EVERY => {
                Scope::Dirs(dirs)
            }
            _ => {
                self.ticks_since_full = 0;
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
