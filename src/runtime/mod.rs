//! Runtimes and the session lifecycle: acquire, tick, release, status, gc.
//!
//! Every operation runs under the state lock. A runtime lives in `runtimes/<profile>/`: its
//! `config/` is handed to Claude Code, `state.json` and `manifest.tsv` record the last sync.

mod creds;
mod fake;
mod json;
mod real;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use json::ACCOUNT_KEYS;

use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::Layout;
use crate::lock::StateLock;
use crate::platform;
use crate::profile::{self, ProfileConfig};
use crate::session::{self, SessionRecord, now_ms};

/// Documents of a runtime's top level that it keeps as its own files in both modes.
pub const MANAGED: &[&str] = &[".credentials.json", "settings.json", ".claude.json"];

/// Top-level directories that belong to the profile rather than the claude home: Claude Code
/// keeps backups of `.claude.json` (account keys included) in `backups/`.
pub const PER_PROFILE: &[&str] = &["backups"];

/// Whether a top-level name is never linked to or mirrored with the claude home: the managed
/// documents, the per-profile directories, Claude Code's lock files and lock directories
/// (`.claude.json.lock`, `.oauth_refresh.lock`, ...), and the temp files it renames over the
/// managed documents (`.claude.json.tmp.<pid>.<hex>`). Shared, a lock of one account would
/// block the others and a half-written document could travel.
pub(crate) fn is_managed(name: &str) -> bool {
    MANAGED.contains(&name)
        || PER_PROFILE.contains(&name)
        || name.ends_with(".lock")
        // Temp files renamed over their target a moment later (`x.tmp`, `x.tmp.<pid>.<hex>`).
        || name.ends_with(".tmp")
        || name.contains(".tmp.")
        || MANAGED.iter().any(|m| {
            name.len() > m.len() && name.starts_with(m) && name.as_bytes()[m.len()] == b'.'
        })
}

/// `dir/name.clauth-conflict-<ms>-<side>`, beside `path`.
pub(crate) fn conflict_name(path: &Path, side: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.clauth-conflict-{}-{side}", now_ms()))
}

/// How a runtime presents the claude home's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    Real,
    Fake,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Real => "real",
            LinkMode::Fake => "fake",
        }
    }
}

/// What an acquire asks for: a mode, or `auto` to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkModeRequest {
    Auto,
    Real,
    Fake,
}

impl LinkModeRequest {
    pub fn parse(s: &str) -> Option<LinkModeRequest> {
        match s {
            "auto" => Some(LinkModeRequest::Auto),
            "real" => Some(LinkModeRequest::Real),
            "fake" => Some(LinkModeRequest::Fake),
            _ => None,
        }
    }
}

/// A runtime's record of itself and of its last sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub link_mode: LinkMode,
    pub created_at: i64,
    /// False until the build finished; a runtime never finished was never handed out.
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub settings: json::JsonSync,
    #[serde(default)]
    pub claude_json: json::JsonSync,
    #[serde(default)]
    pub credentials: creds::CredSync,
}

/// What one sync did; every field says something a caller may want to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SyncReport {
    /// Credentials the session refreshed or logged in were saved to the profile.
    pub credentials_saved: bool,
    /// Why the session's credentials were not saved, when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_rejected: Option<String>,
    /// Top-level entries the session created or replaced, folded into the claude home (real mode).
    pub adopted: Vec<String>,
    /// Entries the claude home gained, linked into the runtime (real mode).
    pub linked: Vec<String>,
    /// Entries the claude home lost, unlinked from the runtime (real mode).
    pub unlinked: Vec<String>,
    /// Files copied by the mirror (fake mode).
    pub copied_to_home: u64,
    pub copied_to_runtime: u64,
    pub deleted_in_home: u64,
    pub deleted_in_runtime: u64,
    /// Conflict copies written, relative to the claude home.
    pub conflicts: Vec<String>,
    /// `settings.json` changes of the session saved to the claude home.
    pub settings_saved: bool,
    /// `.claude.json` changes saved to the claude home or the profile.
    pub claude_json_saved: bool,
    /// A runtime document that did not parse and was left alone.
    pub rejected_documents: Vec<String>,
}

