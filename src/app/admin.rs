//! Profile administration and garbage collection, under the state lock.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{live_of, prune, status};
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::Layout;
use crate::lock::StateLock;
use crate::profile::{self, CredentialSource};
use crate::protocol::{ProfileName, ProfileStatus};
use crate::runtime;

/// What `gc` did.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub runtimes_removed: Vec<String>,
    pub sessions_pruned: usize,
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
    fsx::sweep_temp(&layout.runtimes_dir());
    fsx::sweep_temp(&layout.sessions_dir());
    fsx::sweep_temp(&layout.store);
    for name in profile::list(layout)? {
        fsx::sweep_temp(&layout.profile_dir(&name));
    }
    let (live, pruned) = prune(layout)?;
    let mut removed = Vec::new();
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
        runtime::teardown(layout, &name)?;
        removed.push(name.to_string());
    }
    Ok(Collected {
        runtimes_removed: removed,
        sessions_pruned: pruned,
    })
}

/// Removes a profile, refused while it has a live session; its idle runtime is synced first.
pub fn remove_profile(layout: &Layout, name: &ProfileName) -> Result<()> {
    let _lock = StateLock::acquire(layout)?;
    profile::require(layout, name)?;
    let (live, _) = prune(layout)?;
    let n = live_of(&live, name).count();
    if n > 0 {
        return Err(coded(
            ErrorCode::ProfileBusy,
            format!("profile {name} has {n} live session(s); release them before removing it"),
        ));
    }
    runtime::teardown(layout, name)?;
    fsx::remove_entry(&layout.profile_dir(name))
}

/// Adds or replaces a profile under the state lock; replacing is refused during a live session,
/// whose refreshed tokens would otherwise race the import.
pub fn add_profile(
    layout: &Layout,
    name: &ProfileName,
    source: CredentialSource,
    env: BTreeMap<String, String>,
    replace: bool,
) -> Result<()> {
    let _lock = StateLock::acquire(layout)?;
    if replace && profile::exists(layout, name) {
        let (live, _) = prune(layout)?;
        if live_of(&live, name).next().is_some() {
            return Err(coded(
                ErrorCode::ProfileBusy,
                format!(
                    "profile {name} has a live session; release it before replacing the profile"
                ),
            ));
        }
    }
    let from_claude = matches!(source, CredentialSource::FromClaude);
    profile::add(layout, name, source, env, replace)?;
    if from_claude {
        // The home's login comes with its account keys: the profile's sessions start as the
        // same account (Claude Code would otherwise look it up again).
        runtime::import_account(layout, name)?;
    }
    Ok(())
}
