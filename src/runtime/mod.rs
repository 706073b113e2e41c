//! One runtime: its build, its sync with the claude home and the profile, and its teardown.
//!
//! A runtime lives in `runtimes/<profile>/`: its `config/` is handed to Claude Code, and
//! `state.json` and `manifest.tsv` record the last sync. The caller holds the profile's lock;
//! what a sync shares with other profiles (the entries of the claude home that real mode links
//! to and adopts into, and the merges of the two documents) is done here under the store lock,
//! taken for just that part (see [`crate::lock`]). Nothing here knows of sessions.

mod account;
mod cache;
mod creds;
mod documents;
mod fake;
mod item;
mod names;
mod per_profile;
mod real;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use account::{
    ACCOUNT_KEYS, account_uuid, home_account, import_account, load_account, remove_account,
    save_account, set_home_account,
};
pub use cache::TickCache;
use cache::{ManifestStamp, cached_state, manifest_stamp};
pub use names::{MANAGED, PER_PROFILE, is_managed};
pub use watch::{Filter, Notifier, Route, Touched, Waker};

use crate::fsx;
use crate::ids::now_ms;
use crate::layout::Layout;
use crate::lock::StateLock;
use crate::profile;
use crate::protocol::{LinkMode, LinkModeRequest, SyncReport};

/// A runtime's record of itself and of its last sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub link_mode: LinkMode,
    pub created_at: i64,
    /// False until the build finished; a runtime never finished was never handed out.
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub settings: documents::JsonSync,
    #[serde(default)]
    pub claude_json: documents::JsonSync,
    #[serde(default)]
    pub credentials: creds::CredSync,
    /// The claude home the runtime was built for (canonical). Its syncs go there whatever
    /// `HOME` the calling process has: two homes sharing one store never trade entries.
    /// Missing in runtimes built by earlier versions, which use the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude_home: Option<PathBuf>,
}

impl RuntimeState {
    /// The layout a sync of this runtime uses: `layout` with the runtime's own claude home.
    pub fn layout_for<'a>(&self, layout: &'a Layout) -> std::borrow::Cow<'a, Layout> {
        match &self.claude_home {
            Some(home) if *home != layout.claude_home => {
                std::borrow::Cow::Owned(layout.with_claude_home(home))
            }
            _ => std::borrow::Cow::Borrowed(layout),
        }
    }
}

fn yes() -> bool {
    true
}

pub fn load_state(layout: &Layout, profile: &str) -> Result<Option<RuntimeState>> {
    match fsx::read_optional(&layout.runtime_state(profile))? {
        None => Ok(None),
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
    }
}

pub(crate) fn save_state(layout: &Layout, profile: &str, state: &RuntimeState) -> Result<()> {
    fsx::atomic_write(
        &layout.runtime_state(profile),
        &serde_json::to_vec_pretty(state)?,
        fsx::PRIVATE_FILE,
    )
}

/// The mode of a new runtime: the one asked for, or, for `auto`, real where symlinks work in
/// `probe_dir`.
pub fn decide_mode(asked: LinkModeRequest, probe_dir: &Path) -> LinkMode {
    match asked {
        LinkModeRequest::Real => LinkMode::Real,
        LinkModeRequest::Fake => LinkMode::Fake,
        LinkModeRequest::Auto if fsx::symlinks_work(probe_dir) => LinkMode::Real,
        LinkModeRequest::Auto => LinkMode::Fake,
    }
}

/// One sync of a runtime with the claude home and the profile. Returns the report and whether
/// the state changed.
fn sync_runtime(
    layout: &Layout,
    profile: &str,
    state: &mut RuntimeState,
    scope: &fake::Scope,
    manifests: &mut Option<(ManifestStamp, fake::Manifest)>,
    kept: &mut documents::Cache,
) -> Result<Pass> {
    let layout = &*state.layout_for(layout);
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
            creds::sync_real(&canonical, &cred_file, &mut report)?;
            {
                // The home's entries are every real-mode runtime's: two adoptions of one new
                // name must not meet.
                let _store = StateLock::acquire(layout)?;
                real::recover(&layout.claude_home, &cfg, &mut report)?;
                real::sync(&layout.claude_home, &cfg, &mut report)?;
            }
            per_profile::link(layout, profile, &cfg)?;
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
    if let Some(kc) = &layout.keychain {
        item::sync(kc, &item::service(layout, profile), &canonical, &mut report)?;
    }
    let docs = sync_documents(layout, profile, &config, state, kept, &mut report)?;
    Ok(Pass {
        report,
        touched: touched || docs.touched,
        deferred: docs.deferred,
    })
}