impl SyncReport {
    /// Whether anything was saved or moved (serve sends an event then).
    pub fn is_eventful(&self) -> bool {
        self.credentials_saved
            || self.credentials_rejected.is_some()
            || !self.adopted.is_empty()
            || self.copied_to_home > 0
            || self.deleted_in_home > 0
            || !self.conflicts.is_empty()
            || self.settings_saved
            || self.claude_json_saved
    }
}

/// An acquire request in domain terms.
#[derive(Debug, Clone)]
pub struct AcquireOptions {
    pub profile: String,
    pub owner_pid: Option<u32>,
    pub lease_ms: Option<u64>,
    pub link_mode: Option<LinkModeRequest>,
    /// Set by `serve` and `run`: the id whose lock they already hold, so the session lives
    /// exactly as long as that process.
    pub held_session: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Acquired {
    pub session: String,
    pub profile: String,
    pub config_dir: PathBuf,
    pub link_mode: LinkMode,
    /// Variables to set for Claude Code: `CLAUDE_CONFIG_DIR`.
    pub env: BTreeMap<String, String>,
    /// Inherited variables a launcher should remove, since they would override the profile's
    /// account (`ANTHROPIC_BASE_URL` only when the profile does not set it).
    pub env_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ticked {
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<i64>,
    #[serde(flatten)]
    pub report: SyncReport,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Released {
    pub session: String,
    pub runtime_removed: bool,
    pub remaining_sessions: usize,
    #[serde(flatten)]
    pub report: SyncReport,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionInfo {
    pub session: String,
    pub created_at: i64,
    pub owner_pid: Option<u32>,
    pub lease_expires_at: Option<i64>,
    /// Held by a `serve` or `run` process: it ends when that process does.
    pub held: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuntimeInfo {
    pub config_dir: PathBuf,
    pub link_mode: LinkMode,
    /// No live session uses it (left by a crash); the next acquire or `gc` reclaims it.
    pub orphaned: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProfileStatus {
    pub name: String,
    pub sessions: Vec<SessionInfo>,
    pub runtime: Option<RuntimeInfo>,
    pub credentials: credentials::Report,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Status {
    pub profiles: Vec<ProfileStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub runtimes_removed: Vec<String>,
    pub sessions_pruned: usize,
}

fn yes() -> bool {
    true
}

fn load_state(layout: &Layout, profile: &str) -> Result<Option<RuntimeState>> {
    match fsx::read_optional(&layout.runtime_state(profile))? {
        None => Ok(None),
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
    }
}

fn save_state(layout: &Layout, profile: &str, state: &RuntimeState) -> Result<()> {
    fsx::atomic_write(
        &layout.runtime_state(profile),
        &serde_json::to_vec_pretty(state)?,
        fsx::PRIVATE_FILE,
    )
}

/// Removes records of dead sessions; returns the live ones.
fn prune(layout: &Layout) -> Result<(Vec<SessionRecord>, usize)> {
    let now = now_ms();
    let mut live = Vec::new();
    let mut pruned = 0;
    for record in session::load_all(layout)? {
        match record {
            Ok(r) if r.is_alive(layout, now) => live.push(r),
            Ok(r) => {
                session::remove(layout, &r.id)?;
                pruned += 1;
            }
            Err(id) => {
                session::remove(layout, &id)?;
                pruned += 1;
            }
        }
    }
    Ok((live, pruned))
}

fn live_of<'a>(
    live: &'a [SessionRecord],
    profile: &str,
) -> impl Iterator<Item = &'a SessionRecord> {
    live.iter().filter(move |r| r.profile == profile)
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

fn decide_mode(
    layout: &Layout,
    asked: Option<LinkModeRequest>,
    probe_dir: &Path,
) -> Result<LinkMode> {
    let asked = match asked {
        Some(m) => m,
        None => env_link_mode(layout)?.unwrap_or(LinkModeRequest::Auto),
    };
    Ok(match asked {
        LinkModeRequest::Real => LinkMode::Real,
        LinkModeRequest::Fake => LinkMode::Fake,
        LinkModeRequest::Auto if fsx::symlinks_work(probe_dir) => LinkMode::Real,
        LinkModeRequest::Auto => LinkMode::Fake,
    })
}

/// What a long-lived holder (`serve`, `run`) keeps between ticks of one runtime, so an idle tick
/// reads no state it has already seen and walks no tree that did not change.
#[derive(Default)]
pub struct TickCache {
    /// Off for one-shot ticks: a watch only pays for itself across many ticks.
    long_lived: bool,
    watch: Option<watch::Watch>,
    watch_failed: bool,
    state: Option<(fsx::Stamp, RuntimeState)>,
    manifest: Option<(ManifestStamp, fake::Manifest)>,
    ticks_since_full: u32,
}

/// Notifications can miss changes behind symlinked folders; a full pass now and then catches them.
const FULL_PASS_EVERY: u32 = 60;

impl TickCache {
    /// A cache for a process that ticks the same runtime again and again.
    pub fn long_lived() -> TickCache {
        TickCache {
            long_lived: true,
            ..TickCache::default()
        }
    }

    /// The scope of this tick's mirror pass in fake mode.
    fn scope(&mut self, layout: &Layout, profile: &str) -> fake::Scope {
        if !self.long_lived {
            return fake::Scope::Full;
        }
        if self.watch.is_none() && !self.watch_failed {
            match watch::Watch::new(&layout.claude_home, &layout.runtime_config_dir(profile)) {
                // The first pass after the watch starts is full: it covers what came before.
                Ok(w) => {
                    self.watch = Some(w);
                    self.ticks_since_full = 0;
                    return fake::Scope::Full;
                }
                Err(_) => self.watch_failed = true,
            }
        }
        self.ticks_since_full += 1;
        match self.watch.as_mut().map(watch::Watch::changes) {
            Some(watch::Changes::Dirs(dirs)) if self.ticks_since_full < FULL_PASS_EVERY => {
                fake::Scope::Dirs(dirs)
            }
            _ => {
                self.ticks_since_full = 0;
                fake::Scope::Full
            }
        }
    }
}

/// The runtime's state, from the cache when the file has not changed since it was read.
fn cached_state<'c>(
    layout: &Layout,
    profile: &str,
    cache: &'c mut TickCache,
) -> Result<Option<&'c mut RuntimeState>> {
    let path = layout.runtime_state(profile);
    let Some(stamp) = fsx::Stamp::at(&path)? else {
        cache.state = None;
        return Ok(None);
    };
    if cache.state.as_ref().is_none_or(|(s, _)| *s != stamp) {
        cache.state = load_state(layout, profile)?.map(|state| (stamp, state));
    }
    Ok(cache.state.as_mut().map(|(_, state)| state))
}

/// One sync of a runtime with the claude home and the profile. Returns the report and whether
/// the state changed.
fn sync_runtime(
    layout: &Layout,
    profile: &str,
    state: &mut RuntimeState,
    scope: &fake::Scope,
    manifests: &mut Option<(ManifestStamp, fake::Manifest)>,
) -> Result<(SyncReport, bool)> {
    let mut report = SyncReport::default();
    // Checked on every sync, not only at acquire: a profile directory swapped for a symlink
    // must not receive credentials.
    crate::layout::check_private_dir(&layout.profile_dir(profile))?;
    let config = profile::load_config(layout, profile)?;
    let cfg = layout.runtime_config_dir(profile);
    anyhow::ensure!(
        cfg.is_dir(),
        "the runtime {} has lost its config directory",
        cfg.display()
    );
    let canonical = layout.profile_credentials(profile);
    let cred_file = cfg.join(".credentials.json");
    let mut touched = false;
    match state.link_mode {
        LinkMode::Real => {
            creds::recover(&cfg, &canonical, &mut report)?;
            real::recover(&layout.claude_home, &cfg, &mut report)?;
            creds::sync_real(&canonical, &cred_file, &mut report)?;
            real::sync(&layout.claude_home, &cfg, &mut report)?;
            link_per_profile(layout, profile, &cfg)?;
        }
        LinkMode::Fake => {
            creds::recover(&cfg, &canonical, &mut report)?;
            touched |=
                creds::sync_fake(&canonical, &cred_file, &mut state.credentials, &mut report)?;
            let idle = matches!(scope, fake::Scope::Dirs(dirs) if dirs.is_empty());
            if !idle {
                mirror(layout, profile, &cfg, scope, manifests, &mut report)?;
            }
        }
    }
    touched |= sync_documents(layout, profile, &config, &cfg, state, &mut report)?;
    Ok((report, touched))
}

/// A fake-mode mirror pass, with the manifest from the cache when its file is unchanged.
fn mirror(
    layout: &Layout,
    profile: &str,
    cfg: &Path,
    scope: &fake::Scope,
    manifests: &mut Option<(ManifestStamp, fake::Manifest)>,
    report: &mut SyncReport,
) -> Result<()> {
    let path = layout.runtime_manifest(profile);
    let stamp = manifest_stamp(&path)?;
    let mut manifest = match manifests.take() {
        Some((s, m)) if s == stamp => m,
        _ => fake::Manifest::load(&path)?,
    };
    fake::sync(
        &layout.claude_home,
        cfg,
        &mut manifest,
        scope,
        false,
        report,
    )?;
    if manifest.is_dirty() {
        manifest.save(&path)?;
    }
    *manifests = Some((manifest_stamp(&path)?, manifest));
    Ok(())
}

/// The stamps of a manifest and its journal: the cached manifest is current while both match.
type ManifestStamp = (Option<fsx::Stamp>, Option<fsx::Stamp>);

fn manifest_stamp(path: &Path) -> Result<ManifestStamp> {
    Ok((
        fsx::Stamp::at(path)?,
        fsx::Stamp::at(&fake::journal_path(path))?,
    ))
}

/// Syncs `settings.json` and `.claude.json`; returns whether the state changed.
fn sync_documents(
    layout: &Layout,
    profile: &str,
    config: &ProfileConfig,
    cfg: &Path,
    state: &mut RuntimeState,
    report: &mut SyncReport,
) -> Result<bool> {
    let settings = json::sync(
        &json::Doc::Settings(config),
        &layout.claude_home.join("settings.json"),
        &cfg.join("settings.json"),
        &mut state.settings,
    )?;
    report.settings_saved = settings.saved_home;
    if settings.rejected {
        report.rejected_documents.push("settings.json".into());
    }
    let claude_json = json::sync(
        &json::Doc::ClaudeJson { layout, profile },
        &layout.claude_json,
        &cfg.join(".claude.json"),
        &mut state.claude_json,
    )?;
    report.claude_json_saved = claude_json.saved_home || claude_json.saved_profile;
    if claude_json.rejected {
        report.rejected_documents.push(".claude.json".into());
    }
    Ok(settings.touched || claude_json.touched)
}

/// Syncs and saves the state when it changed.
fn sync_and_record(layout: &Layout, profile: &str, cache: &mut TickCache) -> Result<SyncReport> {
    let scope = match cached_state(layout, profile, cache)? {
        None => return Ok(SyncReport::default()),
        Some(state) if state.link_mode == LinkMode::Fake => cache.scope(layout, profile),
        Some(_) => fake::Scope::Full,
    };
    let TickCache {
        state, manifest, ..
    } = cache;
    let Some((_, state)) = state.as_mut() else {
        return Ok(SyncReport::default());
    };
    let (report, touched) = sync_runtime(layout, profile, state, &scope, manifest)?;
    if touched {
        save_state(layout, profile, state)?;
        let path = layout.runtime_state(profile);
        if let (Some(stamp), Some((s, _))) = (fsx::Stamp::at(&path)?, cache.state.as_mut()) {
            *s = stamp;
        }
    }
    Ok(report)
}

/// Final sync, then removal. A runtime whose state is unreadable is salvaged as real mode
/// (adopting whatever is not a link) before it goes, so nothing in it is lost. A runtime whose
/// build never finished was never handed to a session and holds nothing of its own.
fn teardown(layout: &Layout, profile: &str) -> Result<SyncReport> {
    let dir = layout.runtime_dir(profile);
    if !dir.exists() {
        return Ok(SyncReport::default());
    }
    let cfg = layout.runtime_config_dir(profile);
    let report = match load_state(layout, profile)? {
        Some(state) if !state.ready => SyncReport::default(),
        // Without its config dir there is nothing to sync, and a mirror pass would read every
        // missing file as a deletion.
        Some(_) if !cfg.is_dir() => SyncReport::default(),
        Some(mut state) => {
            let (report, touched) =
                sync_runtime(layout, profile, &mut state, &fake::Scope::Full, &mut None)?;
            // Recorded before the removal: a crash in between must not replay this merge of
            // the documents from a base that is already out of date.
            if touched {
                save_state(layout, profile, &state)?;
            }
            report
        }
        None if cfg.is_dir() => {
            // Nothing says which side is newer: credentials go through the usual checks, and
            // files through a mirror pass that knows no history, which deletes nothing and
            // keeps both versions of a file that differs.
            let mut report = SyncReport::default();
            creds::sync_real(
                &layout.profile_credentials(profile),
                &cfg.join(".credentials.json"),
                &mut report,
            )?;
            let mut manifest = fake::Manifest::default();
            fake::sync(
                &layout.claude_home,
                &cfg,
                &mut manifest,
                &fake::Scope::Full,
                false,
                &mut report,
            )?;
            report
        }
        None => SyncReport::default(),
    };
    if cfg.is_dir() {
        move_back_per_profile(layout, profile, &cfg)?;
    }
    // Out of the way in one rename before the slow delete: a crash while deleting leaves a
    // trash directory that is removed later without a sync, never a half-deleted runtime whose
    // missing files a later sync would carry to the claude home as deletions.
    let trash = fsx::unique_sibling(&layout.runtimes_dir(), "trash");
    std::fs::rename(&dir, &trash)
        .with_context(|| format!("cannot move {} aside", dir.display()))?;
    fsx::remove_entry(&trash)?;
    Ok(report)
}

/// Real mode: the per-profile directories are links into the profile's own. One that Claude
/// Code replaced is moved into the profile (its entries win) and linked again.
fn link_per_profile(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
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
fn copy_in_per_profile(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
    for name in PER_PROFILE {
        let source = layout.profile_dir(profile).join(name);
        if source.is_dir() {
            fsx::copy_tree(&source, &cfg.join(name))?;
        }
    }
    Ok(())
}

/// ...and go back to the profile when it is torn down.
fn move_back_per_profile(layout: &Layout, profile: &str, cfg: &Path) -> Result<()> {
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

fn build(layout: &Layout, profile: &str, mode: LinkMode) -> Result<()> {
    let dir = layout.runtime_dir(profile);
    let cfg = layout.runtime_config_dir(profile);
    fsx::ensure_dir(&dir, fsx::PRIVATE_DIR)?;
    fsx::ensure_dir(&cfg, fsx::PRIVATE_DIR)?;
    let mut state = RuntimeState {
        link_mode: mode,
        created_at: now_ms(),
        ready: false,
        settings: Default::default(),
        claude_json: Default::default(),
        credentials: Default::default(),
    };
    // The state goes first and says the build is not finished, so a crash in the middle leaves
    // a runtime that the next acquire simply removes.
    save_state(layout, profile, &state)?;
    let config = profile::load_config(layout, profile)?;
    let canonical = layout.profile_credentials(profile);
    let cred_file = cfg.join(".credentials.json");
    match mode {
        LinkMode::Real => {
            real::materialise(&layout.claude_home, &cfg)?;
            link_per_profile(layout, profile, &cfg)?;
            creds::place_real(&canonical, &cred_file)?;
        }
        LinkMode::Fake => {
            let mut manifest = fake::Manifest::default();
            let mut report = SyncReport::default();
            fake::sync(
                &layout.claude_home,
                &cfg,
                &mut manifest,
                &fake::Scope::Full,
                true,
                &mut report,
            )?;
            manifest.save(&layout.runtime_manifest(profile))?;
            copy_in_per_profile(layout, profile, &cfg)?;
            creds::place_fake(&canonical, &cred_file, &mut state.credentials)?;
        }
    }
    state.settings = json::materialise(
        &json::Doc::Settings(&config),
        &layout.claude_home.join("settings.json"),
        &cfg.join("settings.json"),
    )?;
    state.claude_json = json::materialise(
        &json::Doc::ClaudeJson { layout, profile },
        &layout.claude_json,
        &cfg.join(".claude.json"),
    )?;
    state.ready = true;
    save_state(layout, profile, &state)
}

/// Starts a session of a profile, building its runtime when it has no live session.
pub fn acquire(layout: &Layout, opts: &AcquireOptions) -> Result<Acquired> {
    profile::check_name(&opts.profile)?;
    if let Some(0) = opts.owner_pid {
        return Err(coded(
            ErrorCode::InvalidRequest,
            "owner_pid must be a positive process id",
        ));
    }
    let _lock = StateLock::acquire(layout)?;
    profile::require(layout, &opts.profile)?;
    layout.require_claude_home()?;
    let name = opts.profile.as_str();
    let owner_start = match opts.owner_pid {
        None => None,
        Some(pid) => Some(platform::process_start_time(pid).ok_or_else(|| {
            coded(
                ErrorCode::InvalidRequest,
                format!("owner_pid {pid} is not a running process"),
            )
        })?),
    };
    env_link_mode(layout)?;
    let (live, _) = prune(layout)?;
    let existing = match live_of(&live, name).next() {
        // Live sessions use this runtime: it is never rebuilt under them, even when its state
        // cannot be read.
        Some(_) => Some(load_state(layout, name)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the runtime of profile {name} has live sessions but its state {} cannot be read; release them, then acquire again",
                layout.runtime_state(name).display()
            )
        })?),
        None => None,
    };
    let mode = match existing {
        Some(state) => {
            // Only a mode the request names can conflict; CLAUTH_LINK_MODE is a default for
            // new runtimes.
            let wanted = match opts.link_mode {
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
            state.link_mode
        }
        None => {
            let mode = decide_mode(layout, opts.link_mode, &layout.runtimes_dir())?;
            sweep_temp(&layout.runtimes_dir());
            teardown(layout, name)?;
            if let Err(e) = build(layout, name, mode) {
                // A half-built runtime holds links and copies only; the home is untouched.
                let _ = fsx::remove_entry(&layout.runtime_dir(name));
                return Err(e);
            }
            mode
        }
    };
    let now = now_ms();
    let mut record = SessionRecord {
        id: opts.held_session.clone().unwrap_or_else(session::new_id),
        profile: name.to_owned(),
        created_at: now,
        owner_pid: opts.owner_pid,
        owner_start,
        lease_ms: opts.lease_ms,
        lease_expires_at: None,
        held: opts.held_session.is_some(),
    };
    record.renew(now);
    session::save(layout, &record)?;
    let config_dir = layout.runtime_config_dir(name);
    Ok(Acquired {
        session: record.id,
        profile: name.to_owned(),
        env: BTreeMap::from([(
            "CLAUDE_CONFIG_DIR".to_owned(),
            config_dir.to_string_lossy().into_owned(),
        )]),
        config_dir,
        link_mode: mode,
        env_remove: profile::env_to_remove(&profile::load_config(layout, name)?),
        lease_expires_at: record.lease_expires_at,
    })
}

/// One reconciliation pass for a session's runtime; renews its lease.
pub fn tick(layout: &Layout, id: &str) -> Result<Ticked> {
    tick_with(layout, id, &mut TickCache::default())
}

/// A tick that keeps what it learned in `cache` for the next tick of the same runtime.
pub fn tick_with(layout: &Layout, id: &str, cache: &mut TickCache) -> Result<Ticked> {
    session::check_id(id)?;
    let _lock = StateLock::acquire(layout)?;
    prune(layout)?;
    let mut record = session::load(layout, id)?;
    let report = sync_and_record(layout, &record.profile, cache)?;
    if record.lease_ms.is_some() {
        record.renew(now_ms());
        session::save(layout, &record)?;
    }
    Ok(Ticked {
        session: record.id,
        lease_expires_at: record.lease_expires_at,
        report,
    })
}

/// Ends a session: a final sync, and teardown when it was the profile's last live session.
pub fn release(layout: &Layout, id: &str) -> Result<Released> {
    session::check_id(id)?;
    let _lock = StateLock::acquire(layout)?;
    // Load before pruning, so a session whose lease just ran out can still be released cleanly.
    let record = session::load(layout, id)?;
    let (live, _) = prune(layout)?;
    let remaining = live_of(&live, &record.profile)
        .filter(|r| r.id != record.id)
        .count();
    let (report, removed) = if remaining == 0 {
        (teardown(layout, &record.profile)?, true)
    } else {
        (
            sync_and_record(layout, &record.profile, &mut TickCache::default())?,
            false,
        )
    };
    session::remove(layout, &record.id)?;
    Ok(Released {
        session: record.id,
        runtime_removed: removed,
        remaining_sessions: remaining,
        report,
    })
}

/// Profiles with their live sessions, runtimes and a redacted credentials summary.
pub fn status(layout: &Layout, only: Option<&str>) -> Result<Status> {
    if let Some(name) = only {
        profile::check_name(name)?;
    }
    let _lock = StateLock::acquire(layout)?;
    if let Some(name) = only {
        profile::require(layout, name)?;
    }
    let (live, _) = prune(layout)?;
    let names = match only {
        Some(name) => vec![name.to_owned()],
        None => profile::list(layout)?,
    };
    let mut profiles = Vec::new();
    for name in names {
        profiles.push(profile_status(layout, &name, &live)?);
    }
    Ok(Status { profiles })
}

fn profile_status(layout: &Layout, name: &str, live: &[SessionRecord]) -> Result<ProfileStatus> {
    let sessions: Vec<SessionInfo> = live_of(live, name)
        .map(|r| SessionInfo {
            session: r.id.clone(),
            created_at: r.created_at,
            owner_pid: r.owner_pid,
            lease_expires_at: r.lease_expires_at,
            held: r.held,
        })
        .collect();
    let runtime = load_state(layout, name)?.map(|state| RuntimeInfo {
        config_dir: layout.runtime_config_dir(name),
        link_mode: state.link_mode,
        orphaned: sessions.is_empty(),
    });
    let credentials = credentials::Report::of(profile::read_credentials(layout, name)?.as_deref());
    Ok(ProfileStatus {
        name: name.to_owned(),
        sessions,
        runtime,
        credentials,
    })
}

/// Status of one profile, for `profile show`.
pub fn profile_status_of(layout: &Layout, name: &str) -> Result<ProfileStatus> {
    let status = status(layout, Some(name))?;
    status
        .profiles
        .into_iter()
        .next()
        .context("profile vanished")
}

/// Removes what crashed writers and teardowns left under `dir`: temp files and trash
/// directories (never anything without the temp prefix). Runs under the state lock, so no
/// clauth-helper is writing them now.
fn sweep_temp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(fsx::TEMP_PREFIX)
        {
            let _ = fsx::remove_entry(&entry.path());
        }
    }
}

/// Reclaims runtimes that no live session uses, after a final sync, and sweeps the temp files
/// and trash that crashed processes left in the store.
pub fn gc(layout: &Layout) -> Result<Collected> {
    let _lock = StateLock::acquire(layout)?;
    sweep_temp(&layout.runtimes_dir());
    sweep_temp(&layout.sessions_dir());
    sweep_temp(&layout.store);
    for name in profile::list(layout)? {
        sweep_temp(&layout.profile_dir(&name));
    }
    let (live, pruned) = prune(layout)?;
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(layout.runtimes_dir())
        .with_context(|| format!("cannot read {}", layout.runtimes_dir().display()))?
    {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(fsx::TEMP_PREFIX) {
            continue;
        }
        if profile::check_name(&name).is_err() || live_of(&live, &name).next().is_some() {
            continue;
        }
        teardown(layout, &name)?;
        removed.push(name);
    }
    Ok(Collected {
        runtimes_removed: removed,
        sessions_pruned: pruned,
    })
}

/// Removes a profile, refused while it has a live session; its idle runtime is synced first.
pub fn remove_profile(layout: &Layout, name: &str) -> Result<()> {
    profile::check_name(name)?;
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
    teardown(layout, name)?;
    fsx::remove_entry(&layout.profile_dir(name))
}

/// Adds or replaces a profile under the state lock; replacing is refused during a live session,
/// whose refreshed tokens would otherwise race the import.
pub fn add_profile(
    layout: &Layout,
    name: &str,
    source: profile::CredentialSource,
    env: BTreeMap<String, String>,
    replace: bool,
) -> Result<()> {
    profile::check_name(name)?;
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
    let from_claude = matches!(source, profile::CredentialSource::FromClaude);
    profile::add(layout, name, source, env, replace)?;
    if from_claude {
        // The home's login comes with its account keys: the profile's sessions start as the
        // same account (Claude Code would otherwise look it up again).
        json::import_account(layout, name)?;
    }
    Ok(())
}
