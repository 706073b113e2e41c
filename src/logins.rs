//! Where each login lives. A login (a refresh-token family) has exactly one place: the claude
//! home, one profile's runtime, or the profile's store entry. This module knows which profile
//! the home login belongs to, the fingerprints of the refresh tokens each profile held before,
//! and which place holds a given login, so that nothing writes a second copy of one.
//!
//! Logins are named by [`credentials::fingerprint`], never by a token.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::credentials;
use crate::fsx;
use crate::ids::now_ms;
use crate::keychain;
use crate::layout::Layout;
use crate::profile;
use crate::protocol::ProfileName;

/// How many past fingerprints a profile remembers.
const HISTORY: usize = 64;

/// How many replaced or rejected pairs a profile keeps aside.
const ASIDE: usize = 3;

#[derive(Debug, Default, Serialize, Deserialize)]
struct HomeRecord {
    profile: Option<String>,
}

/// The profile whose login is the claude home's own, if any.
pub fn home_profile(layout: &Layout) -> Result<Option<ProfileName>> {
    let Some(bytes) = fsx::read_optional(&layout.home_record())? else {
        return Ok(None);
    };
    let record: HomeRecord = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(record
        .profile
        .and_then(|n| ProfileName::parse(&n).ok())
        .filter(|n| profile::exists(layout, n)))
}

/// Records (or, with `None`, clears) the home profile.
pub fn set_home_profile(layout: &Layout, name: Option<&ProfileName>) -> Result<()> {
    match name {
        None => fsx::remove_entry(&layout.home_record()),
        Some(n) => fsx::atomic_write(
            &layout.home_record(),
            &serde_json::to_vec_pretty(&HomeRecord {
                profile: Some(n.to_string()),
            })?,
            fsx::PRIVATE_FILE,
        ),
    }
}

/// Whether `name` is the home profile.
pub fn is_home(layout: &Layout, name: &str) -> Result<bool> {
    Ok(home_profile(layout)?.is_some_and(|h| h.as_str() == name))
}

/// The home login as Claude Code reads it: the unsuffixed Keychain item first where the
/// Keychain is in use, else `~/.claude/.credentials.json`. Not validated.
pub fn read_home_login(layout: &Layout) -> Result<Option<Vec<u8>>> {
    if let Some(kc) = &layout.keychain
        && let Some(bytes) = kc.read(&keychain::service_for(None))?
    {
        return Ok(Some(bytes));
    }
    fsx::read_optional(&layout.home_credentials())
}

/// Puts `bytes` as the home login (or, with `None`, removes it), in the one place Claude Code
/// reads it from: the Keychain item where the Keychain is in use (and no file beside it, which
/// would be a second copy), else the file.
pub fn write_home_login(layout: &Layout, bytes: Option<&[u8]>) -> Result<()> {
    if let Some(kc) = &layout.keychain {
        let service = keychain::service_for(None);
        match bytes {
            Some(b) => kc.write(&service, b)?,
            None => kc.delete(&service)?,
        }
        return fsx::remove_entry(&layout.home_credentials());
    }
    match bytes {
        Some(b) => fsx::atomic_write(&layout.home_credentials(), b, fsx::PRIVATE_FILE),
        None => fsx::remove_entry(&layout.home_credentials()),
    }
}

/// The bytes of the home login, when the claude home holds usable credentials.
pub fn home_login(layout: &Layout) -> Result<Option<Vec<u8>>> {
    Ok(read_home_login(layout)?.filter(|b| credentials::validate(b).is_ok()))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    #[serde(default)]
    past: Vec<String>,
}

fn history_path(profile_dir: &Path) -> PathBuf {
    profile_dir.join("logins.json")
}

