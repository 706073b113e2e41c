//! The home profile and `profile use`: the login Claude Code keeps in the claude home belongs
//! to one profile, and logins move between the home and profiles, never copied.
//!
//! `profile use` moves two logins through steps that a journal (`switch.json`) makes safe to
//! repeat: a command that finds the journal finishes the move before it does anything else.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::live_of;
use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx::{self, LockDir};
use crate::layout::{Layout, check_private_dir};
use crate::logins::{self, Holder};
use crate::platform;
use crate::profile::{self, ProfileConfig};
use crate::protocol::{ProfileName, Warning};
use crate::runtime;
use crate::session::SessionRecord;

/// How long to wait for Claude Code's own lock on a home file.
const CLAUDE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The pid of a plain Claude Code running in the claude home, if one is. Claude Code records
/// each running process as `sessions/<pid>.json` in its config directory; in real link mode the
/// runtimes share that directory, so a process whose `CLAUDE_CONFIG_DIR` names another
/// directory is not the home's.
pub fn plain_claude_running(layout: &Layout) -> Result<Option<u32>> {
    let dir = layout.claude_home.join("sessions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A reused pid is told apart by the start time Claude Code recorded (Linux: the same
        // `/proc/<pid>/stat` field this helper reads; elsewhere it is not compared).
        let recorded = std::fs::read(entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match &v["procStart"] {
                serde_json::Value::String(s) => s.parse::<u64>().ok(),
                other => other.as_u64(),
            })
            .filter(|_| platform::START_TIME_IS_PROC_STAT);
        if pid == 0 || !platform::process_alive(pid, recorded) {
            continue;
        }
        match platform::config_dir_of_process(pid) {
            Some(Some(dir)) if std::path::Path::new(&dir) != layout.claude_home => continue,
            _ => return Ok(Some(pid)),
        }
    }
    Ok(None)
}

fn claude_lock(path: &std::path::Path) -> Result<LockDir> {
    LockDir::take(path, CLAUDE_LOCK_WAIT)?.ok_or_else(|| {
        coded(
            ErrorCode::HomeBusy,
            format!(
                "Claude Code holds {} (a plain claude is saving); try again",
                path.display()
            ),
        )
    })
}

/// A `profile use` in progress: `to` becomes the home profile; the home's login goes to `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Switch {
    to: String,
    from: Option<String>,
    /// Whether `to` had a login of its own to move into the home.
    to_has_login: bool,
}

/// What `profile use` did, for people.
#[derive(Debug, Clone)]
pub struct Used {
    /// The profile that now keeps the home's previous login.
    pub saved_home_as: Option<ProfileName>,
    pub already: bool,
}

/// Makes `name`'s login the home login: the home's login goes back to its profile (or to
/// `save_home_as`), `name`'s moves into the home, with the account keys of each.
pub fn use_profile(
    layout: &Layout,
    live: &[SessionRecord],
    name: &ProfileName,
    save_home_as: Option<&ProfileName>,
) -> Result<Used> {
    profile::require(layout, name)?;
    layout.require_claude_home()?;
    let current = logins::home_profile(layout)?;
    if current.as_ref() == Some(name) {
        return Ok(Used {
            saved_home_as: None,
            already: true,
        });
    }
    for busy in [Some(name), current.as_ref()].into_iter().flatten() {
        let n = live_of(live, busy).count();
        if n > 0 {
            return Err(coded(
                ErrorCode::ProfileBusy,
                format!("profile {busy} has {n} live session(s); release them first"),
            ));
        }
    }
    if let Some(pid) = plain_claude_running(layout)? {
        return Err(coded(
            ErrorCode::HomeBusy,
            format!(
                "Claude Code (pid {pid}) is running in {}; quit it first, since it would keep using the login that moves",
                layout.claude_home.display()
            ),
        ));
    }
    let home_login = logins::home_login(layout)?;
    let from = match (&current, home_login.is_some()) {
        (Some(h), _) => Some(h.clone()),
        (None, false) => None,
        (None, true) => {
            let Some(other) = save_home_as else {
                return Err(coded(
                    ErrorCode::LoginInUse,
                    "the claude home is logged in with a login that belongs to no profile; name a profile to keep it in with --save-home-as OTHER",
                ));
            };
            if profile::exists(layout, other) && profile::read_credentials(layout, other)?.is_some()
            {
                return Err(coded(
                    ErrorCode::ProfileExists,
                    format!(
                        "profile {other} already has a login; --save-home-as needs a new profile or one without a login"
                    ),
                ));
            }
            if other == name {
                return Err(coded(
                    ErrorCode::InvalidRequest,
                    "--save-home-as must name another profile than the one to use",
                ));
            }
            Some(other.clone())
        }
    };
    // Refused while Claude Code is saving, before anything is written.
    let _locks = home_locks(layout)?;
    if let Some(f) = &from
        && !profile::exists(layout, f)
    {
        profile::add(layout, f, None, Default::default(), false)?;
    }
    // Nothing of `name` may be in a runtime when its login moves into the home.
    runtime::teardown(layout, name)?;
    let switch = Switch {
        to: name.to_string(),
        from: from.as_ref().map(|f| f.to_string()),
        to_has_login: profile::read_credentials(layout, name)?.is_some(),
    };
    fsx::atomic_write(
        &layout.switch_journal(),
        &serde_json::to_vec_pretty(&switch)?,
        fsx::PRIVATE_FILE,
    )?;
    finish_switch_locked(layout)?;
    Ok(Used {
        saved_home_as: if current.is_none() { from } else { None },
        already: false,
    })
}

