//! Credentials in a runtime: saving what Claude Code refreshed or logged in, and putting the
//! profile's canonical file back in place.
//!
//! The rule that protects a login: valid credentials never give way to invalid or older ones.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::SyncReport;
use crate::credentials::{self, Summary};
use crate::fsx::{self, Stamp};
use crate::platform;

/// What the fake-mode reconciler last saw, so an unchanged pair is not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CredSync {
    pub runtime: Option<Stamp>,
    pub canonical: Option<Stamp>,
}

fn summary(bytes: Option<&[u8]>) -> Option<Summary> {
    bytes.and_then(|b| credentials::validate(b).ok())
}

/// Saves `bytes` as the canonical credentials when they are valid and not older than what is
/// there. Returns whether the runtime's document is the one to keep.
fn save_if_newer(bytes: &[u8], canonical: &Path, report: &mut SyncReport) -> Result<bool> {
    let candidate = match credentials::validate(bytes) {
        Ok(s) => s,
        Err(why) => {
            report.credentials_rejected =
                Some(format!("the session's credentials were not saved: {why}"));
            return Ok(false);
        }
    };
    let current_bytes = fsx::read_optional(canonical)?;
    if current_bytes.as_deref() == Some(bytes) {
        return Ok(true);
    }
    if !credentials::may_replace(&candidate, summary(current_bytes.as_deref()).as_ref()) {
        report.credentials_rejected = Some(
            "the session's credentials expire before the saved ones and were not saved".into(),
        );
        return Ok(false);
    }
    fsx::atomic_write(canonical, bytes, fsx::PRIVATE_FILE)?;
    report.credentials_saved = true;
    Ok(true)
}

/// Real mode: the runtime's `.credentials.json` is a symlink to the canonical file.
pub fn place_real(canonical: &Path, runtime_file: &Path) -> Result<()> {
    if canonical.exists() {
        platform::symlink(canonical, runtime_file)
            .with_context(|| format!("cannot link {}", runtime_file.display()))?;
    }
    Ok(())
}

/// Real mode: a regular file where the link was is what Claude Code wrote by rename.
pub fn sync_real(canonical: &Path, runtime_file: &Path, report: &mut SyncReport) -> Result<()> {
    let meta = fsx::lstat_optional(runtime_file)?;
    match meta {
        Some(m)
            if m.file_type().is_symlink()
                && fs::read_link(runtime_file).ok().as_deref() == Some(canonical) =>
        {
            return Ok(());
        }
        Some(m) if m.is_file() => {
            let bytes = fs::read(runtime_file)
                .with_context(|| format!("cannot read {}", runtime_file.display()))?;
            let valid = credentials::validate(&bytes).is_ok();
            save_if_newer(&bytes, canonical, report)?;
            if !valid {
                // An unusable document stays where Claude Code put it; the canonical file is kept.
                return Ok(());
            }
        }
        Some(_) => return Ok(()),
        None => {}
    }
    if canonical.exists() {
        fsx::replace_with_symlink(canonical, runtime_file)?;
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
    let runtime_bytes = fsx::read_optional(runtime_file)?;
    let keep_runtime = match &runtime_bytes {
        Some(bytes) => save_if_newer(bytes, canonical, report)?,
        None => false,
    };
    let runtime_invalid = runtime_bytes
        .as_deref()
        .is_some_and(|b| credentials::validate(b).is_err());
    if !keep_runtime && !runtime_invalid && canonical.exists() {
        // Missing or older in the runtime: hand the session the canonical credentials.
        fsx::copy_file_atomic(canonical, runtime_file, Some(fsx::PRIVATE_FILE))?;
    }
    state.runtime = Stamp::at(runtime_file)?;
    state.canonical = Stamp::at(canonical)?;
    Ok(true)
}
