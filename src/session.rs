//! Session records and their liveness: owner process (pid and start time), lease, serve lock.

use std::fs::File;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::ids::random_hex;
use crate::layout::Layout;
use crate::platform;
use crate::protocol::SessionId;

/// One user of a runtime, stored as `sessions/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub profile: String,
    pub created_at: i64,
    #[serde(default)]
    pub owner_pid: Option<u32>,
    /// Start time of the owner, so a reused pid does not keep a dead session alive.
    #[serde(default)]
    pub owner_start: Option<u64>,
    #[serde(default)]
    pub lease_ms: Option<u64>,
    #[serde(default)]
    pub lease_expires_at: Option<i64>,
    /// Held by a `serve` or `run` process through a lock on `sessions/<id>.lock`.
    #[serde(default)]
    pub held: bool,
}

/// A new session id: `s-` and 24 hex digits.
pub fn new_id() -> SessionId {
    SessionId::parse(&format!("s-{}", random_hex(12))).expect("a generated id is valid")
}

impl SessionRecord {
    /// Whether the session is alive now, by DESIGN's rules.
    pub fn is_alive(&self, layout: &Layout, now: i64) -> bool {
        if self.held {
            return holder_lock_held(layout, &self.id);
        }
        let lease_ok = self.lease_expires_at.is_none_or(|t| now < t);
        match self.owner_pid {
            Some(pid) => lease_ok && platform::process_alive(pid, self.owner_start),
            None => lease_ok,
        }
    }

    /// Renews the lease, if the session has one.
    pub fn renew(&mut self, now: i64) {
        if let Some(ms) = self.lease_ms {
            self.lease_expires_at = Some(now.saturating_add(ms as i64));
        }
    }
}

/// Opens the lock file of session `id` (created 0600), which a `serve` or `run` process holds
/// for as long as the session is theirs.
pub fn open_lock(layout: &Layout, id: &str) -> Result<File> {
    let path = layout.session_lock(id);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    platform::create_mode(&mut options, fsx::PRIVATE_FILE);
    options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Whether a `serve` or `run` process (or a command it shared the hold with) still holds the
/// lock of session `id`.
fn holder_lock_held(layout: &Layout, id: &str) -> bool {
    if !layout.session_lock(id).exists() {
        return false;
    }
    match open_lock(layout, id) {
        Ok(file) => match file.try_lock() {
            // We got it, so nobody holds it: the holder is gone. Dropping the file unlocks it.
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            // When in doubt, keep a session alive: losing a live session's runtime is worse.
            Err(std::fs::TryLockError::Error(_)) => true,
        },
        Err(_) => true,
    }
}

/// Reads every session record. A record that does not parse is returned as `Err(id)` so the
/// caller can prune it.
pub fn load_all(layout: &Layout) -> Result<Vec<Result<SessionRecord, String>>> {
    let dir = layout.sessions_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if id.starts_with(fsx::TEMP_PREFIX) {
            continue;
        }
        let parsed = std::fs::read(entry.path())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SessionRecord>(&bytes).ok())
            .filter(|r| r.id == id);
        out.push(parsed.ok_or_else(|| id.to_owned()));
    }
    out.sort_by_key(key);
    Ok(out)
}

fn key(r: &Result<SessionRecord, String>) -> (i64, String) {
    match r {
        Ok(r) => (r.created_at, r.id.clone()),
        Err(id) => (0, id.clone()),
    }
}

/// Reads one record, or fails with `session_not_found`.
pub fn load(layout: &Layout, id: &SessionId) -> Result<SessionRecord> {
    let path = layout.session_record(id);
    let bytes = fsx::read_optional(&path)?
        .ok_or_else(|| coded(ErrorCode::SessionNotFound, format!("no session {id}")))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        coded(
            ErrorCode::SessionNotFound,
            format!("the record of session {id} is damaged"),
        )
    })
}

pub fn save(layout: &Layout, record: &SessionRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record)?;
    fsx::atomic_write(
        &layout.session_record(&record.id),
        &bytes,
        fsx::PRIVATE_FILE,
    )
}

/// Removes a record and its serve lock file.
pub fn remove(layout: &Layout, id: &str) -> Result<()> {
    fsx::remove_entry(&layout.session_record(id))?;
    fsx::remove_entry(&layout.session_lock(id))
}
