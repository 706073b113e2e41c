//! Credentials in a runtime: saving what Claude Code refreshed or logged in, and putting the
//! profile's canonical file back in place.
//!
//! The rule that protects a login: what Claude Code writes in the login's place is its newest
//! state, so a valid pair a session wrote is saved, whatever its expiry; only a stale copy (a
//! refresh token the profile held before) and an unusable document are refused.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::SyncReport;
use crate::credentials;
use crate::fsx::{self, Stamp};
use crate::logins;
use crate::platform;

/// What the fake-mode reconciler last saw, so an unchanged pair is not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CredSync {
    pub runtime: Option<Stamp>,
    pub canonical: Option<Stamp>,
    /// A digest of the bytes this sync last placed in the runtime: with coarse file times a
    /// stamp alone could match a copy Claude Code rewrote.
    #[serde(default)]
    pub placed: Option<String>,
}

fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Saves `bytes`, which Claude Code wrote in the runtime, as the profile's canonical login when
/// they are valid: what a session writes is the login's newest state, whatever its clock says.
/// Only a pair whose refresh token the profile held before is refused, since it is a stale copy
/// written back. The pair it replaces, when it is another login, is kept aside. Returns whether
/// the runtime's document is the one to keep.
pub(super) fn save_session_pair(
    bytes: &[u8],
    canonical: &Path,
    report: &mut SyncReport,
) -> Result<bool> {
    if let Err(why) = credentials::validate(bytes) {
        report.credentials_rejected =
            Some(format!("the session's credentials were not saved: {why}"));
        return Ok(false);
    }
    let current = fsx::read_optional(canonical)?;
    if current.as_deref() == Some(bytes) {
        return Ok(true);
    }
    let dir = canonical
        .parent()
        .context("the credentials file has no directory")?;
    let candidate = credentials::fingerprint(bytes);
    let current_fp = current.as_deref().and_then(credentials::fingerprint);
    if let Some(fp) = &candidate
        && current_fp.as_ref() != Some(fp)
        && logins::held_before(dir, fp)?
    {
        report.credentials_rejected = Some(
            "the session wrote back a login this profile already replaced (its refresh token is spent), so the profile's current login was kept".into(),
        );
        return Ok(false);
    }
    if let Some(old) = &current
        && credentials::validate(old).is_ok()
        && current_fp != candidate
    {
        // A refresh spends the old token; a /login leaves the old login alive. Which it was
        // cannot be told, so the replaced pair is kept aside, and remembered as replaced.
        logins::keep_aside(dir, "replaced", old)?;
        if let Some(fp) = &current_fp {
            logins::forget(dir, fp)?;
        }
    }
    fsx::atomic_write(canonical, bytes, fsx::PRIVATE_FILE)?;
    report.credentials_saved = true;
    Ok(true)
}

/// Looks at what a killed process left at the top of a runtime under temp names (what an
/// exchange took out, a prepared link or copy): valid credentials among them are offered to
/// the profile like any refresh, and the rest is removed. Entries taken out for adoption are
/// left to `real::recover`. Runs under the profile's lock, so no live clauth-helper owns them.
pub fn recover(cfg: &Path, canonical: &Path, report: &mut SyncReport) -> Result<()> {
    let adopt = format!("{}adopt-", fsx::TEMP_PREFIX);
    for entry in fs::read_dir(cfg).with_context(|| format!("cannot read {}", cfg.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(fsx::TEMP_PREFIX) || name.starts_with(&adopt) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_file())
            && let Some(bytes) = fsx::read_optional(&path)?
            && credentials::validate(&bytes).is_ok()
        {
            save_session_pair(&bytes, canonical, report)?;
        }
        fsx::remove_entry(&path)?;
    }
    Ok(())
}

/// Real mode: the runtime's `.credentials.json` is a symlink to the canonical file.
pub fn place_real(canonical: &Path, runtime_file: &Path) -> Result<()> {
    if canonical.exists() {
        platform::symlink(canonical, runtime_file)
            .with_context(|| format!("cannot link {}", runtime_file.display()))?;
    }
    Ok(())
}

/// Reads a file through one descriptor: its bytes and the stamp of exactly what was read (a
/// rename over the path afterwards gives a different stamp). `None` when nothing is there.
fn read_stamped(path: &Path) -> Result<Option<(Vec<u8>, Stamp)>> {
    let mut file = match fsx::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let stamp = Stamp::of(
        &file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?,
    );
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some((bytes, stamp)))
}

