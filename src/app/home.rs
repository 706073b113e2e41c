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
use crate::lock::ProfileLock;
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
        let recorded = fsx::read_optional(&entry.path())
            .ok()
            .flatten()
            .and_then(|b| crate::nodejson::from_slice::<serde_json::Value>(&b).ok())
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
    /// Set once the home's login is saved to `from`: from then on the home is never saved
    /// again (whatever it holds is `to`'s login, or `from`'s already saved).
    #[serde(default)]
    home_saved: bool,
    /// Set once `to`'s login is in the home: from then on the home is never written again
    /// (a refresh there is `to`'s newest state).
    #[serde(default)]
    to_in_home: bool,
    /// Set once the home's account keys are `to`'s.
    #[serde(default)]
    account_moved: bool,
}

/// What `profile use` did, for people.
#[derive(Debug, Clone)]
pub struct Used {
    /// The profile that now keeps the home's previous login.
    pub saved_home_as: Option<ProfileName>,
    pub already: bool,
}

/// A document in the home's login place that is a login, or what is left of one: anything with
/// a refresh token is moved, never dropped.
fn holds_a_login(bytes: &[u8]) -> bool {
    credentials::fingerprint(bytes).is_some() || credentials::validate(bytes).is_ok()
}

fn refuse_while_plain_claude_runs(layout: &Layout) -> Result<()> {
    match plain_claude_running(layout)? {
        Some(pid) => Err(coded(
            ErrorCode::HomeBusy,
            format!(
                "Claude Code (pid {pid}) is running in {}; quit it first, since it would keep using the login that moves",
                layout.claude_home.display()
            ),
        )),
        None => Ok(()),
    }
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
    let home_has_login = logins::read_home_login(layout)?
        .as_deref()
        .is_some_and(holds_a_login);
    let from = match (&current, home_has_login) {
        (Some(h), _) => Some(h.clone()),
        (None, false) => None,
        (None, true) => {
            let Some(other) = save_home_as else {
                return Err(coded(
                    ErrorCode::LoginInUse,
                    "the claude home is logged in with a login that belongs to no profile; name a profile to keep it in with --save-home-as OTHER",
                ));
            };
            if other == name {
                return Err(coded(
                    ErrorCode::InvalidRequest,
                    "--save-home-as must name another profile than the one to use",
                ));
            }
            if profile::exists(layout, other) {
                profile::require(layout, other)?;
                if profile::read_credentials(layout, other)?.is_some() {
                    return Err(coded(
                        ErrorCode::ProfileExists,
                        format!(
                            "profile {other} already has a login; --save-home-as needs a new profile or one without a login"
                        ),
                    ));
                }
            }
            Some(other.clone())
        }
    };
    for busy in [Some(name), from.as_ref()].into_iter().flatten() {
        let n = live_of(live, busy).count();
        if n > 0 {
            return Err(coded(
                ErrorCode::ProfileBusy,
                format!("profile {busy} has {n} live session(s); release them first"),
            ));
        }
    }
    refuse_while_plain_claude_runs(layout)?;
    // Nothing of either profile may be in a runtime when its login moves; done before Claude
    // Code's locks are taken, since a fake-mode teardown may take a while.
    runtime::teardown(layout, name)?;
    if let Some(f) = &from
        && profile::exists(layout, f)
    {
        runtime::teardown(layout, f)?;
    }
    // Refused while Claude Code is saving, before anything is written.
    let _locks = home_locks(layout)?;
    if let Some(f) = &from
        && !profile::exists(layout, f)
    {
        profile::add(layout, f, None, Default::default(), false)?;
    }
    let switch = Switch {
        to: name.to_string(),
        from: from.as_ref().map(|f| f.to_string()),
        to_has_login: profile::read_credentials(layout, name)?.is_some(),
        home_saved: false,
        to_in_home: false,
        account_moved: false,
    };
    write_journal(layout, &switch)?;
    finish_switch_locked(layout)?;
    Ok(Used {
        saved_home_as: if current.is_none() { from } else { None },
        already: false,
    })
}

fn write_journal(layout: &Layout, switch: &Switch) -> Result<()> {
    fsx::atomic_write(
        &layout.switch_journal(),
        &serde_json::to_vec_pretty(switch)?,
        fsx::PRIVATE_FILE,
    )
}

