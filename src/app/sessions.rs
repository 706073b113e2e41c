//! The session verbs: acquire (plain and held by this process), tick, release and status.

use std::collections::BTreeMap;
use std::fs::File;

use anyhow::Result;

use super::{live_of, prune};
use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::ids::now_ms;
use crate::layout::Layout;
use crate::lock::StateLock;
use crate::platform;
use crate::profile;
use crate::protocol::{
    AcquireRequest, Acquired, LinkMode, LinkModeRequest, ProfileName, ProfileStatus, Released,
    RuntimeInfo, SessionId, SessionInfo, Status, Ticked,
};
use crate::runtime::{self, TickCache};
use crate::session::{self, SessionRecord};

/// Starts a session of a profile, building its runtime when it has no live session.
pub fn acquire(layout: &Layout, request: &AcquireRequest) -> Result<Acquired> {
    acquire_as(layout, request, None)
}

/// A session this process holds (`serve`, `run`): a lock on `sessions/<id>.lock` that the
/// kernel releases when the last process holding it dies, so the session ends with it.
/// Dropping it ends the hold (not the record: release does).
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

/// Acquires a session held by this process.
pub fn acquire_held(layout: &Layout, request: &AcquireRequest) -> Result<Held> {
    // Nothing is created before the store is known to be sound.
    layout.ensure_store()?;
    let id = session::new_id();
    let path = layout.session_lock(&id);
    let lock = session::open_lock(layout, &id)?;
    if lock.try_lock().is_err() {
        return Err(coded(
            ErrorCode::Io,
            format!("the new session lock {} is already held", path.display()),
        ));
    }
    match acquire_as(layout, request, Some(id)) {
        Ok(acquired) => Ok(Held { acquired, lock }),
        Err(e) => {
            drop(lock);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// `CLAUTH_LINK_MODE`, checked on every acquire whether or not a runtime is built.
fn env_link_mode(layout: &Layout) -> Result<Option<LinkModeRequest>> {
    match &layout.link_mode_env {
        None => Ok(None),
        Some(v) => LinkModeRequest::parse(v).map(Some).ok_or_else(|| {
            coded(
                ErrorCode::InvalidRequest,
                format!("CLAUTH_LINK_MODE must be auto, real or fake, not {v:?}"),
            )
        }),
    }
}

fn acquire_as(
    layout: &Layout,
    request: &AcquireRequest,
    held: Option<SessionId>,
) -> Result<Acquired> {
    let AcquireRequest {
        profile: name,
        owner_pid,
        lease_ms,
        link_mode,
    } = request;
    let _lock = StateLock::acquire(layout)?;
    profile::require(layout, name)?;
    layout.require_claude_home()?;
    let owner_start = match owner_pid {
        None => None,
        Some(pid) => Some(platform::process_start_time(*pid).ok_or_else(|| {
            coded(
                ErrorCode::InvalidRequest,
                format!("owner_pid {pid} is not a running process"),
            )
        })?),
    };
    let env_mode = env_link_mode(layout)?;
    let (live, _) = prune(layout)?;
    let existing = match live_of(&live, name).next() {
        // Live sessions use this runtime: it is never rebuilt under them, even when its state
        // cannot be read.
        Some(_) => Some(runtime::load_state(layout, name)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the runtime of profile {name} has live sessions but its state {} cannot be read; release them, then acquire again",
                layout.runtime_state(name).display()
            )
        })?),
        None => None,
    };
    let mode = match existing {
        Some(state) => {
            // Only a mode the request names can conflict; CLAUTH_LINK_MODE is a default for
            // new runtimes.
            let wanted = match link_mode {
                Some(LinkModeRequest::Real) => Some(LinkMode::Real),
                Some(LinkModeRequest::Fake) => Some(LinkMode::Fake),
                _ => None,
            };
            if let Some(wanted) = wanted
                && wanted != state.link_mode
            {
                return Err(coded(
                    ErrorCode::LinkModeConflict,
                    format!(
                        "profile {name} has a live runtime in {} mode; {} mode was asked for",
                        state.link_mode.as_str(),
                        wanted.as_str()
                    ),
                ));
            }
            state.link_mode
        }
        None => {
            let asked = link_mode.or(env_mode).unwrap_or(LinkModeRequest::Auto);
            let mode = runtime::decide_mode(asked, &layout.runtimes_dir());
            fsx::sweep_temp(&layout.runtimes_dir());
            runtime::teardown(layout, name)?;
            if let Err(e) = runtime::build(layout, name, mode) {
                // A half-built runtime holds links and copies only; the home is untouched.
                let _ = fsx::remove_entry(&layout.runtime_dir(name));
                return Err(e);
            }
            mode
        }
    };
    let now = now_ms();
    let mut record = SessionRecord {
        id: held.as_ref().unwrap_or(&session::new_id()).to_string(),
        profile: name.to_string(),
        created_at: now,
        owner_pid: *owner_pid,
        owner_start,
        lease_ms: *lease_ms,
        lease_expires_at: None,
        held: held.is_some(),
    };
    record.renew(now);
    session::save(layout, &record)?;
    let config_dir = layout.runtime_config_dir(name);
    Ok(Acquired {
        session: record.id,
        profile: name.to_string(),
        env: BTreeMap::from([(
            "CLAUDE_CONFIG_DIR".to_owned(),
            config_dir.to_string_lossy().into_owned(),
        )]),
        config_dir,
        link_mode: mode,
        env_remove: profile::env_to_remove(&profile::load_config(layout, name)?),
        lease_expires_at: record.lease_expires_at,
    })
}