fn load_history(profile_dir: &Path) -> Result<History> {
    Ok(fsx::read_optional(&history_path(profile_dir))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Whether the profile in `profile_dir` held the login `fingerprint` before (its refresh token
/// was replaced, so any copy of it is stale).
pub fn held_before(profile_dir: &Path, fingerprint: &str) -> Result<bool> {
    Ok(load_history(profile_dir)?
        .past
        .iter()
        .any(|f| f == fingerprint))
}

/// Remembers that the profile in `profile_dir` no longer holds `fingerprint`.
pub fn forget(profile_dir: &Path, fingerprint: &str) -> Result<()> {
    let mut history = load_history(profile_dir)?;
    if history.past.iter().any(|f| f == fingerprint) {
        return Ok(());
    }
    history.past.push(fingerprint.to_owned());
    let excess = history.past.len().saturating_sub(HISTORY);
    history.past.drain(..excess);
    fsx::atomic_write(
        &history_path(profile_dir),
        &serde_json::to_vec_pretty(&history)?,
        fsx::PRIVATE_FILE,
    )
}

/// Keeps `bytes` aside in `profile_dir` as `credentials.<what>-<ms>.json`, dropping the oldest
/// beyond the few kept. Returns the path written.
pub fn keep_aside(profile_dir: &Path, what: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = profile_dir.join(format!("credentials.{what}-{}.json", now_ms()));
    fsx::atomic_write(&path, bytes, fsx::PRIVATE_FILE)?;
    let mut kept: Vec<(String, PathBuf)> = std::fs::read_dir(profile_dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = name
                .strip_prefix("credentials.")?
                .strip_suffix(".json")?
                .rsplit_once('-')?
                .1
                .to_owned();
            Some((format!("{stamp:0>20}"), e.path()))
        })
        .collect();
    kept.sort();
    let excess = kept.len().saturating_sub(ASIDE);
    for (_, old) in kept.into_iter().take(excess) {
        fsx::remove_entry(&old)?;
    }
    Ok(path)
}

/// Who holds a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The claude home (plain `claude`, or the home profile).
    Home,
    /// A profile's store entry or its runtime.
    Profile(ProfileName),
    /// A profile held it before: the token is spent.
    Spent(ProfileName),
}

impl Holder {
    /// A sentence for a refusal: where the login is and how to get a separate one.
    pub fn refusal(&self, name: &ProfileName) -> String {
        let separate = format!(
            "several logins of one account are fine, each its own: log in afresh with /login inside `clauth-helper run {name}`"
        );
        match self {
            Holder::Home => format!(
                "this login is the one Claude Code uses in the claude home; a copy would be a second place for one login, and a refresh in either would log the other out. Make it a profile with `clauth-helper profile add {name} --from-claude`, or {separate}"
            ),
            Holder::Profile(other) => format!(
                "this login belongs to profile {other}; a copy would be a second place for one login, and a refresh in either would log the other out. Use `clauth-helper run {other}`, or {separate}"
            ),
            Holder::Spent(other) => format!(
                "this login's refresh token was already replaced in profile {other}: it is spent, and using it would make the server revoke that login. {separate}"
            ),
        }
    }
}

/// Whether `bytes` hold the login `fingerprint`.
fn is_login(bytes: Option<&[u8]>, fingerprint: &str) -> bool {
    bytes
        .and_then(credentials::fingerprint)
        .is_some_and(|f| f == fingerprint)
}

/// Where the login `fingerprint` is, other than in profile `except`: the home, another
/// profile's store entry or runtime copy, or another profile's history.
pub fn holder_of(
    layout: &Layout,
    fingerprint: &str,
    except: Option<&ProfileName>,
) -> Result<Option<Holder>> {
    let matches = |bytes: Option<Vec<u8>>| is_login(bytes.as_deref(), fingerprint);
    if matches(read_home_login(layout)?) {
        return Ok(Some(Holder::Home));
    }
    holder_elsewhere(layout, fingerprint, except)
}

/// Like [`holder_of`], leaving the claude home out: which profile holds (or spent) a login.
pub fn holder_elsewhere(
    layout: &Layout,
    fingerprint: &str,
    except: Option<&ProfileName>,
) -> Result<Option<Holder>> {
    let matches = |bytes: Option<Vec<u8>>| is_login(bytes.as_deref(), fingerprint);
    for name in profile::list(layout)? {
        if Some(&name) == except {
            continue;
        }
        let runtime_copy = layout.runtime_config_dir(&name).join(".credentials.json");
        if matches(profile::read_credentials(layout, &name)?)
            || (fsx::lstat_optional(&runtime_copy)?.is_some_and(|m| m.is_file())
                && matches(fsx::read_optional(&runtime_copy)?))
        {
            return Ok(Some(Holder::Profile(name)));
        }
        if held_before(&layout.profile_dir(&name), fingerprint)? {
            return Ok(Some(Holder::Spent(name)));
        }
    }
    Ok(None)
}
