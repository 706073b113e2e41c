//! Sessions held by this process (`serve`, `run`): a lock on `sessions/<id>.lock` that the
//! kernel releases when the last process holding it dies, so other processes see the session
//! end at once.

use std::fs::File;

use anyhow::{Context, Result};

use crate::error::{ErrorCode, coded};
use crate::layout::Layout;
use crate::platform;
use crate::profile;
use crate::runtime::{self, AcquireOptions, Acquired};
use crate::session;

/// A session this process holds; dropping it ends the hold (not the record: release does).
pub struct Held {
    pub acquired: Acquired,
    lock: File,
}

impl Held {
    /// Lets child processes started from now on share the hold, so the session stays alive
    /// while the command `run` started is alive, even if `run` itself is killed.
    pub fn share_with_children(&self) -> std::io::Result<()> {
        platform::set_inheritable(&self.lock, true)
    }
}

/// Opens the lock file of session `id` (created 0600).
pub fn open_lock(layout: &Layout, id: &str) -> Result<File> {
    let path = layout.session_lock(id);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::fsx::PRIVATE_FILE);
    options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Acquires a session held by this process.
pub fn acquire(layout: &Layout, opts: &AcquireOptions) -> Result<Held> {
    // Validate first, so a bad request creates nothing.
    profile::check_name(&opts.profile)?;
    layout.ensure_store()?;
    let id = session::new_id();
    let path = layout.session_lock(&id);
    let lock = open_lock(layout, &id)?;
    if lock.try_lock().is_err() {
        return Err(coded(
            ErrorCode::Io,
            format!("the new session lock {} is already held", path.display()),
        ));
    }
    let opts = AcquireOptions {
        held_session: Some(id),
        ..opts.clone()
    };
    match runtime::acquire(layout, &opts) {
        Ok(acquired) => Ok(Held { acquired, lock }),
        Err(e) => {
            drop(lock);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}
