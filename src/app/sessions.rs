//! The session verbs: acquire (plain and held by this process), tick, release and status.

use std::collections::BTreeMap;
use std::fs::File;

use anyhow::Result;

use super::usage::{logins_of, pick_profile};
use super::{home, live_of, prune, settle};
use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::ids::now_ms;
use crate::layout::Layout;
use crate::lock::{ProfileLock, StateLock};
use crate::logins;
use crate::platform;
use crate::profile;
use crate::protocol::{
    AccountInfo, AcquireRequest, Acquired, LinkMode, LinkModeRequest, Picked, ProfileName,
    ProfileStatus, Released, RuntimeInfo, SessionId, SessionInfo, Status, Ticked,
};
use crate::runtime::{self, TickCache};
use crate::session::{self, SessionRecord};
use crate::usage::{self, Net};

/// The variable that tells the command of a session which profile it runs under (for status
/// lines and prompts); set in every acquire's `env`, over any value the profile's env gives.
pub const PROFILE_VAR: &str = "CLAUTH_PROFILE";

/// Starts a session of a profile, building its runtime when it has no live session. With
/// `pick`, the profile is chosen first, and the acquire is the plain one of that profile.
pub fn acquire(layout: &Layout, request: &AcquireRequest) -> Result<Acquired> {
    let (request, picked) = resolve(layout, request)?;
    let mut acquired = acquire_as(layout, &request, None)?;
    acquired.pick = picked;
    Ok(acquired)
}

/// The request with the profile `pick` chose in it, and what was known of that profile.
fn resolve(layout: &Layout, request: &AcquireRequest) -> Result<(AcquireRequest, Option<Picked>)> {
    let Some(pick) = &request.pick else {
        return Ok((request.clone(), None));
    };
    // A request that will fail anyway asks nothing of the network.
    env_link_mode(layout)?;
    owner_start(request.owner_pid)?;
    let (name, picked) = pick_profile(layout, pick)?;
    let request = AcquireRequest {
        profile: Some(name),
        pick: None,
        ..request.clone()
    };
    Ok((request, Some(picked)))
}

fn owner_start(owner_pid: Option<u32>) -> Result<Option<u64>> {
    match owner_pid {
        None => Ok(None),
        Some(pid) => Ok(Some(platform::process_start_time(pid).ok_or_else(
            || {
                coded(
                    ErrorCode::InvalidRequest,
                    format!("owner_pid {pid} is not a running process"),
                )
            },
        )?)),
    }
}

/// A session this process holds (`serve`, `run`): a lock on `sessions/<id>.lock` that the
/// kernel releases when the last process holding it dies, so the session ends with it.
/// Dropping it ends the hold (not the record: release does).
pub struct Held {
    pub acquired: Acquired,
    lock: File,
}

impl Held {
    /// Lets child processes started from now on share the hold, so the session stays alive
    /// while the command `run` started is alive, even if `run` itself is killed.
    pub fn share_with_children(&self) -> std::io::Result<()> {
        platform::set_inheritable(&self.lock, true)
    }
}

