//! The cross-process state lock, taken around every state change, with a timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fslock::LockFile;

use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::Layout;

/// Held for as long as the value lives; the kernel releases it if the process dies.
pub struct StateLock {
    _file: LockFile,
}

impl StateLock {
    /// Takes the store's state lock, waiting at most `layout.lock_timeout`.
    pub fn acquire(layout: &Layout) -> Result<StateLock> {
        layout.ensure_store()?;
        let path = layout.state_lock();
        let file = lock_with_timeout(&path, layout.lock_timeout)?.ok_or_else(|| {
            coded(
                ErrorCode::LockTimeout,
                format!(
                    "the state lock {} was held by another clauth-helper for more than {} ms; try again",
                    path.display(),
                    layout.lock_timeout.as_millis()
                ),
            )
        })?;
        Ok(StateLock { _file: file })
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
