//! File-system change notifications for a long-lived fake-mode session: which directories of the
//! claude home and the runtime changed since the last tick, so an idle tick walks nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};

use super::is_managed;

/// A recursive watch on both trees of one runtime.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    roots: [PathBuf; 2],
}

/// What changed since the last call.
pub enum Changes {
    /// Directories (relative, "" for the top) whose entries changed.
    Dirs(BTreeSet<String>),
    /// Notifications were lost (queue overflow, an error): walk everything.
    Rescan,
}

impl Watch {
    pub fn new(home: &Path, runtime: &Path) -> Result<Watch> {
        let (tx, events) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(tx).context("cannot start file-system notifications")?;
        for root in [home, runtime] {
            watcher
                .watch(root, RecursiveMode::Recursive)
                .with_context(|| format!("cannot watch {}", root.display()))?;
        }
        Ok(Watch {
            _watcher: watcher,
            events,
            roots: [home.to_path_buf(), runtime.to_path_buf()],
        })
    }

    /// Drains the notifications that arrived since the last call.
    pub fn changes(&mut self) -> Changes {
        let mut dirs = BTreeSet::new();
        while let Ok(event) = self.events.try_recv() {
            let Ok(event) = event else {
                return Changes::Rescan;
            };
            if event.need_rescan() {
                return Changes::Rescan;
            }
            for path in &event.paths {
                if let Some(dir) = self.dir_of(path) {
                    dirs.insert(dir);
                }
            }
        }
        Changes::Dirs(dirs)
    }

    /// The directory, relative to its root, whose listing an event on `path` changed.
    fn dir_of(&self, path: &Path) -> Option<String> {
        let rel = self
            .roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())?;
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| super::names::encode(p).into_owned())
            .collect();
        match parts.as_slice() {
            // The root itself, or a managed top-level file that the tick handles by its stamps.
            [] => None,
            [name] if is_managed(name) => None,
            _ => {
                parts.pop();
                Some(parts.join("/"))
            }
        }
    }
}
