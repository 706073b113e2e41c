//! Profile administration and garbage collection, under the state lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::home::{self, Used};
use super::{live_of, prune, settle, status};
use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::{Layout, check_private_dir};
use crate::lock::StateLock;
use crate::logins;
use crate::profile::{self, CredentialSource};
use crate::protocol::{ProfileName, ProfileStatus};
use crate::runtime;

/// What `gc` did.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub runtimes_removed: Vec<String>,
    pub sessions_pruned: usize,
    /// Runtimes that could not be reclaimed, with why; the others were reclaimed anyway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtimes_failed: Vec<String>,
}

/// The status of one profile, for `profile show` and `profile add`.
pub fn profile_status(layout: &Layout, name: &ProfileName) -> Result<ProfileStatus> {
    status(layout, Some(name))?
        .profiles
        .into_iter()
        .next()
        .context("profile vanished")
}

/// Reclaims runtimes that no live session uses, after a final sync, and sweeps the temp files
/// and trash that crashed processes left in the store.
pub fn gc(layout: &Layout) -> Result<Collected> {
    let _lock = StateLock::acquire(layout)?;
    home::finish_switch(layout)?;
    fsx::sweep_temp(&layout.runtimes_dir());
    fsx::sweep_temp(&layout.sessions_dir());
    fsx::sweep_temp(&layout.store);
    for name in profile::list(layout)? {
        fsx::sweep_temp(&layout.profile_dir(&name));
    }
    let (live, pruned) = prune(layout)?;
    sweep_session_locks(layout)?;
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(layout.runtimes_dir())
        .with_context(|| format!("cannot read {}", layout.runtimes_dir().display()))?
    {
        let entry = entry?;
        // Temp names, trash and anything that is not a profile's name are not runtimes.
        let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| ProfileName::parse(n).ok())
        else {
            continue;
        };
        if live_of(&live, &name).next().is_some() {
            continue;
        }
        // One runtime that cannot be reclaimed does not keep gc from the others.
        match runtime::teardown(layout, &name) {
            Ok(_) => removed.push(name.to_string()),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    Ok(Collected {
        runtimes_removed: removed,
        sessions_pruned: pruned,
        runtimes_failed: failed,
    })
}

/// Removes hold locks that no session record names and no process holds: a `serve` or `run`
/// killed between creating its lock and writing the record leaves one.
fn sweep_session_locks(layout: &Layout) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(layout.sessions_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        if layout.session_record(id).exists() {
            continue;
        }
        let file = crate::session::open_lock(layout, id)?;
        if file.try_lock().is_ok() {
            fsx::remove_entry(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a profile, refused while it has a live session; its idle runtime is synced first.
/// Removing the home profile leaves its login in the claude home, where plain `claude` uses it.
pub fn remove_profile(layout: &Layout, name: &ProfileName) -> Result<()> {
    let _lock = StateLock::acquire(layout)?;
    profile::require(layout, name)?;
    let live = settle(layout)?;
    let n = live_of(&live, name).count();
    if n > 0 {
        return Err(coded(
            ErrorCode::ProfileBusy,
            format!("profile {name} has {n} live session(s); release them before removing it"),
        ));
    }
    if logins::is_home(layout, name)? {
        logins::set_home_profile(layout, None)?;
    }
    runtime::teardown(layout, name)?;
    fsx::remove_entry(&layout.profile_dir(name))
}

/// Adds or replaces a profile under the state lock; replacing is refused during a live session,
/// whose refreshed tokens would otherwise race the import. A login that already has a place
/// (the home, another profile) is refused: one login, one place. Returns where a replaced
/// login was kept aside.
pub fn add_profile(
    layout: &Layout,
    name: &ProfileName,
    source: CredentialSource,
    env: BTreeMap<String, String>,
    replace: bool,
) -> Result<Option<PathBuf>> {
    // Bad input is refused before anything is touched.
    profile::check_env(&env)?;
    if let CredentialSource::Bytes(bytes) = &source {
        profile::check_credentials(bytes)?;
    }
    let _lock = StateLock::acquire(layout)?;
    // A profile directory that is a link or someone else's receives nothing, not even an aside.
    check_private_dir(&layout.profile_dir(name))?;
    let live = settle(layout)?;
    let exists = profile::exists(layout, name);
    if replace && exists && live_of(&live, name).next().is_some() {
        return Err(coded(
            ErrorCode::ProfileBusy,
            format!("profile {name} has a live session; release it before replacing the profile"),
        ));
    }
    if exists && !replace {
        return Err(coded(
            ErrorCode::ProfileExists,
            format!("profile {name} already exists; pass --replace to update it"),
        ));
    }
    let bytes = match source {
        CredentialSource::FromClaude => return home::adopt_home_login(layout, name, env, replace),
        CredentialSource::None => None,
        CredentialSource::Bytes(bytes) => Some(bytes),
    };
    let mut aside = None;
    if let Some(bytes) = &bytes {
        home::refuse_copies(layout, name, bytes)?;
        if exists {
            runtime::teardown(layout, name)?;
            if logins::is_home(layout, name)? {
                // The home login stays where it is, now nobody's profile; this one gets its own.
                logins::set_home_profile(layout, None)?;
            }
            if let Some(own) = profile::read_credentials(layout, name)?
                && credentials::fingerprint(&own) != credentials::fingerprint(bytes)
            {
                // Replaced by the user, not by a refresh: still alive, so kept aside and not
                // counted as spent (it can be restored with --replace).
                let dir = layout.profile_dir(name);
                aside = Some(logins::keep_aside(&dir, "replaced", &own)?);
            }
        }
    }
    profile::add(layout, name, bytes, env, replace)?;
    Ok(aside)
}

/// `profile use`: makes `name`'s login the home login, moving logins, never copying them.
pub fn use_profile(
    layout: &Layout,
    name: &ProfileName,
    save_home_as: Option<&ProfileName>,
) -> Result<Used> {
    let _lock = StateLock::acquire(layout)?;
    let live = settle(layout)?;
    home::use_profile(layout, &live, name, save_home_as)
}