/// Finishes a `profile use` that a journal says is under way. Every step looks at what is on
/// disk first, so running it again after a crash at any point moves each login once.
pub(super) fn finish_switch(layout: &Layout) -> Result<()> {
    if fsx::lstat_optional(&layout.switch_journal())?.is_none() {
        return Ok(());
    }
    let _locks = home_locks(layout)?;
    finish_switch_locked(layout)
}

/// Claude Code's own locks on the home's login and `~/.claude.json`, held while they change.
fn home_locks(layout: &Layout) -> Result<(LockDir, LockDir)> {
    let refresh = claude_lock(&layout.claude_home.join(".oauth_refresh.lock"))?;
    let mut document = layout.claude_json.clone().into_os_string();
    document.push(".lock");
    Ok((refresh, claude_lock(std::path::Path::new(&document))?))
}

fn finish_switch_locked(layout: &Layout) -> Result<()> {
    let Some(bytes) = fsx::read_optional(&layout.switch_journal())? else {
        return Ok(());
    };
    let Ok(switch) = serde_json::from_slice::<Switch>(&bytes) else {
        return fsx::remove_entry(&layout.switch_journal());
    };
    let Ok(to) = ProfileName::parse(&switch.to) else {
        return fsx::remove_entry(&layout.switch_journal());
    };
    let from = switch
        .from
        .as_deref()
        .and_then(|f| ProfileName::parse(f).ok());
    let to_login = profile::read_credentials(layout, &to)?;
    let home_login = logins::read_home_login(layout)?;
    let fp = |b: &Option<Vec<u8>>| b.as_deref().and_then(credentials::fingerprint);
    let moved_in = to_login.is_none() && switch.to_has_login;
    let home_is_to = fp(&home_login).is_some() && fp(&home_login) == fp(&to_login);
    // 1. The home's login (as Claude Code last wrote it) goes to `from`, with its account keys,
    //    unless `to`'s login is already in the home.
    if !moved_in
        && !home_is_to
        && let Some(from) = &from
        && let Some(bytes) = home_login
            .as_deref()
            .filter(|b| credentials::validate(b).is_ok())
    {
        profile::write_credentials(layout, from, bytes)?;
        runtime::save_account(layout, from, &runtime::home_account(layout)?)?;
    }
    // 2. `to`'s login goes into the home, then its account keys; only then does it leave the
    //    store, so a crash in between finds it in both and step 1 skips.
    if !moved_in {
        logins::write_home_login(layout, to_login.as_deref())?;
        runtime::set_home_account(layout, &runtime::load_account(layout, &to)?)?;
        fsx::remove_entry(&layout.profile_credentials(&to))?;
        runtime::remove_account(layout, &to)?;
    }
    logins::set_home_profile(layout, Some(&to))?;
    fsx::remove_entry(&layout.switch_journal())
}