/// Acquires a session held by this process.
pub fn acquire_held(layout: &Layout, request: &AcquireRequest) -> Result<Held> {
    // Nothing is created before the store is known to be sound.
    layout.ensure_store()?;
    let id = session::new_id();
    let path = layout.session_lock(&id);
    let lock = session::open_lock(layout, &id)?;
    if lock.try_lock().is_err() {
        return Err(coded(
            ErrorCode::Io,
            format!("the new session lock {} is already held", path.display()),
        ));
    }
    let resolved = resolve(layout, request).and_then(|(request, picked)| {
        let mut acquired = acquire_as(layout, &request, Some(id))?;
        acquired.pick = picked;
        Ok(acquired)
    });
    match resolved {
        Ok(acquired) => Ok(Held { acquired, lock }),
        Err(e) => {
            drop(lock);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// `CLAUTH_LINK_MODE`, checked on every acquire whether or not a runtime is built.
fn env_link_mode(layout: &Layout) -> Result<Option<LinkModeRequest>> {
    match &layout.link_mode_env {
        None => Ok(None),
        Some(v) => LinkModeRequest::parse(v).map(Some).ok_or_else(|| {
            coded(
                ErrorCode::InvalidRequest,
                format!("CLAUTH_LINK_MODE must be auto, real or fake, not {v:?}"),
            )
        }),
    }
}

fn acquire_as(
    layout: &Layout,
    request: &AcquireRequest,
    held: Option<SessionId>,
) -> Result<Acquired> {
    let AcquireRequest {
        profile,
        pick: _,
        owner_pid,
        lease_ms: _,
        link_mode,
    } = request;
    let name = profile
        .as_ref()
        .ok_or_else(|| coded(ErrorCode::InvalidRequest, "profile is required"))?;
    // The profile's lock is held throughout, the build of its runtime included; the store's
    // only while the store is looked at and the record saved, so a long build of this profile
    // never holds up another profile's verbs.
    let _profile = ProfileLock::acquire(layout, name)?;
    let (mode, build, owner_start) = {
        let _store = StateLock::acquire(layout)?;
        profile::require(layout, name)?;
        layout.require_claude_home()?;
        let owner_start = owner_start(*owner_pid)?;
        let env_mode = env_link_mode(layout)?;
        let live = settle(layout)?;
        if logins::is_home(layout, name)? {
            return acquire_home(layout, name, request, held, owner_start);
        }
        match live_of(&live, name).next() {
            Some(_) => (joined_mode(layout, name, *link_mode)?, false, owner_start),
            None => {
                let asked = link_mode.or(env_mode).unwrap_or(LinkModeRequest::Auto);
                // Temp files and trash are swept, and the probe made, under the store lock:
                // nobody else sweeps while the probe is there.
                fsx::sweep_temp(&layout.runtimes_dir());
                let mode = runtime::decide_mode(asked, &layout.runtimes_dir());
                (mode, true, owner_start)
            }
        }
    };
    if build {
        runtime::teardown(layout, name)?;
        if let Err(e) = runtime::build(layout, name, mode) {
            // A half-built runtime holds links and copies only; the home is untouched.
            runtime::discard(layout, name);
            return Err(e);
        }
    }
    let record = new_record(name, request, held, owner_start);
    {
        let _store = StateLock::acquire(layout)?;
        session::save(layout, &record)?;
    }
    let config_dir = layout.runtime_config_dir(name);
    Ok(Acquired {
        session: record.id,
        profile: name.to_string(),
        env: BTreeMap::from([
            (
                "CLAUDE_CONFIG_DIR".to_owned(),
                config_dir.to_string_lossy().into_owned(),
            ),
            (PROFILE_VAR.to_owned(), name.to_string()),
        ]),
        config_dir,
        link_mode: mode,
        env_remove: profile::env_to_remove(&profile::load_config(layout, name)?),
        lease_expires_at: record.lease_expires_at,
        home: false,
        pick: None,
    })
}

/// The mode of the live runtime a new session of `name` joins, refused when the request names
/// another mode or the runtime was built for another claude home.
fn joined_mode(
    layout: &Layout,
    name: &ProfileName,
    link_mode: Option<LinkModeRequest>,
) -> Result<LinkMode> {
    // Live sessions use this runtime: it is never rebuilt under them, even when its state
    // cannot be read.
    let state = runtime::load_state(layout, name)?.ok_or_else(|| {
        anyhow::anyhow!(
            "the runtime of profile {name} has live sessions but its state {} cannot be read; release them, then acquire again",
            layout.runtime_state(name).display()
        )
    })?;
    if let Some(home) = state.claude_home.as_ref()
        && *home != layout.claude_home
    {
        return Err(coded(
            ErrorCode::HomeMismatch,
            format!(
                "profile {name} has live sessions for the claude home {}, and this call's is {}: two homes share this store; call with the same HOME, or release those sessions first",
                home.display(),
                layout.claude_home.display()
            ),
        ));
    }
    // Only a mode the request names can conflict; CLAUTH_LINK_MODE is a default for new
    // runtimes.
    let wanted = match link_mode {
        Some(LinkModeRequest::Real) => Some(LinkMode::Real),
        Some(LinkModeRequest::Fake) => Some(LinkMode::Fake),
        _ => None,
    };
    if let Some(wanted) = wanted
        && wanted != state.link_mode
    {
        return Err(coded(
            ErrorCode::LinkModeConflict,
            format!(
                "profile {name} has a live runtime in {} mode; {} mode was asked for",
                state.link_mode.as_str(),
                wanted.as_str()
            ),
        ));
    }
    Ok(state.link_mode)
}

fn new_record(
    name: &ProfileName,
    request: &AcquireRequest,
    held: Option<SessionId>,
    owner_start: Option<u64>,
) -> SessionRecord {
    let now = now_ms();
    let mut record = SessionRecord {
        id: held.as_ref().unwrap_or(&session::new_id()).to_string(),
        profile: name.to_string(),
        created_at: now,
        owner_pid: request.owner_pid,
        owner_start,
        lease_ms: request.lease_ms,
        lease_expires_at: None,
        held: held.is_some(),
    };
    record.renew(now);
    record
}

/// A session of the home profile uses the claude home itself: nothing is built, and the
/// command must not be given a `CLAUDE_CONFIG_DIR` (with one, Claude Code would read
/// `.claude.json` inside the directory, and on macOS another Keychain item).
fn acquire_home(
    layout: &Layout,
    name: &ProfileName,
    request: &AcquireRequest,
    held: Option<SessionId>,
    owner_start: Option<u64>,
) -> Result<Acquired> {
    let record = new_record(name, request, held, owner_start);
    session::save(layout, &record)?;
    let config = profile::load_config(layout, name)?;
    let mut env_remove = profile::env_to_remove(&config);
    env_remove.push("CLAUDE_CONFIG_DIR".to_owned());
    let mut env = home::home_env(&config);
    env.insert(PROFILE_VAR.to_owned(), name.to_string());
    Ok(Acquired {
        session: record.id,
        profile: name.to_string(),
        config_dir: layout.claude_home.clone(),
        link_mode: LinkMode::Real,
        env,
        env_remove,
        lease_expires_at: record.lease_expires_at,
        home: true,
        pick: None,
    })
}

/// One reconciliation pass for a session's runtime; renews its lease.
pub fn tick(layout: &Layout, id: &SessionId) -> Result<Ticked> {
    tick_with(layout, id, &mut TickCache::default())
}

/// A tick that keeps what it learned in `cache` for the next tick of the same runtime.
pub fn tick_with(layout: &Layout, id: &SessionId, cache: &mut TickCache) -> Result<Ticked> {
    // The profile's lock is taken before the store's, as everywhere.
    let profile = profile_of(layout, id)?;
    let _profile = ProfileLock::acquire_if_exists(layout, &profile)?;
    // A session of a profile removed by hand: no profile lock, so the store's for all of it.
    let _whole = match _profile {
        Some(_) => None,
        None => Some(StateLock::acquire(layout)?),
    };
    let record = {
        let _store = StateLock::acquire(layout)?;
        prune(layout)?;
        session::load(layout, id)?
    };
    let report = runtime::sync(layout, &record.profile, cache)?;
    let mut record = record;
    if record.lease_ms.is_some() {
        let _store = StateLock::acquire(layout)?;
        // Only a release (which takes this profile's lock) or a prune of a lease that ran out
        // removes a record: a tick never brings one back.
        record = session::load(layout, id)?;
        record.renew(now_ms());
        session::save(layout, &record)?;
    }
    Ok(Ticked {
        session: record.id,
        lease_expires_at: record.lease_expires_at,
        report,
    })
}

/// The profile of session `id`, read without a lock (records are written whole and never
/// change profile); a record that is not there is looked for again under the store lock, so
/// the answer is the one a locked call gives.
fn profile_of(layout: &Layout, id: &SessionId) -> Result<String> {
    layout.ensure_store()?;
    match session::load(layout, id) {
        Ok(record) => Ok(record.profile),
        Err(_) => {
            let _store = StateLock::acquire(layout)?;
            Ok(session::load(layout, id)?.profile)
        }
    }
}

/// Ends a session: a final sync, and teardown when it was the profile's last live session.
pub fn release(layout: &Layout, id: &SessionId) -> Result<Released> {
    let profile = profile_of(layout, id)?;
    let _profile = ProfileLock::acquire_if_exists(layout, &profile)?;
    // A session of a profile removed by hand: no profile lock, so the store's for all of it.
    let _whole = match _profile {
        Some(_) => None,
        None => Some(StateLock::acquire(layout)?),
    };
    let (record, remaining, home) = {
        let _store = StateLock::acquire(layout)?;
        // Load before pruning, so a session whose lease just ran out can still be released
        // cleanly.
        let record = session::load(layout, id)?;
        let (live, _) = prune(layout)?;
        let remaining = live_of(&live, &record.profile)
            .filter(|r| r.id != record.id)
            .count();
        let home = logins::is_home(layout, &record.profile)?;
        (record, remaining, home)
    };
    // No new session of this profile can start while its lock is held, so `remaining` stays
    // true through the teardown.
    let (report, removed) = if home {
        // The home profile's sessions use the claude home: there is nothing to sync or remove.
        (Default::default(), false)
    } else if remaining == 0 {
        (runtime::teardown(layout, &record.profile)?, true)
    } else {
        (
            runtime::sync(layout, &record.profile, &mut TickCache::default())?,
            false,
        )
    };
    {
        let _store = StateLock::acquire(layout)?;
        session::remove(layout, &record.id)?;
    }
    Ok(Released {
        session: record.id,
        runtime_removed: removed,
        remaining_sessions: remaining,
        report,
    })
}

/// Profiles with their live sessions, runtimes and a redacted credentials summary.
pub fn status(layout: &Layout, only: Option<&ProfileName>) -> Result<Status> {
    Ok(status_locked(layout, only, false)?.0)
}

/// [`status`] with each profile's usage and limits: the logins are read under the state lock,
/// the usage endpoint is asked (where the cache says to) after it is let go.
pub fn status_with_usage(layout: &Layout, only: Option<&ProfileName>) -> Result<Status> {
    let (mut status, logins) = status_locked(layout, only, true)?;
    let reports = usage::reports(layout, &Net::from_env(), &logins);
    for (profile, report) in status.profiles.iter_mut().zip(reports) {
        profile.usage = Some(report);
    }
    Ok(status)
}

fn status_locked(
    layout: &Layout,
    only: Option<&ProfileName>,
    with_logins: bool,
) -> Result<(Status, Vec<usage::Login>)> {
    let _lock = StateLock::acquire(layout)?;
    if let Some(name) = only {
        profile::require(layout, name)?;
    }
    let live = settle(layout)?;
    let names = match only {
        Some(name) => vec![name.clone()],
        None => profile::list(layout)?,
    };
    let home = logins::home_profile(layout)?;
    // The home's account is read only when some other profile could share it.
    let home_account = if names.iter().any(|n| Some(n) != home.as_ref()) {
        runtime::home_account(layout)?
    } else {
        Default::default()
    };
    let home_uuid = runtime::account_uuid(&home_account);
    let mut profiles = Vec::new();
    for name in &names {
        let is_home = home.as_ref() == Some(name);
        profiles.push(status_of(layout, name, &live, is_home, home_uuid)?);
    }
    let logins = match with_logins {
        true => logins_of(layout, &names, &live)?,
        false => Vec::new(),
    };
    let status = Status {
        profiles,
        credential_store: layout.credential_store().to_owned(),
    };
    Ok((status, logins))
}

fn status_of(
    layout: &Layout,
    name: &ProfileName,
    live: &[SessionRecord],
    is_home: bool,
    home_uuid: Option<&str>,
) -> Result<ProfileStatus> {
    let sessions: Vec<SessionInfo> = live_of(live, name)
        .map(|r| SessionInfo {
            session: r.id.clone(),
            created_at: r.created_at,
            owner_pid: r.owner_pid,
            lease_expires_at: r.lease_expires_at,
            held: r.held,
        })
        .collect();
    let runtime = match is_home {
        true => None,
        false => runtime::load_state(layout, name)?.map(|state| RuntimeInfo {
            config_dir: layout.runtime_config_dir(name),
            link_mode: state.link_mode,
            orphaned: sessions.is_empty(),
        }),
    };
    // The home profile's login is read where it lives: a refresh by plain `claude` shows at once.
    let login = match is_home {
        true => logins::read_home_login(layout)?,
        false => profile::read_credentials(layout, name)?,
    };
    Ok(ProfileStatus {
        name: name.to_string(),
        sessions,
        runtime,
        credentials: credentials::report(login.as_deref()),
        account: account_of(layout, name, is_home)?,
        home: is_home,
        warnings: home::warnings(layout, name, is_home, home_uuid)?,
        usage: None,
    })
}

/// The account a profile's login is: the home's `oauthAccount` for the home profile, else the
/// one its sessions recorded in the profile's account keys.
fn account_of(layout: &Layout, name: &ProfileName, is_home: bool) -> Result<Option<AccountInfo>> {
    let keys = match is_home {
        true => runtime::home_account(layout)?,
        false => runtime::load_account(layout, name)?,
    };
    let Some(account) = keys.get("oauthAccount").and_then(|v| v.as_object()) else {
        return Ok(None);
    };
    let text = |key: &str| account.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let info = AccountInfo {
        email: text("emailAddress"),
        organization: text("organizationName"),
    };
    Ok((info.email.is_some() || info.organization.is_some()).then_some(info))
}