/// Finishes a `profile use` that a journal says is under way. Every step looks at what is on
/// disk and in the journal first, so running it again after a crash at any point moves each
/// login once. Refused (`home_busy`) while a plain Claude Code runs in the home.
pub(super) fn finish_switch(layout: &Layout) -> Result<()> {
    if fsx::lstat_optional(&layout.switch_journal())?.is_none() {
        return Ok(());
    }
    refuse_while_plain_claude_runs(layout)?;
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
    let Ok(mut switch) = serde_json::from_slice::<Switch>(&bytes) else {
        return fsx::remove_entry(&layout.switch_journal());
    };
    let Ok(to) = ProfileName::parse(&switch.to) else {
        return fsx::remove_entry(&layout.switch_journal());
    };
    let from = switch
        .from
        .as_deref()
        .and_then(|f| ProfileName::parse(f).ok());
    // 1. The home's login (as Claude Code last wrote it, refreshed or not) goes to `from`, with
    //    its account keys. Once the journal says so, never again: the home may hold `to`'s.
    if !switch.home_saved {
        if let Some(from) = &from
            && let Some(home) = logins::read_home_login(layout)?.filter(|b| holds_a_login(b))
        {
            let dir = layout.profile_dir(from);
            if let Some(old) = profile::read_credentials(layout, from)?
                && old != home
            {
                // What `from` held (a save this journal made before a crash) is not dropped.
                logins::keep_aside(&dir, "replaced", &old)?;
            }
            fsx::atomic_write(&layout.profile_credentials(from), &home, fsx::PRIVATE_FILE)?;
            runtime::save_account(layout, from, &runtime::home_account(layout)?)?;
        }
        switch.home_saved = true;
        write_journal(layout, &switch)?;
    }
    // 2. `to`'s login goes into the home. The home may have changed since step 1 only by a
    //    plain claude refreshing `from`'s login after a crash: then that is saved again first.
    let to_login = profile::read_credentials(layout, &to)?;
    if !switch.to_in_home {
        let fp = |b: Option<&[u8]>| b.and_then(credentials::fingerprint);
        let home = logins::read_home_login(layout)?.filter(|b| holds_a_login(b));
        let already_to = home.is_some() && fp(home.as_deref()) == fp(to_login.as_deref());
        if !already_to
            && let (Some(from), Some(home)) = (&from, &home)
            && profile::read_credentials(layout, from)?.as_ref() != Some(home)
        {
            if let Some(old) = profile::read_credentials(layout, from)? {
                logins::keep_aside(&layout.profile_dir(from), "replaced", &old)?;
            }
            fsx::atomic_write(&layout.profile_credentials(from), home, fsx::PRIVATE_FILE)?;
        }
        if !already_to && (to_login.is_some() || !switch.to_has_login) {
            logins::write_home_login(layout, to_login.as_deref())?;
        }
        switch.to_in_home = true;
        write_journal(layout, &switch)?;
    }
    // 3. Its account keys, once; then it leaves the store.
    if !switch.account_moved {
        runtime::set_home_account(layout, &runtime::load_account(layout, &to)?)?;
        switch.account_moved = true;
        write_journal(layout, &switch)?;
    }
    fsx::remove_entry(&layout.profile_credentials(&to))?;
    runtime::remove_account(layout, &to)?;
    logins::set_home_profile(layout, Some(&to))?;
    fsx::remove_entry(&layout.switch_journal())
}

/// Profiles made by an earlier `--from-claude`, which copied the home login: a profile whose
/// login is byte for byte the home's becomes the home profile (when there is none) and loses
/// its store copy, so the login has one place again. Profiles with live sessions wait.
pub(super) fn migrate_copies(layout: &Layout, live: &[SessionRecord]) -> Result<()> {
    let Some(home_fp) = logins::read_home_login(layout)?
        .as_deref()
        .and_then(credentials::fingerprint)
    else {
        return Ok(());
    };
    let same = |bytes: Option<Vec<u8>>| {
        bytes.as_deref().and_then(credentials::fingerprint).as_ref() == Some(&home_fp)
    };
    let mut home_profile = logins::home_profile(layout)?;
    for name in profile::list(layout)? {
        if live_of(live, &name).next().is_some()
            || check_private_dir(&layout.profile_dir(&name)).is_err()
            || !same(profile::read_credentials(layout, &name)?)
        {
            continue;
        }
        // A profile another process works on (an acquire building its runtime before its
        // record exists, say) waits too; trying its lock never waits, also under the store's.
        let Some(_profile) = ProfileLock::try_acquire(layout, &name)? else {
            continue;
        };
        // A leftover runtime's final sync may save a refresh it never ticked: only a store
        // that still holds the home's login after it is a copy.
        runtime::teardown(layout, &name)?;
        if !same(profile::read_credentials(layout, &name)?) {
            continue;
        }
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
    // A copy of the home login a profile still holds (one with a live session is not folded
    // in yet), or a token a profile already replaced, is not a login to adopt again.
    if let Some(fp) = credentials::fingerprint(&home)
        && let Some(holder) = logins::holder_elsewhere(layout, &fp, Some(name))?
    {
        return Err(coded(ErrorCode::LoginInUse, holder.refusal(name)));
    }
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
