//! The store's cross-process locks, each released by the kernel when its holder dies.
//!
//! Two kinds, taken in one order:
//!
//! 1. **Profile locks** (`profiles/<name>/lock`), one per profile, held for the whole of a verb
//!    that works on that profile's runtime or directory: acquire (the build of a runtime
//!    included), tick, release, and the administration of that profile. Several are taken in
//!    ascending order of name.
//! 2. **The store lock** (`state.lock`), held only for what profiles share, and only briefly:
//!    session records, the merges into `~/.claude.json` and `~/.claude/settings.json`, the
//!    entries of the claude home that real-mode runtimes link to and adopt into, the home login
//!    and the store's own bookkeeping (the home profile, an unfinished `profile use`).
//!
//! No process waits for a lock while it holds one that comes later in this order: a profile
//! lock is never waited for with the store lock held (it may only be *tried*, which never
//! waits), and profile locks are waited for in ascending order. So no two processes can each
//! wait for the other: a cycle of waits would need one of them to wait against the order. Every
//! wait is bounded besides (`CLAUTH_LOCK_TIMEOUT_MS`, answered with `lock_timeout`).
//!
//! Both kinds are re-entrant within one thread: a function that needs the store lock takes it
//! whether or not its caller already holds it, and only the outermost guard touches the file.
//! (Locks of one file taken through two open files conflict even within one process, which is
//! why a thread never opens a lock it holds twice.)

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fslock::LockFile;

use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::Layout;
use crate::platform;
use crate::profile;
use crate::protocol::ProfileName;

/// What the store lock or a profile lock is, for the per-thread count of holds.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Store,
    Profile(String),
}

thread_local! {
    /// The locks this thread holds, with the file of the outermost hold and the hold count.
    static HELD: RefCell<BTreeMap<Key, (File, usize)>> = const { RefCell::new(BTreeMap::new()) };
}

/// One hold of a lock; the file is let go when the thread's last hold of it ends.
struct Hold {
    key: Key,
}

impl Drop for Hold {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some((_, count)) = held.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    // Closing the file lets the lock go.
                    held.remove(&self.key);
                }
            }
        });
    }
}

fn holds(key: &Key) -> bool {
    HELD.with(|held| held.borrow().contains_key(key))
}

/// Takes `key` (waiting at most `timeout`, or not at all), or counts one more hold of it.
fn take(key: Key, path: &Path, timeout: Option<Duration>) -> Result<Option<Hold>> {
    let again = HELD.with(|held| match held.borrow_mut().get_mut(&key) {
        Some((_, count)) => {
            *count += 1;
            true
        }
        None => false,
    });
    if again {
        return Ok(Some(Hold { key }));
    }
    let deadline = Instant::now() + timeout.unwrap_or_default();
    Ok(lock_path(path, deadline)?.map(|file| {
        HELD.with(|held| held.borrow_mut().insert(key.clone(), (file, 1)));
        Hold { key }
    }))
}

/// Locks the file at `path` (created 0600), polling until `deadline`; `None` when it passed,
/// or when the file is gone (its profile was removed or renamed while this waited). A lock on a
/// file that was replaced meanwhile is no lock of `path`: it is let go and taken again.
fn lock_path(path: &Path, deadline: Instant) -> Result<Option<File>> {
    let mut pause = Duration::from_millis(1);
    loop {
        let file = match open_private(path)? {
            Some(file) => file,
            None => return Ok(None),
        };
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
        let now = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
        let held = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if platform::same_file(&held, &now) {
            return Ok(Some(file));
        }
    }
}

/// Creates the lock file of a profile being made (under the store lock), so that taking it
/// later changes no file.
pub fn create_profile_lock(layout: &Layout, profile: &str) -> Result<()> {
    open_private(&layout.profile_lock(profile)).map(drop)
}

