//! The two JSON documents a runtime keeps as its own files in both link modes, `settings.json`
//! and `.claude.json`, synced with the claude home key by key.
//!
//! The runtime's copy is the shared document (the home's) with the profile's overlay applied:
//! for settings the profile's `env`, for `.claude.json` the account-bound keys. A tick splits the
//! overlay off again, and a three-way merge against the last synced shared document sends keys
//! changed in the session to the home and keys changed in the home to the runtime. A document that
//! does not parse is never written over and never propagated.
//!
//! Long-time users have a `~/.claude.json` of tens or hundreds of megabytes that Claude Code
//! rewrites many times a minute, so a sync works on each top-level value as written (a raw slice
//! of the text, never a tree of values) and remembers the last synced document as a digest per
//! key, not as a copy. A tick with nothing changed reads no document; one after a rewrite reads
//! the runtime's and the home's once each, compares values by their bytes, and writes the home
//! from the slices it read, in Claude Code's own layout (`JSON.stringify(doc, null, 2)`), so what
//! it did not change comes back byte for byte.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    /// A digest of each top-level value of the shared document (overlay removed) at the last
    /// sync.
    #[serde(default)]
    pub digests: IndexMap<String, String>,
    /// The shared document itself, as earlier versions kept it: read once, turned into digests.
    #[serde(default, skip_serializing)]
    pub base: Map<String, Value>,
}

/// A document read as its top-level keys and each key's value as written, borrowed from the
/// text read: a document costs its text and an index, not a copy.
type RawDoc<'t> = IndexMap<String, &'t RawValue>;

/// A document made of values borrowed from documents read, and of values made here.
type View<'a> = IndexMap<String, Cow<'a, RawValue>>;

fn view<'t>(doc: &RawDoc<'t>) -> View<'t> {
    doc.iter()
        .map(|(k, v)| (k.clone(), Cow::Borrowed(*v)))
        .collect()
}

/// A document's text as Node's `JSON.parse` reads it (lone surrogate escapes marked), or
/// `None` when the file is missing.
fn read_text(path: &Path) -> Result<Option<Vec<u8>>> {
    Ok(
        fsx::read_optional(path)?.map(|bytes| match crate::nodejson::mark(&bytes) {
            Cow::Borrowed(_) => bytes,
            Cow::Owned(marked) => marked,
        }),
    )
}

/// Parses a document's text; `Err` when it is not a JSON object.
fn parse_raw<'t>(text: &'t [u8], path: &Path) -> Result<RawDoc<'t>> {
    serde_json::from_slice(text)
        .map_err(|_| anyhow::anyhow!("{} is not a JSON object", path.display()))
}

/// The text of a document in `JSON.stringify(doc, null, 2)`'s layout, from its values as
/// written (a value written in that layout at the top level is already indented for it).
fn render<'v>(entries: impl Iterator<Item = (&'v str, &'v RawValue)>, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    out.push(b'{');
    let mut any = false;
    for (key, value) in entries {
        out.extend_from_slice(if any { b",\n  " } else { b"\n  " });
        any = true;
        serde_json::to_writer(&mut out, key).expect("a string serialises");
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.get().as_bytes());
    }
    out.extend_from_slice(if any { b"\n}\n" } else { b"}\n" });
    crate::nodejson::unmark(out)
}

fn size_of(doc: &View) -> usize {
    doc.iter().map(|(k, v)| k.len() + v.get().len() + 6).sum()
}

/// A value as written at the top level of a document in Claude Code's layout.
fn raw_of(value: &Value) -> Box<RawValue> {
    let text = serde_json::to_string_pretty(value).expect("a value serialises");
    // Strings hold no raw newline, so each newline starts a line to indent one level more.
    RawValue::from_string(text.replace('\n', "\n  ")).expect("serialised JSON is JSON")
}

