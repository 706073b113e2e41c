//! The top-level directories of a runtime that belong to the profile rather than the claude
//! home ([`PER_PROFILE`]): linked into the profile's own directory in real mode, copied in and
//! moved back in fake mode.

use std::path::Path;

use anyhow::{Context, Result};

use super::names::PER_PROFILE;
use crate::fsx;
use crate::layout::Layout;
use crate::platform;

/// Real mode: the per-profile directories are links into the profile's own. One that Claude
/// Code replaced is moved into the profile (its entries win) and linked again.
pub fn link(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
    for name in PER_PROFILE {
        let target = layout.profile_dir(profile).join(name);
        fsx::ensure_dir(&target, fsx::PRIVATE_DIR)?;
        let link = cfg.join(name);
        match fsx::lstat_optional(&link)? {
            None => platform::symlink(&target, &link)
                .with_context(|| format!("cannot link {}", link.display()))?,
            Some(m)
                if m.file_type().is_symlink()
                    && std::fs::read_link(&link).ok().as_deref() == Some(&target) => {}
            Some(_) => {
                move_into(&link, &target)?;
                fsx::replace_with_symlink(&target, &link)?;
            }
        }
    }
    Ok(())
}

/// Moves what `from` holds into directory `into` (entries of `from` win), then removes `from`.
fn move_into(from: &Path, into: &Path) -> Result<()> {
    if std::fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
        for entry in
            std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
        {
            let entry = entry?;
            let dst = into.join(entry.file_name());
            fsx::remove_entry(&dst)?;
            fsx::move_entry(&entry.path(), &dst)?;
        }
    }
    fsx::remove_entry(from)
}

/// Fake mode: the per-profile directories are copied in when the runtime is built...
pub fn copy_in(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
    for name in PER_PROFILE {
        let source = layout.profile_dir(profile).join(name);
        if source.is_dir() {
            fsx::copy_tree(&source, &cfg.join(name))?;
        }
    }
    Ok(())
}

/// ...and go back to the profile when it is torn down.
pub fn move_back(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
    for name in PER_PROFILE {
        let here = cfg.join(name);
        if fsx::lstat_optional(&here)?.is_some() {
            let target = layout.profile_dir(profile).join(name);
            fsx::ensure_dir(&target, fsx::PRIVATE_DIR)?;
            move_into(&here, &target)?;
        }
    }
    Ok(())
}
