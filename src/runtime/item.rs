//! The runtime's Keychain item, where the Keychain is in use: Claude Code reads it before
//! `.credentials.json` and moves a seeded file into it on its first write, so a refresh lands
//! there. It is seeded at acquire, read by every tick like the file (the same rule decides
//! what is saved), and deleted at teardown.

use std::path::Path;

use anyhow::Result;

use super::SyncReport;
use super::creds;
use crate::credentials;
use crate::fsx;
use crate::keychain::{self, Keychain};
use crate::layout::Layout;

/// The item's service: the one Claude Code derives from the `CLAUDE_CONFIG_DIR` it is given.
pub fn service(layout: &Layout, profile: &str) -> String {
    keychain::service_for(Some(layout.runtime_config_dir(profile).as_os_str()))
}

/// Replaces whatever item has the runtime's name (a stale one would shadow the seeded file)
/// with the profile's login.
pub fn seed(kc: &Keychain, service: &str, canonical: &Path) -> Result<()> {
    kc.delete(service)?;
    if let Some(bytes) = fsx::read_optional(canonical)? {
        kc.write(service, &bytes)?;
    }
    Ok(())
}

/// Removes an item whose runtime is gone, keeping a valid login it holds aside in the profile
/// (`credentials.keychain-<ms>.json`) unless it is the profile's own.
pub fn salvage(kc: &Keychain, service: &str, canonical: &Path) -> Result<()> {
    if let Some(bytes) = kc.read(service)? {
        if credentials::validate(&bytes).is_ok()
            && fsx::read_optional(canonical)?.as_deref() != Some(bytes.as_slice())
            && let Some(dir) = canonical.parent()
        {
            crate::logins::keep_aside(dir, "keychain", &bytes)?;
        }
        kc.delete(service)?;
    }
    Ok(())
}

/// Saves what Claude Code wrote in the item, by the rule of every session write; a stale copy
/// there is replaced by the profile's login, a missing item seeded again.
pub fn sync(kc: &Keychain, service: &str, canonical: &Path, report: &mut SyncReport) -> Result<()> {
    let current = fsx::read_optional(canonical)?;
    match kc.read(service)? {
        None => {
            if let Some(bytes) = &current {
                kc.write(service, bytes)?;
            }
        }
        Some(bytes) if Some(&bytes) == current.as_ref() => {}
        Some(bytes) => {
            let kept = creds::save_session_pair(&bytes, canonical, report)?;
            // An unusable document stays where Claude Code put it, as with the file.
            if !kept
                && credentials::validate(&bytes).is_ok()
                && let Some(profile_login) = fsx::read_optional(canonical)?
            {
                kc.write(service, &profile_login)?;
            }
        }
    }
    Ok(())
}