/// The sync of the two documents, under the store lock: the home's take every runtime's keys,
/// so merges into them never overlap.
fn sync_documents(
    layout: &Layout,
    profile: &str,
    config: &profile::ProfileConfig,
    state: &mut RuntimeState,
    kept: &mut documents::Cache,
    report: &mut SyncReport,
) -> Result<documents::Synced> {
    let cfg = layout.runtime_config_dir(profile);
    let _store = StateLock::acquire(layout)?;
    documents::sync_all(layout, profile, config, &cfg, state, kept, report)
}

/// What one sync pass did.
struct Pass {
    report: SyncReport,
    /// The state changed and must be saved.
    touched: bool,
    /// A document write waited for another writer; the session's changes are still only in
    /// the runtime.
    deferred: bool,
}

/// How many times a teardown syncs the documents again while another writer holds one back,
/// and the pause between: a few seconds in all (each try waits at most 200 ms for each of
/// Claude Code's locks), far longer than Claude Code holds them.
const LAST_PASS_TRIES: u32 = 8;
const LAST_PASS_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The last sync before a runtime goes: one whole pass, then the documents again while a write
/// of theirs is held back, so what the session wrote reaches its place before its copy is
/// removed; `lock_timeout` (the runtime left as it is) when another writer held one back the
/// whole time.
fn last_pass(layout: &Layout, profile: &str, state: &mut RuntimeState) -> Result<SyncReport> {
    let mut kept = documents::Cache::default();
    let pass = sync_runtime(
        layout,
        profile,
        state,
        &fake::Scope::Full,
        &mut None,
        &mut kept,
    )?;
    let mut report = pass.report;
    let (mut touched, mut deferred) = (pass.touched, pass.deferred);
    for tries in 0.. {
        // Recorded before the removal: a crash in between must not replay this merge of the
        // documents from a base that is already out of date.
        if touched {
            save_state(layout, profile, state)?;
        }
        if deferred && tries == LAST_PASS_TRIES {
            break;
        }
        if !deferred {
            // What still could not be merged (a document that does not parse) is kept in the
            // profile before the runtime goes.
            let home = state.layout_for(layout).into_owned();
            let cfg = home.runtime_config_dir(profile);
            documents::keep_unmerged(&home, profile, &cfg, state, &mut report)?;
            return Ok(report);
        }
        std::thread::sleep(LAST_PASS_PAUSE);
        let home = state.layout_for(layout).into_owned();
        let config = profile::load_config(&home, profile)?;
        let docs = sync_documents(&home, profile, &config, state, &mut kept, &mut report)?;
        (touched, deferred) = (docs.touched, docs.deferred);
    }
    Err(crate::error::coded(
        crate::error::ErrorCode::LockTimeout,
        format!(
            "another writer kept ~/.claude.json or settings.json locked while the last session of profile {profile} ended; its runtime stays until it can be synced: release again, or run `clauth-helper gc`"
        ),
    ))
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
        Some(layout),
        report,
    )?;
    if manifest.is_dirty() {
        manifest.save(&path)?;
    }
    *manifests = Some((manifest_stamp(&path)?, manifest));
    Ok(())
}