/// Profiles made by an earlier `--from-claude`, which copied the home login: a profile whose
/// login is byte for byte the home's becomes the home profile (when there is none) and loses
/// its store copy, so the login has one place again. Profiles with live sessions wait.
pub(super) fn migrate_copies(layout: &Layout, live: &[SessionRecord]) -> Result<()> {
    let Some(home) = logins::read_home_login(layout)? else {
        return Ok(());
    };
    if credentials::fingerprint(&home).is_none() {
        return Ok(());
    }
    let mut home_profile = logins::home_profile(layout)?;
    for name in profile::list(layout)? {
        if live_of(live, &name).next().is_some()
            || check_private_dir(&layout.profile_dir(&name)).is_err()
            || profile::read_credentials(layout, &name)?.as_deref() != Some(home.as_slice())
        {
            continue;
        }
        runtime::teardown(layout, &name)?;
        if home_profile.is_none() {
            logins::set_home_profile(layout, Some(&name))?;
            home_profile = Some(name.clone());
            runtime::remove_account(layout, &name)?;
        }
        fsx::remove_entry(&layout.profile_credentials(&name))?;
    }
    Ok(())
}

/// Makes `name` the home profile for `profile add --from-claude`; `replace` allows an existing
/// profile, whose own login (when it is not the home's) is kept aside. Returns where.
pub(super) fn adopt_home_login(
    layout: &Layout,
    name: &ProfileName,
    env: std::collections::BTreeMap<String, String>,
    replace: bool,
) -> Result<Option<std::path::PathBuf>> {
    let home = logins::home_login(layout)?.ok_or_else(|| {
        coded(
            ErrorCode::InvalidCredentials,
            format!(
                "the claude home ({}) holds no usable login; log in with Claude Code first, or use --credentials FILE",
                match &layout.keychain {
                    Some(_) => "the Keychain item Claude Code-credentials".to_owned(),
                    None => layout.home_credentials().display().to_string(),
                }
            ),
        )
    })?;
    if let Some(owner) = logins::home_profile(layout)?
        && &owner != name
    {
        return Err(coded(
            ErrorCode::LoginInUse,
            format!(
                "the home login is already profile {owner}'s; a second profile of it would be a second place for one login. Use `clauth-helper run {owner}`, or log in afresh with /login inside `clauth-helper run {name}`"
            ),
        ));
    }
    if profile::exists(layout, name) && !replace {
        return Err(coded(
            ErrorCode::ProfileExists,
            format!("profile {name} already exists; pass --replace to update it"),
        ));
    }
    let mut aside = None;
    if profile::exists(layout, name) {
        runtime::teardown(layout, name)?;
        if let Some(own) = profile::read_credentials(layout, name)? {
            let dir = layout.profile_dir(name);
            if credentials::fingerprint(&own) != credentials::fingerprint(&home) {
                aside = Some(logins::keep_aside(&dir, "replaced", &own)?);
            }
            fsx::remove_entry(&layout.profile_credentials(name))?;
        }
    }
    profile::add(layout, name, None, env, replace)?;
    logins::set_home_profile(layout, Some(name))?;
    Ok(aside)
}

/// Warnings about a profile's login for `status`.
pub(super) fn warnings(
    layout: &Layout,
    name: &ProfileName,
    is_home: bool,
    home_account: Option<&str>,
) -> Result<Vec<Warning>> {
    let mut out = Vec::new();
    if is_home {
        return Ok(out);
    }
    let account = runtime::load_account(layout, name)?;
    if let (Some(mine), Some(home)) = (runtime::account_uuid(&account), home_account)
        && mine == home
        && profile::read_credentials(layout, name)?.is_some()
    {
        out.push(Warning {
            code: "same_account_as_home".into(),
            message: format!(
                "profile {name} and the claude home are logged in to the same account with different logins; if one was copied from the other, a refresh may have logged one out. Log in again with /login inside `clauth-helper run {name}` if its sessions fail to authenticate"
            ),
        });
    }
    Ok(out)
}

/// Refuses a login that already has a place elsewhere.
pub(super) fn refuse_copies(layout: &Layout, name: &ProfileName, bytes: &[u8]) -> Result<()> {
    let Some(fp) = credentials::fingerprint(bytes) else {
        return Ok(());
    };
    if logins::held_before(&layout.profile_dir(name), &fp)? {
        return Err(coded(
            ErrorCode::LoginInUse,
            Holder::Spent(name.clone()).refusal(name),
        ));
    }
    match logins::holder_of(layout, &fp, Some(name))? {
        Some(holder) => Err(coded(ErrorCode::LoginInUse, holder.refusal(name))),
        None => Ok(()),
    }
}

/// The env a home-profile session runs with: the profile's overrides.
pub(super) fn home_env(config: &ProfileConfig) -> std::collections::BTreeMap<String, String> {
    config.env.clone()
}