fn value_of(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The digest a value is remembered by: the first 16 bytes of the SHA-256 of its text.
fn digest(raw: &RawValue) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(raw.get().as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same_docs(a: &View, b: &View) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
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
    fn split_home<'a>(&self, doc: &RawDoc<'a>) -> (View<'a>, View<'a>) {
        let private = self.home_private();
        let mut shared = View::with_capacity(doc.len());
        let mut own = View::new();
        for (k, v) in doc {
            let side = if private.contains(&k.as_str()) {
                &mut own
            } else {
                &mut shared
            };
            side.insert(k.clone(), Cow::Borrowed(*v));
        }
        (shared, own)
    }

    /// The runtime's document: the shared one with the overlay on.
    fn overlay<'a>(&self, shared: &View<'a>) -> Result<View<'a>> {
        let mut doc = shared.clone();
        match self {
            Doc::Settings(config) => {
                if !config.env.is_empty() {
                    let mut env = match doc.get("env").map(|v| value_of(v)) {
                        Some(Value::Object(env)) => env,
                        _ => Map::new(),
                    };
                    for (k, v) in &config.env {
                        env.insert(k.clone(), Value::String(v.clone()));
                    }
                    doc.insert("env".into(), Cow::Owned(raw_of(&Value::Object(env))));
                }
            }
            Doc::ClaudeJson { layout, profile } => {
                doc.retain(|k, _| !ACCOUNT_KEYS.contains(&k.as_str()));
                for (k, v) in load_account(layout, profile)? {
                    doc.insert(k, Cow::Owned(raw_of(&v)));
                }
            }
        }
        Ok(doc)
    }

    /// The shared part of the runtime's document; the overlay goes back where it belongs.
    /// `home` is the home's shared document, whose values the profile's env keys keep.
    fn split<'a>(&self, runtime: &RawDoc<'a>, home: Option<&View>) -> Result<(View<'a>, bool)> {
        let mut doc = view(runtime);
        let mut saved_profile = false;
        match self {
            Doc::Settings(config) => {
                // The profile's env keys are the profile's: in the shared document they keep
                // whatever the home has, whatever the session did to them.
                if !config.env.is_empty()
                    && let Some(Value::Object(mut env)) = doc.get("env").map(|v| value_of(v))
                {
                    let home_env = match home.and_then(|h| h.get("env")).map(|v| value_of(v)) {
                        Some(Value::Object(e)) => Some(e),
                        _ => None,
                    };
                    for k in config.env.keys() {
                        match home_env.as_ref().and_then(|e| e.get(k)) {
                            Some(v) => {
                                env.insert(k.clone(), v.clone());
                            }
                            None => {
                                env.shift_remove(k);
                            }
                        }
                    }
                    if env.is_empty() && home_env.is_none() {
                        doc.shift_remove("env");
                    } else {
                        doc.insert("env".into(), Cow::Owned(raw_of(&Value::Object(env))));
                    }
                }
            }
            Doc::ClaudeJson { layout, profile } => {
                let mut account = Map::new();
                doc.retain(|k, v| {
                    if ACCOUNT_KEYS.contains(&k.as_str()) {
                        account.insert(k.clone(), value_of(v));
                        false
                    } else {
                        true
                    }
                });
                if account != load_account(layout, profile)? {
                    save_account(layout, profile, &account)?;
                    saved_profile = true;
                }
            }
        }
        Ok((doc, saved_profile))
    }
}

/// Reads a JSON object as values; `Ok(None)` when the file is missing, `Err` when it does not
/// parse. For the small reads outside a sync (the account keys of the home).
pub(super) fn read_object(path: &Path) -> Result<Option<Map<String, Value>>> {
    match fsx::read_optional(path)? {
        None => Ok(None),
        Some(bytes) => crate::nodejson::from_slice::<Map<String, Value>>(&bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not a JSON object", path.display())),
    }
}

/// The values of `keys` in the JSON object at `path`, without building the rest of it (a big
/// `~/.claude.json` costs one read and a scan); `Ok(None)` when the file is missing, `Err` when
/// it does not parse.
pub(super) fn read_keys(path: &Path, keys: &[&str]) -> Result<Option<Map<String, Value>>> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    let doc = parse_raw(&text, path)?;
    let picked = doc
        .iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), value_of(v)))
        .collect();
    Ok(Some(picked))
}