/// One reconciliation pass for a session's runtime; renews its lease.
pub fn tick(layout: &Layout, id: &SessionId) -> Result<Ticked> {
    tick_with(layout, id, &mut TickCache::default())
}

/// A tick that keeps what it learned in `cache` for the next tick of the same runtime.
pub fn tick_with(layout: &Layout, id: &SessionId, cache: &mut TickCache) -> Result<Ticked> {
    let _lock = StateLock::acquire(layout)?;
    prune(layout)?;
    let mut record = session::load(layout, id)?;
    let report = runtime::sync(layout, &record.profile, cache)?;
    if record.lease_ms.is_some() {
        record.renew(now_ms());
        session::save(layout, &record)?;
    }
    Ok(Ticked {
        session: record.id,
        lease_expires_at: record.lease_expires_at,
        report,
    })
}

/// Ends a session: a final sync, and teardown when it was the profile's last live session.
pub fn release(layout: &Layout, id: &SessionId) -> Result<Released> {
    let _lock = StateLock::acquire(layout)?;
    // Load before pruning, so a session whose lease just ran out can still be released cleanly.
    let record = session::load(layout, id)?;
    let (live, _) = prune(layout)?;
    let remaining = live_of(&live, &record.profile)
        .filter(|r| r.id != record.id)
        .count();
    let (report, removed) = if remaining == 0 {
        (runtime::teardown(layout, &record.profile)?, true)
    } else {
        (
            runtime::sync(layout, &record.profile, &mut TickCache::default())?,
            false,
        )
    };
    session::remove(layout, &record.id)?;
    Ok(Released {
        session: record.id,
        runtime_removed: removed,
        remaining_sessions: remaining,
        report,
    })
}

/// Profiles with their live sessions, runtimes and a redacted credentials summary.
pub fn status(layout: &Layout, only: Option<&ProfileName>) -> Result<Status> {
    let _lock = StateLock::acquire(layout)?;
    if let Some(name) = only {
        profile::require(layout, name)?;
    }
    let (live, _) = prune(layout)?;
    let names = match only {
        Some(name) => vec![name.clone()],
        None => profile::list(layout)?,
    };
    let mut profiles = Vec::new();
    for name in names {
        profiles.push(status_of(layout, &name, &live)?);
    }
    Ok(Status { profiles })
}

fn status_of(layout: &Layout, name: &ProfileName, live: &[SessionRecord]) -> Result<ProfileStatus> {
    let sessions: Vec<SessionInfo> = live_of(live, name)
        .map(|r| SessionInfo {
            session: r.id.clone(),
            created_at: r.created_at,
            owner_pid: r.owner_pid,
            lease_expires_at: r.lease_expires_at,
            held: r.held,
        })
        .collect();
    let runtime = runtime::load_state(layout, name)?.map(|state| RuntimeInfo {
        config_dir: layout.runtime_config_dir(name),
        link_mode: state.link_mode,
        orphaned: sessions.is_empty(),
    });
    let credentials = credentials::report(profile::read_credentials(layout, name)?.as_deref());
    Ok(ProfileStatus {
        name: name.to_string(),
        sessions,
        runtime,
        credentials,
    })
}
