//! The two JSON documents a runtime keeps as its own files in both link modes, `settings.json`
//! and `.claude.json`, synced with the claude home key by key.
//!
//! The runtime's copy is the shared document (the home's) with the profile's overlay applied:
//! for settings the profile's `env`, for `.claude.json` the account-bound keys. A tick splits the
//! overlay off again, and a three-way merge against the last synced shared document sends keys
//! changed in the session to the home and keys changed in the home to the runtime. A document that
//! does not parse is never written over and never propagated.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fsx::{self, Stamp};
use crate::layout::Layout;
use crate::profile::ProfileConfig;

use super::SyncReport;
use super::account::{ACCOUNT_KEYS, load_account, save_account};

/// How long a merge waits for Claude Code's lock on a home document before leaving the write
/// to the next tick.
const HOME_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// What a tick last knew of one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonSync {
    /// The runtime file as we last read or wrote it.
    pub runtime: Option<Stamp>,
    /// The home file as we last read or wrote it.
    pub home: Option<Stamp>,
    /// The shared document (overlay removed) at the last sync.
    pub base: Map<String, Value>,
}

/// Which document, and how the profile's overlay goes on and comes off.
pub enum Doc<'a> {
    Settings(&'a ProfileConfig),
    ClaudeJson {
        layout: &'a Layout,
        profile: &'a str,
    },
}

impl Doc<'_> {
    /// Keys of the home's document that are the home account's own: never shared, kept as is.
    fn home_private(&self) -> &'static [&'static str] {
        match self {
            Doc::Settings(_) => &[],
            Doc::ClaudeJson { .. } => ACCOUNT_KEYS,
        }
    }

    /// Splits the home's document into its shared part and the keys it keeps to itself.
    fn split_home(&self, mut doc: Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
        let mut private = Map::new();
        for key in self.home_private() {
            if let Some(v) = doc.shift_remove(*key) {
                private.insert((*key).to_owned(), v);
            }
        }
        (doc, private)
    }

    /// The runtime's document: the shared one with the overlay on.
    fn overlay(&self, shared: &Map<String, Value>) -> Result<Map<String, Value>> {
        let mut doc = shared.clone();
        match self {
            Doc::Settings(config) => {
                if !config.env.is_empty() {
                    let env = doc
                        .entry("env")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !env.is_object() {
                        *env = Value::Object(Map::new());
                    }
                    if let Value::Object(env) = env {
                        for (k, v) in &config.env {
                            env.insert(k.clone(), Value::String(v.clone()));
                        }
                    }
                }
            }
            Doc::ClaudeJson { layout, profile } => {
                for key in ACCOUNT_KEYS {
                    doc.shift_remove(*key);
                }
                doc.extend(load_account(layout, profile)?);
            }
        }
        Ok(doc)
    }

    /// The shared part of the runtime's document; the overlay goes back where it belongs.
    fn split(
        &self,
        runtime: Map<String, Value>,
        base: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, bool)> {
        let mut doc = runtime;
        let mut saved_profile = false;
        match self {
            Doc::Settings(config) => {
                // The profile's env keys are the profile's: in the shared document they keep
                // whatever the home had, whatever the session did to them.
                if !config.env.is_empty() {
                    let base_env = base.get("env").and_then(Value::as_object);
                    if let Some(Value::Object(env)) = doc.get_mut("env") {
                        for k in config.env.keys() {
                            match base_env.and_then(|b| b.get(k)) {
                                Some(v) => {
                                    env.insert(k.clone(), v.clone());
                                }
                                None => {
                                    env.shift_remove(k);
                                }
                            }
                        }
                        if env.is_empty() && base_env.is_none() {
                            doc.shift_remove("env");
                        }
                    }
                }
            }
            Doc::ClaudeJson { layout, profile } => {
                let mut account = Map::new();
                for key in ACCOUNT_KEYS {
                    if let Some(v) = doc.shift_remove(*key) {
                        account.insert((*key).to_owned(), v);
                    }
                }
                if account != load_account(layout, profile)? {
                    save_account(layout, profile, &account)?;
                    saved_profile = true;
                }
            }
        }
        Ok((doc, saved_profile))
    }
}

