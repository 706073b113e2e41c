//! File-system change notifications for long-lived sessions: which directories of the claude
//! home and a fake-mode runtime changed since the last tick, so an idle tick walks nothing, and
//! a wake-up when anything a tick looks at changes, so an idle holder need not tick at all.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};

use super::is_managed;

/// Called from the notification thread when something a tick looks at may have changed.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Whether an event may change what a tick finds: reads (opens, closes without a write) do not,
/// and the ticks' own reads must not wake another tick.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether an event adds, removes or renames an entry (rather than changing what one holds).
fn is_entry_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    )
}

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
    /// Watches both trees; `wake`, when given, is called on every change in them.
    pub fn new(home: &Path, runtime: &Path, wake: Option<Waker>) -> Result<Watch> {
        let (tx, events) = mpsc::channel();
        let handler = move |event: notify::Result<notify::Event>| {
            let change = event.as_ref().map_or(true, |e| is_change(&e.kind));
            if !change {
                return;
            }
            let _ = tx.send(event);
            if let Some(wake) = &wake {
                wake();
            }
        };
        let mut watcher = notify::recommended_watcher(handler)
            .context("cannot start file-system notifications")?;
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

/// Which events on a watched directory matter to its ticks.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// A config directory's top level: an entry added, removed or renamed, or a change in a
    /// file a tick reads (credentials, documents); other files are links or mirrored copies.
    TopLevel,
    /// Only the entry of this name (`~/.claude.json` in a home directory full of other files).
    Named(OsString),
    /// Every change but to the entries of these names (a cache a tick never reads).
    AllBut(Vec<OsString>),
}

impl Filter {
    fn matches(&self, kind: &EventKind, name: &std::ffi::OsStr) -> bool {
        match self {
            Filter::TopLevel => is_entry_change(kind) || is_managed(&super::names::encode(name)),
            Filter::Named(wanted) => name == wanted.as_os_str(),
            Filter::AllBut(others) => !others.iter().any(|o| o.as_os_str() == name),
        }
    }
}

/// One watched directory, what matters there, and whom to tell.
#[derive(Clone, Debug)]
pub struct Route<K> {
    pub dir: PathBuf,
    pub filter: Filter,
    pub key: K,
}

/// What an event touched.
pub enum Touched<K> {
    One(K),
    /// Notifications were lost: anything may have changed.
    All,
}

/// Non-recursive watches on the directories of a set of routes, one notification thread for all.
pub struct Notifier<K> {
    watcher: notify::RecommendedWatcher,
    routes: Arc<Mutex<Vec<Route<K>>>>,
    watched: BTreeSet<PathBuf>,
}

impl<K: Clone + Send + 'static> Notifier<K> {
    /// Starts the notification thread; `on` is called on it for every route an event touches.
    pub fn new(on: impl Fn(Touched<K>) + Send + 'static) -> Result<Notifier<K>> {
        let routes: Arc<Mutex<Vec<Route<K>>>> = Arc::default();
        let seen = routes.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let event = match event {
                Ok(e) if !e.need_rescan() => e,
                _ => return on(Touched::All),
            };
            if !is_change(&event.kind) {
                return;
            }
            let touched: Vec<K> = {
                let routes = seen.lock().unwrap_or_else(PoisonError::into_inner);
                routes
                    .iter()
                    .filter(|r| event.paths.iter().any(|p| touches(r, &event.kind, p)))
                    .map(|r| r.key.clone())
                    .collect()
            };
            for key in touched {
                on(Touched::One(key));
            }
        };
        let watcher = notify::recommended_watcher(handler)
            .context("cannot start file-system notifications")?;
        Ok(Notifier {
            watcher,
            routes,
            watched: BTreeSet::new(),
        })
    }

    /// Watches exactly the directories of `routes` from now on. A directory that does not exist
    /// is left out (there is nothing there to tick); any other failure (the kernel's limit on
    /// watches) is an error, and the caller must look for itself.
    pub fn set(&mut self, routes: Vec<Route<K>>) -> Result<()> {
        let wanted: BTreeSet<PathBuf> = routes.iter().map(|r| r.dir.clone()).collect();
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = routes;
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            // A directory removed meanwhile took its watch with it.
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e))
                        .with_context(|| format!("cannot watch {}", dir.display()));
                }
            }
        }
        Ok(())
    }
}

fn is_not_found(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Lock and temp entries, Claude Code's and this program's own (a merge takes Claude Code's lock
/// directories, a write goes through a temp file): they come and go around a write whose own
/// event (the rename of the file itself) is the change, so on their own they wake nothing, and
/// a tick that takes a lock never wakes the next one.
fn is_scratch(name: &std::ffi::OsStr) -> bool {
    let name = super::names::encode(name);
    name.starts_with(crate::fsx::TEMP_PREFIX) || super::names::is_lock_family(&name)
}

/// Whether an event of `kind` on `path` matters to `route`: an entry of its directory that its
/// filter takes, or the directory itself (removed or moved away).
fn touches<K>(route: &Route<K>, kind: &EventKind, path: &Path) -> bool {
    if path == route.dir {
        return true;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if dir == route.dir => {
            !is_scratch(name) && route.filter.matches(kind, name)
        }
        _ => false,
    }
}