/// The permission bits of the file `path` leads to (a link is followed), or 0600.
fn mode_or_private(path: &Path) -> u32 {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| crate::platform::mode_of(&m))
        .unwrap_or(fsx::PRIVATE_FILE)
}

fn digests_of(doc: &View) -> IndexMap<String, String> {
    doc.iter().map(|(k, v)| (k.clone(), digest(v))).collect()
}

/// Writes the runtime's document from the home's at acquire.
pub fn materialise(doc: &Doc, home: &Path, runtime: &Path) -> Result<JsonSync> {
    let home = &fsx::resolve_link(home);
    // A home document that does not parse is left alone; the session starts from an empty one
    // and its changes are not sent home until the home parses again.
    let text = read_text(home)?;
    let (found, home_stamp) = match text.as_deref().map(|t| parse_raw(t, home)).transpose() {
        Ok(found) => (found.unwrap_or_default(), Stamp::at(home)?),
        Err(_) => (RawDoc::new(), None),
    };
    let (base, _) = doc.split_home(&found);
    let wanted = doc.overlay(&base)?;
    let bytes = render(
        wanted.iter().map(|(k, v)| (k.as_str(), &**v)),
        size_of(&wanted),
    );
    fsx::atomic_write(runtime, &bytes, fsx::PRIVATE_FILE)?;
    let runtime_stamp = Stamp::at(runtime)?
        .with_context(|| format!("{} vanished after it was written", runtime.display()))?;
    Ok(JsonSync {
        runtime: Some(runtime_stamp),
        home: home_stamp,
        digests: digests_of(&base),
        base: Map::new(),
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
    /// A write waited for another writer (Claude Code's lock on either copy, or a newer
    /// version renamed in meanwhile): the session's changes stay in its copy for the next sync.
    pub deferred: bool,
}

/// The three-way merge of the shared documents, key by key, against the digests of the last
/// sync: a key changed on one side takes that side's value (a removal too); changed on both,
/// the session's. A key changed on neither keeps its value, which either side holds. The
/// home's order is kept, and keys new in the session follow in the session's order. Returns the
/// merged document and its digests.
fn merge<'a>(
    base: &IndexMap<String, String>,
    home: Option<&View<'a>>,
    home_changed: bool,
    session: Option<&View<'a>>,
) -> (View<'a>, IndexMap<String, String>) {
    let mut merged = View::new();
    let mut digests = IndexMap::new();
    let empty = View::new();
    let home_doc = home.unwrap_or(&empty);
    let keys: Vec<&String> = {
        let mut seen = indexmap::IndexSet::new();
        for k in home_doc.keys() {
            seen.insert(k);
        }
        if let Some(s) = session {
            for k in s.keys() {
                seen.insert(k);
            }
        }
        for k in base.keys() {
            seen.insert(k);
        }
        seen.into_iter().collect()
    };
    for k in keys {
        let was = base.get(k);
        let h = home_doc.get(k);
        // A home unchanged since the last sync holds exactly the synced values.
        let h_digest = |h: &RawValue| {
            if home_changed {
                digest(h)
            } else {
                was.cloned().unwrap_or_default()
            }
        };
        let mut session_digest = None;
        let session_changed = session.is_some_and(|s| match (s.get(k), was) {
            (None, None) => false,
            (None, Some(_)) | (Some(_), None) => true,
            (Some(v), Some(was)) => {
                // Equal bytes to an unchanged home value are the synced value: no digest needed.
                if !home_changed && h.is_some_and(|h| h.get() == v.get()) {
                    false
                } else {
                    let d = digest(v);
                    let changed = d != *was;
                    session_digest = Some(d);
                    changed
                }
            }
        });
        let chosen = if session_changed {
            session
                .and_then(|s| s.get(k))
                .map(|v| (v, session_digest.clone()))
        } else {
            let home_value = h.map(|h| (h, h_digest(h)));
            let home_changed_key = home_changed
                && match (&home_value, was) {
                    (None, None) => false,
                    (Some((_, d)), Some(was)) => d != was,
                    _ => true,
                };
            if home_changed_key || h.is_some() {
                home_value.map(|(v, d)| (v, Some(d)))
            } else {
                // Unchanged, and the home does not hold it (it was never there or the home
                // document is missing): the session's copy is the synced value.
                session.and_then(|s| s.get(k)).map(|v| (v, was.cloned()))
            }
        };
        if let Some((value, d)) = chosen {
            let d = d.unwrap_or_else(|| digest(value));
            merged.insert(k.clone(), value.clone());
            digests.insert(k.clone(), d);
        }
    }
    (merged, digests)
}

/// Claude Code's lock directory on a document (`<path>.lock`).
fn lock_dir_of(path: &Path) -> std::path::PathBuf {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    lock_path.into()
}

/// One three-way sync of a document between the runtime and the home.
pub fn sync(doc: &Doc, home: &Path, runtime: &Path, state: &mut JsonSync) -> Result<Outcome> {
    // A home document linked in from a dotfiles repository is written where the link leads.
    let home = &fsx::resolve_link(home);
    let runtime_now = Stamp::at(runtime)?;
    let home_now = Stamp::at(home)?;
    if runtime_now == state.runtime && home_now == state.home && state.base.is_empty() {
        return Ok(Outcome::default());
    }
    // Under Claude Code's own lock on the runtime's copy, which the session's Claude Code
    // takes for its read-modify-write saves: a save that read the copy before this sync wrote
    // it would otherwise put back what the sync replaced, and the next sync would take the
    // missing keys for the session's removals.
    // And under its lock on the home's document, taken before the home is read, so that no
    // save of a plain `claude` lands between the read and the write of a merge (a busy one
    // saves more often than a large document is merged). The runtime's lock comes first,
    // always; Claude Code holds one of them at a time.
    let Some(_runtime_lock) = fsx::LockDir::take(&lock_dir_of(runtime), HOME_LOCK_WAIT)? else {
        return Ok(deferred());
    };
    let Some(_home_lock) = fsx::LockDir::take(&lock_dir_of(home), HOME_LOCK_WAIT)? else {
        return Ok(deferred());
    };
    let runtime_now = Stamp::at(runtime)?;
    let home_now = Stamp::at(home)?;
    sync_locked(doc, home, runtime, state, runtime_now, home_now)
}

/// A sync that waited for another writer's lock and did nothing.
fn deferred() -> Outcome {
    Outcome {
        deferred: true,
        ..Outcome::default()
    }
}

fn sync_locked(
    doc: &Doc,
    home: &Path,
    runtime: &Path,
    state: &mut JsonSync,
    runtime_now: Option<Stamp>,
    home_now: Option<Stamp>,
) -> Result<Outcome> {
    let mut out = Outcome {
        touched: true,
        ..Outcome::default()
    };
    if !state.base.is_empty() {
        // Kept by an earlier version: its values as this version writes them.
        if state.digests.is_empty() {
            state.digests = state
                .base
                .iter()
                .map(|(k, v)| (k.clone(), digest(&raw_of(v))))
                .collect();
        }
        state.base = Map::new();
    }
    let home_changed = home_now != state.home;

    let home_text = read_text(home)?;
    let home_read = home_text.as_deref().map(|t| parse_raw(t, home)).transpose();
    let home_parses = home_read.is_ok();
    let home_full = home_read.ok().flatten();
    let (home_doc, home_private) = match &home_full {
        Some(found) => {
            let (shared, private) = doc.split_home(found);
            (Some(shared), private)
        }
        None => (None, View::new()),
    };
    let session_text = if runtime_now != state.runtime {
        read_text(runtime)?
    } else {
        None
    };
    let session_full = match session_text.as_deref().map(|t| parse_raw(t, runtime)) {
        Some(Ok(found)) => Some(found),
        Some(Err(_)) => {
            out.rejected = true;
            None
        }
        None => None,
    };
    let session = match &session_full {
        Some(found) => {
            let (shared, saved_profile) = doc.split(found, home_doc.as_ref())?;
            out.saved_profile = saved_profile;
            Some(shared)
        }
        None => None,
    };

    if !home_parses {
        // Nothing is merged while the home does not parse: the session's document stays as
        // it is and its stamp unrecorded, so its changes reach the home once it parses again.
        // Its account keys are the profile's and were saved above, whatever the home holds.
        out.home_rejected = true;
        return Ok(out);
    }

    let (merged, digests) = merge(
        &state.digests,
        home_doc.as_ref(),
        home_changed,
        session.as_ref(),
    );

    // Both writes go over exactly the version read: when Claude Code (or a plain `claude` on
    // the home) renamed a newer one in meanwhile, that one stays, this write is dropped, and
    // the next tick merges again from the stamps left unchanged here.
    let home_differs = match &home_doc {
        Some(h) => !same_docs(h, &merged),
        None => !merged.is_empty(),
    };
    if home_differs {
        let entries = merged
            .iter()
            .chain(home_private.iter())
            .map(|(k, v)| (k.as_str(), &**v));
        let bytes = render(entries, size_of(&merged) + size_of(&home_private));
        // Over exactly the version read (a writer that takes no lock may still have been
        // there first).
        let written = fsx::replace_if_unchanged(home, &bytes, mode_or_private(home), home_now)?;
        match written {
            Some(stamp) => {
                state.home = Some(stamp);
                out.saved_home = true;
            }
            // Another writer got there first: the session's document stays as it is and its
            // stamp unrecorded, so its changes are merged again by the next tick instead of
            // being written over from the old base.
            None => {
                out.deferred = true;
                return Ok(out);
            }
        }
    } else {
        state.home = home_now;
    }
    let base_moved = digests != state.digests;
    state.digests = digests;
    state.runtime = runtime_now;
    if out.rejected || (session.is_none() && !base_moved) {
        // The runtime's copy does not parse (left alone), or nothing it holds changed.
        return Ok(out);
    }
    let wanted = doc.overlay(&merged)?;
    let current_text;
    let current_read;
    let current = match &session_full {
        Some(found) => Some(view(found)),
        None => {
            current_text = read_text(runtime)?;
            current_read = current_text
                .as_deref()
                .and_then(|t| parse_raw(t, runtime).ok());
            current_read.as_ref().map(view)
        }
    };
    let unchanged = current.as_ref().is_some_and(|c| {
        c.len() == wanted.len()
            && wanted
                .iter()
                .all(|(k, v)| c.get(k).is_some_and(|cv| cv.get() == v.get()))
    });
    if !unchanged {
        let bytes = render(
            wanted.iter().map(|(k, v)| (k.as_str(), &**v)),
            size_of(&wanted),
        );
        if let Some(stamp) =
            fsx::replace_if_unchanged(runtime, &bytes, fsx::PRIVATE_FILE, runtime_now)?
        {
            state.runtime = Some(stamp);
            out.updated_runtime = true;
        }
    }
    Ok(out)
}

/// Syncs `settings.json` and `.claude.json`.
pub fn sync_all(
    layout: &Layout,
    profile: &str,
    config: &ProfileConfig,
    cfg: &Path,
    state: &mut super::RuntimeState,
    report: &mut SyncReport,
) -> Result<Synced> {
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
    Ok(Synced {
        touched: settings.touched || claude_json.touched,
        deferred: settings.deferred || claude_json.deferred,
    })
}

/// What [`sync_all`] did to the runtime's sync state.
pub struct Synced {
    /// The state changed and must be saved.
    pub touched: bool,
    /// A write waited for another writer; a sync that must be the last one tries again.
    pub deferred: bool,
}
