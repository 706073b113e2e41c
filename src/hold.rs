//! Sessions held by this process (`serve`, `run`): a lock on `sessions/<id>.lock` that the
//! kernel releases when the process dies, so other processes see the session end at once.

use anyhow::Result;
use fslock::LockFile;

use crate::error::{ErrorCode, coded};
use crate::layout::Layout;
use crate::lock;
use crate::profile;
use crate::runtime::{self, AcquireOptions, Acquired};
use crate::session;

/// A session this process holds; dropping it ends the hold (not the record: release does).
pub struct Held {
    pub acquired: Acquired,
    _lock: LockFile,
}

/// Acquires a session held by this process.
pub fn acquire(layout: &Layout, opts: &AcquireOptions) -> Result<Held> {
    // Validate first, so a bad request creates nothing.
    profile::check_name(&opts.profile)?;
    layout.ensure_store()?;
    let id = session::new_id();
    let path = layout.session_lock(&id);
    let mut file = lock::open_lock_file(&path)?;
    if !file.try_lock()? {
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
        Ok(acquired) => Ok(Held {
            acquired,
            _lock: file,
        }),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}