/// Reads a JSON object; `Ok(None)` when the file is missing, `Err` when it does not parse.
pub(super) fn read_object(path: &Path) -> Result<Option<Map<String, Value>>> {
    match fsx::read_optional(path)? {
        None => Ok(None),
        Some(bytes) => crate::nodejson::from_slice::<Map<String, Value>>(&bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not a JSON object", path.display())),
    }
}

/// Writes `doc` at `path` over the version stamped `expected` only; `None` when another writer
/// got there first (its version is kept).
fn write_object_over(
    path: &Path,
    doc: &Map<String, Value>,
    mode: u32,
    expected: Option<Stamp>,
) -> Result<Option<Stamp>> {
    let mut bytes = crate::nodejson::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    fsx::replace_if_unchanged(path, &bytes, mode, expected)
}

fn write_object(path: &Path, doc: &Map<String, Value>, mode: u32) -> Result<Stamp> {
    let mut bytes = crate::nodejson::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    fsx::atomic_write(path, &bytes, mode)?;
    Stamp::at(path)?.with_context(|| format!("{} vanished after it was written", path.display()))
}

/// The permission bits of the file `path` leads to (a link is followed), or 0600.
fn mode_or_private(path: &Path) -> u32 {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| crate::platform::mode_of(&m))
        .unwrap_or(fsx::PRIVATE_FILE)
}

/// Writes the runtime's document from the home's at acquire.
pub fn materialise(doc: &Doc, home: &Path, runtime: &Path) -> Result<JsonSync> {
    let home = &fsx::resolve_link(home);
    // A home document that does not parse is left alone; the session starts from an empty one
    // and its changes are not sent home until the home parses again.
    let (base, home_stamp) = match read_object(home) {
        Ok(found) => (
            doc.split_home(found.unwrap_or_default()).0,
            Stamp::at(home)?,
        ),
        Err(_) => (Map::new(), None),
    };
    let runtime_stamp = write_object(runtime, &doc.overlay(&base)?, fsx::PRIVATE_FILE)?;
    Ok(JsonSync {
        runtime: Some(runtime_stamp),
        home: home_stamp,
        base,
    })
}

/// What one document's sync did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub saved_home: bool,
    pub updated_runtime: bool,
    /// The profile's part of the document (its account keys) was saved.
    pub saved_profile: bool,
    /// The runtime's copy did not parse and was left alone.
    pub rejected: bool,
    /// The home's document did not parse: nothing was merged, the session's changes wait.
    pub home_rejected: bool,
    /// The sync state changed and must be saved.
    pub touched: bool,
}

