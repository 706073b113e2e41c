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
use crate::ids::now_ms;
use crate::layout::{Layout, check_private_dir};
use crate::lock::{ProfileLock, StateLock};
use crate::logins;
use crate::profile::{self, CredentialSource};
use crate::protocol::{ProfileName, ProfileStatus};
use crate::runtime;
use crate::session::SessionRecord;

/// What `gc` did.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub runtimes_removed: Vec<String>,
    pub sessions_pruned: usize,
    /// Runtimes that could not be reclaimed, with why; the others were reclaimed anyway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtimes_failed: Vec<String>,
    /// Removed profiles kept aside for longer than [`REMOVED_KEPT_MS`], deleted now (their
    /// directory names under `removed/`).
    pub removed_deleted: Vec<String>,
}

/// How long a removed profile is kept aside before `gc` deletes it: 30 days.
pub const REMOVED_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;

/// How many removed profiles are kept aside at most; `profile remove` deletes the oldest
/// beyond.
const REMOVED_KEPT: usize = 8;

/// What `profile remove` did.
#[derive(Debug, Clone)]
pub struct Removed {
    /// Where the profile's directory is kept aside.
    pub kept: PathBuf,
    /// The profile had a login of its own (`credentials.json`), now in `kept`.
    pub had_login: bool,
    /// It was the home profile: its login stays in the claude home.
    pub home: bool,
}