/// Opens the lock file at `path` for reading (creating it private first when it is missing);
/// `None` when its directory is gone. Read-only, so that taking a lock writes nothing a
/// watcher of the directory would take for a change (a held session's ticker watches the
/// profile's directory).
fn open_private(path: &Path) -> Result<Option<File>> {
    let open = || match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    if let Some(file) = open()? {
        return Ok(Some(file));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    platform::create_mode(&mut options, fsx::PRIVATE_FILE);
    match options.open(path) {
        Ok(_) => open(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The store lock, held for as long as the value lives.
pub struct StateLock {
    _hold: Hold,
}

impl StateLock {
    /// Takes the store's lock, waiting at most `layout.lock_timeout`.
    pub fn acquire(layout: &Layout) -> Result<StateLock> {
        layout.ensure_store()?;
        let path = layout.state_lock();
        let hold = take(Key::Store, &path, Some(layout.lock_timeout))?.ok_or_else(|| {
            coded(
                ErrorCode::LockTimeout,
                format!(
                    "the state lock {} was held by another clauth-helper for more than {} ms; try again",
                    path.display(),
                    layout.lock_timeout.as_millis()
                ),
            )
        })?;
        Ok(StateLock { _hold: hold })
    }
}

/// A profile's lock, held for as long as the value lives. Only a profile that exists has one:
/// a profile being created is the store lock's alone.
pub struct ProfileLock {
    _hold: Hold,
}

impl ProfileLock {
    /// Takes the lock of `profile`, waiting at most `layout.lock_timeout`; `profile_not_found`
    /// when there is no such profile. Never called with the store lock held: that would wait
    /// against the lock order.
    pub fn acquire(layout: &Layout, profile: &ProfileName) -> Result<ProfileLock> {
        let key = Key::Profile(profile.to_string());
        if holds(&Key::Store) && !holds(&key) {
            anyhow::bail!(
                "internal error: the lock of profile {profile} was waited for under the store lock"
            );
        }
        layout.ensure_store()?;
        let deadline = Instant::now() + layout.lock_timeout;
        loop {
            profile::require(layout, profile)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(hold) = take(key.clone(), &layout.profile_lock(profile), Some(left))? {
                return Ok(ProfileLock { _hold: hold });
            }
            // Gone while waiting (removed or renamed): `require` says so on the next round.
            if profile::exists(layout, profile) && Instant::now() >= deadline {
                return Err(coded(
                    ErrorCode::LockTimeout,
                    format!(
                        "profile {profile} was busy in another clauth-helper for more than {} ms (a runtime being built or synced); try again",
                        layout.lock_timeout.as_millis()
                    ),
                ));
            }
        }
    }

    /// The lock of `profile` when it exists (see [`ProfileLock::acquire`]); `None` when it does
    /// not, for the sessions of a profile removed by hand, which can still end.
    pub fn acquire_if_exists(layout: &Layout, profile: &str) -> Result<Option<ProfileLock>> {
        match ProfileName::parse(profile) {
            Ok(name) if profile::exists(layout, &name) => {
                Ok(Some(ProfileLock::acquire(layout, &name)?))
            }
            _ => Ok(None),
        }
    }

    /// The locks of those of `profiles` that exist, taken in ascending order of name.
    pub fn acquire_existing<'a>(
        layout: &Layout,
        profiles: impl IntoIterator<Item = &'a ProfileName>,
    ) -> Result<Vec<ProfileLock>> {
        let names: std::collections::BTreeSet<&ProfileName> = profiles.into_iter().collect();
        names
            .into_iter()
            .filter(|name| profile::exists(layout, name))
            .map(|name| ProfileLock::acquire(layout, name))
            .collect()
    }

    /// The lock of `profile` when nobody else holds it, without waiting (so also under the store
    /// lock); `None` while another process or thread works on the profile, or when it does not
    /// exist.
    pub fn try_acquire(layout: &Layout, profile: &str) -> Result<Option<ProfileLock>> {
        if !profile::exists(layout, profile) {
            return Ok(None);
        }
        let key = Key::Profile(profile.to_owned());
        Ok(take(key, &layout.profile_lock(profile), None)?.map(|hold| ProfileLock { _hold: hold }))
    }
}

/// Opens `path` (created 0600) and locks it, polling until `timeout`; `None` when it timed out.
pub fn lock_with_timeout(path: &Path, timeout: Duration) -> Result<Option<LockFile>> {
    let mut file = open_lock_file(path)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if file
            .try_lock()
            .with_context(|| format!("cannot lock {}", path.display()))?
        {
            return Ok(Some(file));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Opens a lock file, creating it private first so fslock never creates it with wider bits.
pub fn open_lock_file(path: &Path) -> Result<LockFile> {
    if fsx::lstat_optional(path)?.is_none() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        crate::platform::create_mode(&mut options, fsx::PRIVATE_FILE);
        options
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    LockFile::open(path).with_context(|| format!("cannot open {}", path.display()))
}