/// One sync of the runtime of `profile` (nothing when it has none), with what `cache` kept from
/// the last one; the state is saved when it changed.
pub fn sync(layout: &Layout, profile: &str, cache: &mut TickCache) -> Result<SyncReport> {
    let scope = match cached_state(layout, profile, cache)? {
        None => return Ok(SyncReport::default()),
        Some(state) if state.link_mode == LinkMode::Fake => {
            let layout = state.layout_for(layout).into_owned();
            cache.scope(&layout, profile)
        }
        Some(_) => fake::Scope::Full,
    };
    let TickCache {
        state,
        manifest,
        documents,
        ..
    } = cache;
    let Some((_, state)) = state.as_mut() else {
        return Ok(SyncReport::default());
    };
    let Pass {
        report, touched, ..
    } = sync_runtime(layout, profile, state, &scope, manifest, documents)?;
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
pub fn teardown(layout: &Layout, profile: &str) -> Result<SyncReport> {
    let dir = layout.runtime_dir(profile);
    if !dir.exists() {
        // An item left without its runtime (a crash, another tool): nothing says whose login
        // it is, so it is kept aside in the profile, never dropped, before it goes.
        if let Some(kc) = &layout.keychain {
            let canonical = layout.profile_credentials(profile);
            item::salvage(kc, &item::service(layout, profile), &canonical)?;
        }
        return Ok(SyncReport::default());
    }
    let cfg = layout.runtime_config_dir(profile);
    let report = match load_state(layout, profile)? {
        Some(state) if !state.ready => SyncReport::default(),
        // Without its config dir there is nothing to sync, and a mirror pass would read every
        // missing file as a deletion.
        Some(_) if !cfg.is_dir() => SyncReport::default(),
        Some(mut state) => last_pass(layout, profile, &mut state)?,
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
                Some(layout),
                &mut report,
            )?;
            report
        }
        None => SyncReport::default(),
    };
    let mut report = report;
    if let Some(kc) = &layout.keychain {
        // Read once more, so a refresh that landed during the sync is saved, then removed:
        // the login's place is the profile again.
        let service = item::service(layout, profile);
        item::sync(
            kc,
            &service,
            &layout.profile_credentials(profile),
            &mut report,
        )?;
        kc.delete(&service)?;
    }
    if cfg.is_dir() {
        per_profile::move_back(layout, profile, &cfg)?;
    }
    // Out of the way in one rename before the slow delete: a crash while deleting leaves a
    // trash directory that is removed later without a sync, never a half-deleted runtime whose
    // missing files a later sync would carry to the claude home as deletions.
    let trash = fsx::unique_sibling(&layout.runtimes_dir(), "trash");
    std::fs::rename(&dir, &trash)
        .with_context(|| format!("cannot move {} aside", dir.display()))?;
    // Trash holds nothing of anyone's any more: a removal cut short (or racing an acquire's
    // sweep of trash) is finished by a later sweep.
    let _ = fsx::remove_entry(&trash);
    Ok(report)
}

pub fn build(layout: &Layout, profile: &str, mode: LinkMode) -> Result<()> {
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
        claude_home: Some(layout.claude_home.clone()),
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
            per_profile::link(layout, profile, &cfg)?;
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
                None,
                &mut report,
            )?;
            manifest.save(&layout.runtime_manifest(profile))?;
            per_profile::copy_in(layout, profile, &cfg)?;
            creds::place_fake(&canonical, &cred_file, &mut state.credentials)?;
        }
    }
    state.settings = documents::materialise(
        &documents::Doc::Settings(&config),
        &layout.claude_home.join("settings.json"),
        &cfg.join("settings.json"),
    )?;
    state.claude_json = documents::materialise(
        &documents::Doc::ClaudeJson { layout, profile },
        &layout.claude_json,
        &cfg.join(".claude.json"),
    )?;
    if let Some(kc) = &layout.keychain {
        item::seed(kc, &item::service(layout, profile), &canonical)?;
    }
    state.ready = true;
    save_state(layout, profile, &state)
}

/// Removes a runtime whose build failed: it holds links and copies only, and its Keychain item
/// at most the profile's own login again.
pub fn discard(layout: &Layout, profile: &str) {
    if let Some(kc) = &layout.keychain {
        let _ = kc.delete(&item::service(layout, profile));
    }
    let _ = fsx::remove_entry(&layout.runtime_dir(profile));
}