/// What `profile restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// Where it was kept.
    pub from: PathBuf,
    pub had_login: bool,
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
    let (pruned, candidates) = {
        let _store = StateLock::acquire(layout)?;
        home::finish_switch(layout)?;
        fsx::sweep_temp(&layout.runtimes_dir());
        fsx::sweep_temp(&layout.sessions_dir());
        fsx::sweep_temp(&layout.store);
        let (live, pruned) = prune(layout)?;
        sweep_session_locks(layout)?;
        // A profile's temp files only while nobody works on it (a tick may be writing its
        // login through one); trying its lock never waits, so also under the store lock.
        for name in profile::list(layout)? {
            if check_private_dir(&layout.profile_dir(&name)).is_ok()
                && let Some(_profile) = ProfileLock::try_acquire(layout, &name)?
            {
                fsx::sweep_temp(&layout.profile_dir(&name));
            }
        }
        let mut candidates = Vec::new();
        for entry in std::fs::read_dir(layout.runtimes_dir())
            .with_context(|| format!("cannot read {}", layout.runtimes_dir().display()))?
        {
            // Temp names, trash and anything that is not a profile's name are not runtimes.
            if let Some(name) = entry?
                .file_name()
                .to_str()
                .and_then(|n| ProfileName::parse(n).ok())
                && live_of(&live, &name).next().is_none()
            {
                candidates.push(name);
            }
        }
        (pruned, candidates)
    };
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for name in candidates {
        // One runtime that cannot be reclaimed does not keep gc from the others.
        match reclaim(layout, &name) {
            Ok(true) => removed.push(name.to_string()),
            Ok(false) => {}
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    let removed_deleted = {
        let _store = StateLock::acquire(layout)?;
        prune_removed(layout, now_ms() - REMOVED_KEPT_MS, usize::MAX)?
    };
    Ok(Collected {
        runtimes_removed: removed,
        sessions_pruned: pruned,
        runtimes_failed: failed,
        removed_deleted,
    })
}

/// Tears down the runtime of `name` when no live session uses it and nobody works on the
/// profile (its lock is tried, never waited for: an acquire may be building the runtime before
/// any record names it). Each is reclaimed under its profile's lock alone, so a long final pass
/// holds up no other profile; a runtime whose profile was removed by hand has no such lock and
/// is reclaimed under the store lock. False when it was left alone.
fn reclaim(layout: &Layout, name: &ProfileName) -> Result<bool> {
    let _profile = match profile::exists(layout, name) {
        true => {
            check_private_dir(&layout.profile_dir(name))?;
            match ProfileLock::try_acquire(layout, name)? {
                Some(lock) => Some(lock),
                None => return Ok(false),
            }
        }
        false => None,
    };
    let _whole = match _profile {
        Some(_) => None,
        None => Some(StateLock::acquire(layout)?),
    };
    {
        let _store = StateLock::acquire(layout)?;
        let (live, _) = prune(layout)?;
        if live_of(&live, name).next().is_some() || !layout.runtime_dir(name).exists() {
            return Ok(false);
        }
    }
    runtime::teardown(layout, name)?;
    Ok(true)
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

/// Deletes the removed profiles kept aside since before `before` (epoch ms) and those beyond
/// the `keep` newest; returns their directory names.
fn prune_removed(layout: &Layout, before: i64, keep: usize) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for (n, (_, ms, path)) in profile::removed_all(layout)?.into_iter().enumerate() {
        if ms < before || n >= keep {
            fsx::remove_entry(&path)?;
            deleted.push(
                path.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(deleted)
}

/// Fails with `profile_busy` while `name` has a live session; `doing` ends the sentence.
fn refuse_busy(live: &[SessionRecord], name: &ProfileName, doing: &str) -> Result<()> {
    match live_of(live, name).count() {
        0 => Ok(()),
        n => Err(coded(
            ErrorCode::ProfileBusy,
            format!("profile {name} has {n} live session(s); end them before {doing}"),
        )),
    }
}

/// Removes a profile, refused while it has a live session; its idle runtime is synced first.
/// Its directory, login included, is moved aside to `removed/<name>-<ms>/`, where `profile
/// restore` finds it and `gc` deletes it after [`REMOVED_KEPT_MS`]. Removing the home profile
/// leaves its login in the claude home, where plain `claude` uses it.
///
/// A login kept aside has no place any more: nothing uses it, and no check counts it, so the
/// same login may be added to another profile meanwhile; restoring then is refused
/// (`login_in_use`), so it never has two places.
pub fn remove_profile(layout: &Layout, name: &ProfileName) -> Result<Removed> {
    let _profile = ProfileLock::acquire_if_exists(layout, name)?;
    {
        let _lock = StateLock::acquire(layout)?;
        profile::require_for(layout, name, profile::Purpose::Remove)?;
        let live = settle(layout)?;
        refuse_busy(&live, name, "removing it")?;
    }
    // The idle runtime goes under the profile's lock alone (no session can start on it
    // meanwhile), so its final pass holds up no other profile.
    runtime::teardown(layout, name)?;
    let _lock = StateLock::acquire(layout)?;
    let home = logins::is_home(layout, name)?;
    if home {
        logins::set_home_profile(layout, None)?;
    }
    let removed = profile::removed_dir(layout);
    check_private_dir(&removed)?;
    fsx::ensure_dir(&removed, fsx::PRIVATE_DIR)?;
    let mut ms = now_ms();
    while removed.join(format!("{name}-{ms}")).exists() {
        ms += 1;
    }
    let kept = removed.join(format!("{name}-{ms}"));
    let had_login = layout.profile_credentials(name).is_file();
    fsx::move_entry(&layout.profile_dir(name), &kept)?;
    prune_removed(layout, i64::MIN, REMOVED_KEPT)?;
    Ok(Removed {
        kept,
        had_login,
        home,
    })
}

/// Puts back the profile most recently removed under `name`. Refused when a profile of that
/// name exists, and when its login has a place again (the home, another profile) or was
/// spent there: one login, one place.
pub fn restore_profile(layout: &Layout, name: &ProfileName) -> Result<Restored> {
    // No lock of `name`: a profile of that name must not exist, which the store lock settles.
    let _lock = StateLock::acquire(layout)?;
    settle(layout)?;
    if profile::exists(layout, name) {
        return Err(coded(
            ErrorCode::ProfileExists,
            format!(
                "profile {name} exists; rename it first (`clauth-helper profile rename {name} OTHER`), then restore"
            ),
        ));
    }
    let Some((_, from)) = profile::removed_of(layout, name)?.into_iter().next() else {
        return Err(coded(
            ErrorCode::ProfileNotFound,
            format!(
                "no removed profile named {name} is kept aside (removed profiles are kept for 30 days)"
            ),
        ));
    };
    check_private_dir(&from)?;
    let login = fsx::read_optional(&from.join("credentials.json"))?;
    if let Some(bytes) = &login {
        home::refuse_copies(layout, name, bytes)?;
    }
    check_private_dir(&layout.profile_dir(name))?;
    fsx::move_entry(&from, &layout.profile_dir(name))?;
    Ok(Restored {
        from,
        had_login: login.is_some(),
    })
}

/// Renames a profile with everything it has (login, env, account keys, kept pairs), refused
/// during a live session; an idle runtime is synced and removed first, since its directory
/// bears the old name.
pub fn rename_profile(layout: &Layout, old: &ProfileName, new: &ProfileName) -> Result<()> {
    // `new` must not exist: only `old` is worked on.
    let _profile = ProfileLock::acquire_if_exists(layout, old)?;
    let refuse_taken = || {
        if profile::exists(layout, new) {
            return Err(coded(
                ErrorCode::ProfileExists,
                format!("profile {new} already exists; choose another name or remove it first"),
            ));
        }
        check_private_dir(&layout.profile_dir(new))
    };
    {
        let _lock = StateLock::acquire(layout)?;
        profile::require(layout, old)?;
        let live = settle(layout)?;
        refuse_busy(&live, old, "renaming it")?;
        if old == new {
            return Ok(());
        }
        refuse_taken()?;
    }
    // The idle runtime goes under the profile's lock alone (no session can start on it
    // meanwhile), so its final pass holds up no other profile.
    runtime::teardown(layout, old)?;
    let _lock = StateLock::acquire(layout)?;
    refuse_taken()?;
    let home = logins::is_home(layout, old)?;
    fsx::move_entry(&layout.profile_dir(old), &layout.profile_dir(new))?;
    if home {
        logins::set_home_profile(layout, Some(new))?;
    }
    Ok(())
}

/// What `profile set-env` / `unset-env` changed.
#[derive(Debug, Clone, Default)]
pub struct EnvChange {
    /// Variables set or removed.
    pub changed: Vec<String>,
    /// Variables asked to be removed that the profile did not set.
    pub absent: Vec<String>,
}

/// Sets the variables of `set` and removes those of `unset` in a profile's env, keeping every
/// other. Refused during a live session: its runtime's `settings.json` holds the env it was
/// built with, and a tick would take a variable the profile no longer sets for the
/// session's own and save it into the shared `~/.claude/settings.json`.
pub fn change_env(
    layout: &Layout,
    name: &ProfileName,
    set: BTreeMap<String, String>,
    unset: &[String],
) -> Result<EnvChange> {
    profile::check_env(&set)?;
    let _profile = ProfileLock::acquire(layout, name)?;
    let _lock = StateLock::acquire(layout)?;
    profile::require(layout, name)?;
    let live = settle(layout)?;
    refuse_busy(
        &live,
        name,
        "changing its env (it applies from the next session)",
    )?;
    let mut config = profile::load_config(layout, name)?;
    let mut change = EnvChange::default();
    for (k, v) in set {
        change.changed.push(k.clone());
        config.env.insert(k, v);
    }
    for k in unset {
        match config.env.remove(k) {
            Some(_) => change.changed.push(k.clone()),
            None => change.absent.push(k.clone()),
        }
    }
    profile::save_config(layout, name, &config)?;
    Ok(change)
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
    let _profile = ProfileLock::acquire_if_exists(layout, name)?;
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
    // The profiles whose logins move, the home profile among them, locked before the store.
    // Which profile is the home's is read first and checked again under the store lock; only a
    // `profile use` or a first `--from-claude` changes it, so a few tries always settle it.
    for _ in 0..5 {
        let home = logins::home_profile(layout)?;
        let names = [Some(name), save_home_as, home.as_ref()];
        let _profiles = ProfileLock::acquire_existing(layout, names.into_iter().flatten())?;
        let _lock = StateLock::acquire(layout)?;
        let live = settle(layout)?;
        // Which of them exist (so have a lock) must be what it was when they were locked.
        let existed = names
            .iter()
            .flatten()
            .filter(|n| profile::exists(layout, n))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if logins::home_profile(layout)? != home || existed != _profiles.len() {
            continue;
        }
        return home::use_profile(layout, &live, name, save_home_as);
    }
    Err(coded(
        ErrorCode::LockTimeout,
        "the home profile kept changing while `profile use` waited for it; try again",
    ))
}