/// Puts `prepared` (a temp sibling: a link or a copy of the canonical file) at `runtime_file`
/// in one exchange. Whatever the exchange took out is looked at: when it is not the document
/// already handled (`handled`), Claude Code wrote it meanwhile, and it is saved like any refresh.
/// So a refresh that lands while a tick is at work is never overwritten unseen.
fn swap_in(
    prepared: &Path,
    runtime_file: &Path,
    canonical: &Path,
    handled: Option<Stamp>,
    report: &mut SyncReport,
) -> Result<()> {
    let took_out = platform::exchange(prepared, runtime_file)
        .with_context(|| format!("cannot replace {}", runtime_file.display()))?;
    if took_out {
        if let Some(meta) = fsx::lstat_optional(prepared)?
            && meta.is_file()
            && Some(Stamp::of(&meta)) != handled
            && let Some(bytes) = fsx::read_optional(prepared)?
        {
            save_session_pair(&bytes, canonical, report)?;
        }
        fsx::remove_entry(prepared)?;
    }
    Ok(())
}

/// Real mode: a regular file where the link was is what Claude Code wrote by rename.
pub fn sync_real(canonical: &Path, runtime_file: &Path, report: &mut SyncReport) -> Result<()> {
    let meta = fsx::lstat_optional(runtime_file)?;
    let handled = match meta {
        Some(m)
            if m.file_type().is_symlink()
                && fs::read_link(runtime_file).ok().as_deref() == Some(canonical) =>
        {
            return Ok(());
        }
        Some(m) if m.is_file() => {
            let Some((bytes, stamp)) = read_stamped(runtime_file)? else {
                return Ok(());
            };
            let valid = credentials::validate(&bytes).is_ok();
            save_session_pair(&bytes, canonical, report)?;
            if !valid {
                // An unusable document stays where Claude Code put it; the canonical file is kept.
                return Ok(());
            }
            Some(stamp)
        }
        Some(_) => return Ok(()),
        None => None,
    };
    if canonical.exists() {
        let dir = runtime_file
            .parent()
            .context("the credentials file has no directory")?;
        let link = fsx::unique_sibling(dir, "link");
        platform::symlink(canonical, &link)
            .with_context(|| format!("cannot create a link in {}", dir.display()))?;
        swap_in(&link, runtime_file, canonical, handled, report)?;
    }
    Ok(())
}

/// Fake mode: a copy at acquire.
pub fn place_fake(canonical: &Path, runtime_file: &Path, state: &mut CredSync) -> Result<()> {
    if canonical.exists() {
        fsx::copy_file_atomic(canonical, runtime_file, Some(fsx::PRIVATE_FILE))?;
    }
    state.runtime = Stamp::at(runtime_file)?;
    state.canonical = Stamp::at(canonical)?;
    state.placed = fsx::read_optional(runtime_file)?.map(|b| digest(&b));
    Ok(())
}

/// Fake mode: the newest valid of the copy and the canonical file wins, on both sides. Returns
/// whether `state` changed.
pub fn sync_fake(
    canonical: &Path,
    runtime_file: &Path,
    state: &mut CredSync,
    report: &mut SyncReport,
) -> Result<bool> {
    let runtime_now = Stamp::at(runtime_file)?;
    let canonical_now = Stamp::at(canonical)?;
    if runtime_now == state.runtime && canonical_now == state.canonical {
        return Ok(false);
    }
    // The stamp recorded is the one of the bytes read, so a refresh that lands after the read
    // is seen by the next tick.
    let read = read_stamped(runtime_file)?;
    let (keep_runtime, runtime_invalid, handled) = match &read {
        // The copy this sync placed, unchanged: only the profile's login moved on (a refresh
        // saved from the Keychain item, a recovered leftover); the session gets the new one.
        Some((bytes, stamp))
            if Some(*stamp) == state.runtime
                && state.placed.as_deref() == Some(digest(bytes).as_str()) =>
        {
            (false, false, Some(*stamp))
        }
        Some((bytes, stamp)) => (
            save_session_pair(bytes, canonical, report)?,
            credentials::validate(bytes).is_err(),
            Some(*stamp),
        ),
        None => (false, false, None),
    };
    state.runtime = handled;
    if !keep_runtime && !runtime_invalid && canonical.exists() {
        // Missing or stale in the runtime: hand the session the canonical credentials.
        let dir = runtime_file
            .parent()
            .context("the credentials file has no directory")?;
        let copy = fsx::unique_sibling(dir, "copy");
        fsx::copy_file_atomic(canonical, &copy, Some(fsx::PRIVATE_FILE))?;
        let placed = Stamp::at(&copy)?;
        state.placed = fsx::read_optional(&copy)?.map(|b| digest(&b));
        let saved_before = report.credentials_saved;
        swap_in(&copy, runtime_file, canonical, handled, report)?;
        state.runtime = placed;
        if report.credentials_saved && !saved_before {
            // A refresh landed during the swap and was saved: the copy just placed is not it,
            // so the next tick must hand the session the new canonical file.
            state.canonical = None;
            return Ok(true);
        }
    }
    state.canonical = Stamp::at(canonical)?;
    Ok(true)
}