/// One three-way sync of a document between the runtime and the home.
pub fn sync(doc: &Doc, home: &Path, runtime: &Path, state: &mut JsonSync) -> Result<Outcome> {
    // A home document linked in from a dotfiles repository is written where the link leads.
    let home = &fsx::resolve_link(home);
    let mut out = Outcome::default();
    let runtime_now = Stamp::at(runtime)?;
    let home_now = Stamp::at(home)?;
    if runtime_now == state.runtime && home_now == state.home {
        return Ok(out);
    }
    out.touched = true;
    let base = state.base.clone();

    let session = if runtime_now != state.runtime {
        match read_object(runtime) {
            Ok(Some(doc_now)) => {
                let (shared, saved_profile) = doc.split(doc_now, &base)?;
                out.saved_profile = saved_profile;
                Some(shared)
            }
            Ok(None) => None,
            Err(_) => {
                out.rejected = true;
                None
            }
        }
    } else {
        None
    };
    let (home_doc, home_private, home_parses) = match read_object(home) {
        Ok(Some(found)) => {
            let (shared, private) = doc.split_home(found);
            (Some(shared), private, true)
        }
        Ok(None) => (None, Map::new(), true),
        Err(_) => (None, Map::new(), false),
    };

    let mut shared = base.clone();
    if let Some(home_doc) = &home_doc
        && home_now != state.home
    {
        apply_changes(&mut shared, &base, home_doc);
    }
    if let Some(session) = &session {
        apply_changes(&mut shared, &base, session);
    }

    // Both writes go over exactly the version read: when Claude Code (or a plain `claude` on
    // the home) renamed a newer one in meanwhile, that one stays, this write is dropped, and
    // the next tick merges again from the stamps left unchanged here.
    let mut home_written = true;
    if home_parses
        && home_doc.as_ref() != Some(&shared)
        && (home_doc.is_some() || !shared.is_empty())
    {
        let mut whole = shared.clone();
        whole.extend(home_private);
        // Under Claude Code's own lock on the file, so its read-modify-write saves and this
        // merge never interleave; while it holds the lock the merge waits for a later tick.
        let mut lock_path = home.as_os_str().to_owned();
        lock_path.push(".lock");
        match fsx::LockDir::take(Path::new(&lock_path), HOME_LOCK_WAIT)? {
            None => home_written = false,
            Some(_lock) => {
                match write_object_over(home, &whole, mode_or_private(home), home_now)? {
                    Some(stamp) => {
                        state.home = Some(stamp);
                        out.saved_home = true;
                    }
                    None => home_written = false,
                }
            }
        }
    } else {
        state.home = home_now;
    }
    if !(home_parses && home_written) {
        // The home could not take the merge (it does not parse, or another writer got there
        // first): the session's document stays as it is and its stamp unrecorded, so its
        // changes are merged again by the next tick instead of being written over from the
        // old base.
        out.home_rejected = !home_parses;
        return Ok(out);
    }
    state.base = shared.clone();
    state.runtime = runtime_now;
    if !out.rejected {
        let wanted = doc.overlay(&state.base)?;
        let current = read_object(runtime).ok().flatten();
        if current.as_ref() != Some(&wanted)
            && let Some(stamp) =
                write_object_over(runtime, &wanted, fsx::PRIVATE_FILE, runtime_now)?
        {
            state.runtime = Some(stamp);
            out.updated_runtime = true;
        }
    }
    Ok(out)
}

/// Applies to `target` every top-level key where `changed` differs from `base` (removals too).
fn apply_changes(
    target: &mut Map<String, Value>,
    base: &Map<String, Value>,
    changed: &Map<String, Value>,
) {
    for (k, v) in changed {
        if base.get(k) != Some(v) {
            target.insert(k.clone(), v.clone());
        }
    }
    for k in base.keys() {
        if !changed.contains_key(k) {
            target.shift_remove(k);
        }
    }
}

/// Syncs `settings.json` and `.claude.json`; returns whether the state changed.
pub fn sync_all(
    layout: &Layout,
    profile: &str,
    config: &ProfileConfig,
    cfg: &Path,
    state: &mut super::RuntimeState,
    report: &mut SyncReport,
) -> Result<bool> {
    let settings = sync(
        &Doc::Settings(config),
        &layout.claude_home.join("settings.json"),
        &cfg.join("settings.json"),
        &mut state.settings,
    )?;
    report.settings_saved = settings.saved_home;
    if settings.rejected {
        report.rejected_documents.push("settings.json".into());
    }
    if settings.home_rejected {
        let path = layout.claude_home.join("settings.json");
        report.rejected_documents.push(path.display().to_string());
    }
    let claude_json = sync(
        &Doc::ClaudeJson { layout, profile },
        &layout.claude_json,
        &cfg.join(".claude.json"),
        &mut state.claude_json,
    )?;
    report.claude_json_saved = claude_json.saved_home || claude_json.saved_profile;
    if claude_json.rejected {
        report.rejected_documents.push(".claude.json".into());
    }
    if claude_json.home_rejected {
        report
            .rejected_documents
            .push(layout.claude_json.display().to_string());
    }
    Ok(settings.touched || claude_json.touched)
}
