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
//! of the text, never a tree of values) and the runtime's state remembers the last synced
//! document as a digest per key, not as a copy. A tick with nothing changed reads no document.
//! A one-shot tick after a rewrite reads the runtime's and the home's copy once each (the second
//! scanned only where it differs from the first); a long-lived holder keeps each side's last
//! text in its [`Cache`] and reads only the side whose stamp changed. Values are compared by
//! their bytes, and the home is written piece by piece from the slices read, in Claude Code's
//! own layout (`JSON.stringify(doc, null, 2)`), so what a sync did not change comes back byte
//! for byte. A merge holds Claude Code's lock directories on both copies (the runtime's first)
//! from before it reads until it has written.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

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

/// How long a merge waits for each of Claude Code's locks (on the runtime's copy, then on the
/// home's) before it leaves the whole merge to a later sync (`deferred`).
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

/// A text a document was read from (lone surrogates marked, see `nodejson`), or one made here.
type Text = Arc<String>;

/// A key at the top level of a document as scanned, with its value's range.
type Item = (String, Range<usize>);

/// A document as its top-level keys, each with its value as written: a range of one of the
/// texts it holds. A document read is one text and an index into it; one a sync put together
/// shares the texts it came from instead of copying them.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    texts: Vec<Text>,
    entries: IndexMap<String, (usize, Range<usize>)>,
    /// For a document read from a file: its top level as scanned (every key as it came, with
    /// its value's range in `texts[0]`), from which the next version of the file is scanned
    /// only where it differs.
    scanned: Option<Vec<Item>>,
}

/// What a long-lived holder keeps of one document between ticks: each side as it last read
/// or wrote it, with the stamp the file had then. A side whose stamp still matches is not read
/// again; one that changed is scanned only where its text differs from the one kept.
#[derive(Debug, Default)]
pub(super) struct Kept {
    home: Option<(Stamp, Known)>,
    runtime: Option<(Stamp, Known)>,
}

/// [`Kept`] for both documents of a runtime.
#[derive(Debug, Default)]
pub(super) struct Cache {
    settings: Kept,
    claude_json: Kept,
}

/// A document made of values borrowed from documents read, and of values made here, each as
/// written (JSON text in Claude Code's layout at the top level).
type View<'a> = IndexMap<String, Cow<'a, str>>;

/// What reading a document found.
enum Found {
    Missing,
    /// The file is not a JSON object.
    Unparsable,
    Doc(Known),
}

impl Known {
    fn view(&self) -> View<'_> {
        self.entries
            .iter()
            .map(|(k, (t, r))| (k.clone(), Cow::Borrowed(&self.texts[*t][r.clone()])))
            .collect()
    }

    /// A document read from `text`, scanned only where it differs from `prev` when that is a
    /// document read too.
    fn parse(text: String, prev: Option<&Known>) -> Option<Known> {
        let prev = prev.and_then(|p| Some((p.texts.first()?.as_str(), p.scanned.as_deref()?)));
        let scanned = scan(&text, prev)?;
        let mut entries = IndexMap::with_capacity(scanned.len());
        for (k, r) in &scanned {
            entries.insert(k.clone(), (0, r.clone()));
        }
        Some(Known {
            texts: vec![Arc::new(text)],
            entries,
            scanned: Some(scanned),
        })
    }

    /// The document `view` describes, holding the texts of `sources` its values are borrowed
    /// from; values made here, and the few values a big text would otherwise be kept for, are
    /// copied into one text of its own.
    fn of(view: &View, sources: &[&Known]) -> Known {
        let texts: Vec<&Text> = sources.iter().flat_map(|s| s.texts.iter()).collect();
        let place = |v: &str| {
            let (at, end) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len());
            texts.iter().position(|t| {
                let start = t.as_ptr() as usize;
                start <= at && end <= start + t.len()
            })
        };
        let places: Vec<Option<usize>> = view
            .values()
            .map(|v| match v {
                Cow::Borrowed(v) => place(v),
                Cow::Owned(_) => None,
            })
            .collect();
        let mut used = vec![0usize; texts.len()];
        for (v, p) in view.values().zip(&places) {
            if let Some(p) = p {
                used[*p] += v.len();
            }
        }
        // A text is kept only for a good part of it: a small value does not hold a big text.
        let keep: Vec<bool> = texts
            .iter()
            .zip(&used)
            .map(|(t, u)| *u > 0 && *u >= t.len() / 4)
            .collect();
        let mut kept: Vec<Text> = Vec::new();
        let mut index_of = vec![usize::MAX; texts.len()];
        let mut made = String::new();
        let mut entries = IndexMap::with_capacity(view.len());
        for ((k, v), p) in view.iter().zip(&places) {
            let entry = match p {
                Some(p) if keep[*p] => {
                    if index_of[*p] == usize::MAX {
                        index_of[*p] = kept.len();
                        kept.push(texts[*p].clone());
                    }
                    let start = v.as_ptr() as usize - texts[*p].as_ptr() as usize;
                    (index_of[*p], start..start + v.len())
                }
                _ => {
                    let start = made.len();
                    made.push_str(v);
                    (usize::MAX, start..made.len())
                }
            };
            entries.insert(k.clone(), entry);
        }
        if !made.is_empty() || entries.values().any(|(t, _)| *t == usize::MAX) {
            let at = kept.len();
            kept.push(Arc::new(made));
            for (t, _) in entries.values_mut() {
                if *t == usize::MAX {
                    *t = at;
                }
            }
        }
        Known {
            texts: kept,
            entries,
            scanned: None,
        }
    }
}

const CHUNK: usize = 1 << 12;

/// How many bytes `a` and `b` share at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
        i += CHUNK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many bytes `a` and `b` share at their end, at most `limit`.
fn common_suffix(a: &[u8], b: &[u8], limit: usize) -> usize {
    let (a, b) = (&a[a.len() - limit..], &b[b.len() - limit..]);
    let mut i = 0;
    while i + CHUNK <= limit && a[limit - i - CHUNK..limit - i] == b[limit - i - CHUNK..limit - i] {
        i += CHUNK;
    }
    while i < limit && a[limit - i - 1] == b[limit - i - 1] {
        i += 1;
    }
    i
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// One JSON value of type `T` at `at` in `text` and the offset where it ends.
fn one<'t, T: Deserialize<'t>>(text: &'t str, at: usize) -> Option<(T, usize)> {
    let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, at + values.byte_offset()))
}

/// The top level of the JSON object `text` is: each key as it comes and its value's range;
/// `None` when it is not a JSON object. With `prev`, an earlier text and its scan, the keys
/// before the first byte that differs and after the point where the two scans meet again are
/// taken from it, so only the values in between are parsed.
fn scan(text: &str, prev: Option<(&str, &[Item])>) -> Option<Vec<Item>> {
    let b = text.as_bytes();
    let mut items: Vec<Item> = Vec::new();
    let mut i;
    // The scan of `prev` from the first key it may share at its end, where `text` matches it
    // from `from` on, its offsets `shift` bytes further.
    let mut tail: Option<(&[Item], usize, isize)> = None;
    match prev {
        Some((old, old_items)) => {
            let p = common_prefix(old.as_bytes(), b);
            let limit = old.len().min(b.len()) - p;
            let s = common_suffix(old.as_bytes(), b, limit);
            // A value is the same when it and the byte after it (which ends a number) are.
            let same = old_items.iter().take_while(|(_, r)| r.end < p).count();
            items.extend_from_slice(&old_items[..same]);
            tail = Some((
                &old_items[same..],
                b.len() - s,
                b.len() as isize - old.len() as isize,
            ));
            i = match items.last() {
                Some((_, r)) => r.end,
                None => {
                    let at = skip_ws(b, 0);
                    (b.get(at) == Some(&b'{')).then_some(at + 1)?
                }
            };
        }
        None => {
            let at = skip_ws(b, 0);
            i = (b.get(at) == Some(&b'{')).then_some(at + 1)?;
        }
    }
    loop {
        i = skip_ws(b, i);
        if !items.is_empty() {
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => break,
                _ => return None,
            }
        } else if b.get(i)? == &b'}' {
            break;
        }
        if b.get(i)? != &b'"' {
            return None;
        }
        let (key, end) = one::<String>(text, i)?;
        i = skip_ws(b, end);
        if b.get(i)? != &b':' {
            return None;
        }
        let (value, _) = one::<&RawValue>(text, i + 1)?;
        let start = value.get().as_ptr() as usize - text.as_ptr() as usize;
        i = start + value.get().len();
        items.push((key, start..i));
        // Where this value ends, the earlier text had a value end too, and everything after is
        // the same: the rest of its scan holds, moved.
        if let Some((old_items, from, shift)) = tail
            && i >= from
            && let Ok(at) =
                old_items.binary_search_by_key(&(i as isize - shift), |(_, r)| r.end as isize)
        {
            let moved = |r: &Range<usize>| {
                (r.start as isize + shift) as usize..(r.end as isize + shift) as usize
            };
            items.extend(
                old_items[at + 1..]
                    .iter()
                    .map(|(k, r)| (k.clone(), moved(r))),
            );
            return Some(items);
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(items)
}

/// Reads a document: its text as Node's `JSON.parse` reads it (lone surrogate escapes marked),
/// scanned where it differs from `prev`.
fn read_doc(path: &Path, prev: Option<&Known>) -> Result<Found> {
    crate::platform::return_big_frees();
    let Some(bytes) = fsx::read_optional(path)? else {
        return Ok(Found::Missing);
    };
    let bytes = match crate::nodejson::mark(&bytes) {
        Cow::Borrowed(_) => bytes,
        Cow::Owned(marked) => marked,
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Found::Unparsable);
    };
    Ok(match Known::parse(text, prev) {
        Some(known) => Found::Doc(known),
        None => Found::Unparsable,
    })
}

/// Writes a document in `JSON.stringify(doc, null, 2)`'s layout, from its values as written (a
/// value written in that layout at the top level is already indented for it), piece by piece.
fn write_doc<'v>(
    out: &mut dyn Write,
    entries: impl Iterator<Item = (&'v str, &'v str)>,
) -> io::Result<()> {
    out.write_all(b"{")?;
    let mut any = false;
    for (key, value) in entries {
        out.write_all(if any { b",\n  " } else { b"\n  " })?;
        any = true;
        let mut k = Vec::with_capacity(key.len() + 2);
        serde_json::to_writer(&mut k, key)?;
        crate::nodejson::write_unmarked(out, &k)?;
        out.write_all(b": ")?;
        crate::nodejson::write_unmarked(out, value.as_bytes())?;
    }
    out.write_all(if any { b"\n}\n" } else { b"}\n" })
}

fn entries_of<'v>(doc: &'v View) -> impl Iterator<Item = (&'v str, &'v str)> {
    doc.iter().map(|(k, v)| (k.as_str(), &**v))
}

/// A value as written at the top level of a document in Claude Code's layout.
fn raw_of(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("a value serialises");
    // Strings hold no raw newline, so each newline starts a line to indent one level more.
    text.replace('\n', "\n  ")
}

fn value_of(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

/// The digest a value is remembered by: the first 16 bytes of the SHA-256 of its text.
fn digest(raw: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(raw.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether two values are written the same (the same slice of one text is, without a look).
fn same(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

fn same_docs(a: &View, b: &View) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
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
    fn split_home<'a>(&self, doc: View<'a>) -> (View<'a>, View<'a>) {
        let private = self.home_private();
        let mut shared = View::with_capacity(doc.len());
        let mut own = View::new();
        for (k, v) in doc {
            let side = if private.contains(&k.as_str()) {
                &mut own
            } else {
                &mut shared
            };
            side.insert(k, v);
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
    fn split<'a>(&self, runtime: View<'a>, home: Option<&View>) -> Result<(View<'a>, bool)> {
        let mut doc = runtime;
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
    let doc = match read_doc(path, None)? {
        Found::Missing => return Ok(None),
        Found::Unparsable => anyhow::bail!("{} is not a JSON object", path.display()),
        Found::Doc(doc) => doc,
    };
    let picked = doc
        .view()
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
    let (found, home_stamp) = match read_doc(home, None)? {
        Found::Doc(found) => (found, Stamp::at(home)?),
        Found::Missing => (Known::default(), Stamp::at(home)?),
        Found::Unparsable => (Known::default(), None),
    };
    let (base, _) = doc.split_home(found.view());
    let wanted = doc.overlay(&base)?;
    fsx::atomic_write_with(runtime, fsx::PRIVATE_FILE, |out| {
        write_doc(out, entries_of(&wanted))
    })?;
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
        if let (Some(h), Some(v)) = (h, session.and_then(|s| s.get(k)))
            && same(h, v)
        {
            // Written the same on both sides: the session's copy, from the newer text (a
            // holder then keeps that one text, not both). An unchanged home holds the synced
            // value, whose digest is known.
            let d = match was {
                Some(was) if !home_changed => was.clone(),
                _ => digest(v),
            };
            merged.insert(k.clone(), v.clone());
            digests.insert(k.clone(), d);
            continue;
        }
        // A home unchanged since the last sync holds exactly the synced values.
        let h_digest = |h: &str| {
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
                let d = digest(v);
                let changed = d != *was;
                session_digest = Some(d);
                changed
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

/// One side of a document as a sync starts: as kept when its stamp says it is the same file,
/// else read, scanned only where it differs from the first text read whole among the one kept
/// of this side and `others` (the other side's: the two differ by the overlay only).
fn side(
    path: &Path,
    now: Option<Stamp>,
    kept: Option<(Stamp, Known)>,
    others: &[Option<&Known>],
) -> Result<Found> {
    match (now, kept) {
        (None, _) => Ok(Found::Missing),
        (Some(now), Some((stamp, known))) if stamp == now => Ok(Found::Doc(known)),
        (Some(_), kept) => {
            let own = kept.as_ref().map(|(_, k)| k);
            let prev = std::iter::once(own)
                .chain(others.iter().copied())
                .flatten()
                .find(|k| k.scanned.is_some());
            read_doc(path, prev)
        }
    }
}

/// One three-way sync of a document between the runtime and the home, with what `kept` holds
/// of both sides from the last sync (and what it holds after this one).
pub(super) fn sync(
    doc: &Doc,
    home: &Path,
    runtime: &Path,
    state: &mut JsonSync,
    kept: &mut Kept,
) -> Result<Outcome> {
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
    sync_locked(doc, home, runtime, state, kept, runtime_now, home_now)
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
    kept: &mut Kept,
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

    // What is known of each side stays kept only where this sync knows it to be current.
    let kept_home = kept.home.take();
    let kept_runtime = kept.runtime.take();
    let session_read = runtime_now != state.runtime;
    let (session_found, current_kept) = if session_read {
        let others = [kept_home.as_ref().map(|(_, k)| k)];
        (side(runtime, runtime_now, kept_runtime, &others)?, None)
    } else {
        let current = kept_runtime.filter(|(s, _)| Some(*s) == runtime_now);
        (Found::Missing, current.map(|(_, k)| k))
    };
    let session_whole = match &session_found {
        Found::Doc(k) => Some(k),
        _ => None,
    };
    let others = [session_whole, current_kept.as_ref()];
    let home_found = side(home, home_now, kept_home, &others)?;
    let home_parses = !matches!(home_found, Found::Unparsable);
    let home_known = match home_found {
        Found::Doc(k) => Some(k),
        _ => None,
    };
    let (home_doc, home_private) = match &home_known {
        Some(found) => {
            let (shared, private) = doc.split_home(found.view());
            (Some(shared), private)
        }
        None => (None, View::new()),
    };
    let session_known = match session_found {
        Found::Doc(k) => Some(k),
        Found::Unparsable => {
            out.rejected = true;
            None
        }
        Found::Missing => None,
    };
    let session = match &session_known {
        Some(found) => {
            let (shared, saved_profile) = doc.split(found.view(), home_doc.as_ref())?;
            out.saved_profile = saved_profile;
            Some(shared)
        }
        None => None,
    };
    let keep_runtime = |kept: &mut Kept, known: Option<Known>| {
        kept.runtime = runtime_now.zip(known);
    };

    if !home_parses {
        // Nothing is merged while the home does not parse: the session's document stays as
        // it is and its stamp unrecorded, so its changes reach the home once it parses again.
        // Its account keys are the profile's and were saved above, whatever the home holds.
        out.home_rejected = true;
        drop(session);
        keep_runtime(kept, session_known.or(current_kept));
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
    let sources: Vec<&Known> = home_known
        .iter()
        .chain(&session_known)
        .chain(&current_kept)
        .collect();
    let mut new_home = None;
    if home_differs {
        // Over exactly the version read (a writer that takes no lock may still have been
        // there first).
        let written =
            fsx::replace_if_unchanged_with(home, mode_or_private(home), home_now, |out| {
                write_doc(out, entries_of(&merged).chain(entries_of(&home_private)))
            })?;
        match written {
            Some(stamp) => {
                state.home = Some(stamp);
                out.saved_home = true;
                let mut whole = merged.clone();
                whole.extend(home_private.iter().map(|(k, v)| (k.clone(), v.clone())));
                new_home = Some((stamp, Known::of(&whole, &sources)));
            }
            // Another writer got there first: the session's document stays as it is and its
            // stamp unrecorded, so its changes are merged again by the next tick instead of
            // being written over from the old base.
            None => {
                out.deferred = true;
                drop((session, merged, home_doc, home_private, sources));
                keep_runtime(kept, session_known.or(current_kept));
                return Ok(out);
            }
        }
    } else {
        state.home = home_now;
    }
    let base_moved = digests != state.digests;
    state.digests = digests;
    // A copy that does not parse keeps its stamp unrecorded: the next sync reads it again, and
    // at release it is kept in the profile rather than going with the runtime.
    if !out.rejected {
        state.runtime = runtime_now;
    }
    if out.rejected || (session.is_none() && !base_moved) {
        // The runtime's copy does not parse (left alone), or nothing it holds changed.
        kept.home = new_home.or_else(|| home_now.zip(home_known.clone()));
        drop((session, merged, home_doc, home_private, sources));
        keep_runtime(kept, session_known.or(current_kept));
        return Ok(out);
    }
    let wanted = doc.overlay(&merged)?;
    // The runtime's document as it is now: as read, as kept, or read for the comparison.
    let current_read = match (&session_known, &current_kept) {
        (None, None) => match read_doc(runtime, None)? {
            Found::Doc(k) => Some(k),
            _ => None,
        },
        _ => None,
    };
    let current_known = session_known
        .as_ref()
        .or(current_kept.as_ref())
        .or(current_read.as_ref());
    let current = current_known.map(Known::view);
    let unchanged = current.as_ref().is_some_and(|c| {
        c.len() == wanted.len()
            && wanted
                .iter()
                .all(|(k, v)| c.get(k).is_some_and(|cv| same(cv, v)))
    });
    let mut new_runtime = None;
    if !unchanged
        && let Some(stamp) =
            fsx::replace_if_unchanged_with(runtime, fsx::PRIVATE_FILE, runtime_now, |out| {
                write_doc(out, entries_of(&wanted))
            })?
    {
        state.runtime = Some(stamp);
        out.updated_runtime = true;
        let mut sources = sources;
        sources.extend(&current_read);
        new_runtime = Some((stamp, Known::of(&wanted, &sources)));
    }
    kept.home = new_home.or_else(|| home_now.zip(home_known.clone()));
    kept.runtime = new_runtime.or_else(|| runtime_now.zip(current_known.cloned()));
    Ok(out)
}

/// At teardown, after the final sync: the runtime's copy of a document holding changes that
/// did not reach the home (the home's did not parse, or the copy itself does not) is
/// kept in the profile before it goes with the runtime, as `<name>.unmerged-<ms>.json`
/// (0600), and said in `report`.
pub fn keep_unmerged(
    layout: &Layout,
    profile: &str,
    cfg: &Path,
    state: &super::RuntimeState,
    report: &mut SyncReport,
) -> Result<()> {
    for (name, sync) in [
        ("settings.json", &state.settings),
        (".claude.json", &state.claude_json),
    ] {
        let copy = cfg.join(name);
        let now = Stamp::at(&copy)?;
        if now.is_none() || now == sync.runtime {
            // Gone, or merged as it is.
            continue;
        }
        let kept = layout.profile_dir(profile).join(format!(
            "{}.unmerged-{}.json",
            name.trim_start_matches('.'),
            crate::ids::now_ms()
        ));
        fsx::copy_file_atomic(&copy, &kept, Some(fsx::PRIVATE_FILE))?;
        report.kept_documents.push(kept.display().to_string());
    }
    Ok(())
}

/// Syncs `settings.json` and `.claude.json`.
pub fn sync_all(
    layout: &Layout,
    profile: &str,
    config: &ProfileConfig,
    cfg: &Path,
    state: &mut super::RuntimeState,
    cache: &mut Cache,
    report: &mut SyncReport,
) -> Result<Synced> {
    let settings = sync(
        &Doc::Settings(config),
        &layout.claude_home.join("settings.json"),
        &cfg.join("settings.json"),
        &mut state.settings,
        &mut cache.settings,
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
        &mut cache.claude_json,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan as serde_json sees the object: each key with its value's text.
    fn by_serde(text: &str) -> Option<Vec<(String, String)>> {
        let doc: IndexMap<String, &RawValue> = serde_json::from_str(text).ok()?;
        Some(
            doc.into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    fn texts(text: &str, items: &[(String, Range<usize>)]) -> Vec<(String, String)> {
        let mut doc = IndexMap::new();
        for (k, r) in items {
            doc.insert(k.clone(), text[r.clone()].to_owned());
        }
        doc.into_iter().collect()
    }

    const OLD: &str = "{\n  \"numStartups\": 41,\n  \"theme\": \"dark\",\n  \"projects\": {\n    \"/a\": {\n      \"history\": [\n        \"one\",\n        \"two\"\n      ]\n    }\n  },\n  \"tips\": [\n    1,\n    2\n  ],\n  \"last\": true\n}\n";

    #[test]
    fn a_scan_from_an_earlier_text_finds_what_a_whole_parse_finds() {
        let old_items = scan(OLD, None).unwrap();
        assert_eq!(Some(texts(OLD, &old_items)), by_serde(OLD));
        let edits: Vec<String> = vec![
            OLD.replace("41", "412"),
            OLD.replace("41", "4"),
            OLD.replace("\"two\"", "\"two\", \"three\""),
            OLD.replace("\"dark\"", "\"light\""),
            OLD.replace("true", "false"),
            OLD.replace("true", "true, \"more\": {}"),
            OLD.replace("  \"theme\": \"dark\",\n", ""),
            OLD.replace("\"numStartups\": 41,", "\"numStartups\": 41, \"theme\": 1,"),
            // A value that now swallows what follows it as a string.
            OLD.replace("\"dark\",", "\"dark,"),
            OLD.replace("1,\n    2", "1,\n    \"2\\\" }, \\\"x\\\": \\\"\""),
            OLD.replace("{\n  \"numStartups\"", "[\n  \"numStartups\""),
            OLD.replace("\n}\n", "\n} x\n"),
            "{}".into(),
            String::new(),
            OLD.to_owned(),
        ];
        for new in &edits {
            let incremental = scan(new, Some((OLD, &old_items)));
            let whole = scan(new, None);
            assert_eq!(incremental, whole, "{new}");
            assert_eq!(whole.map(|i| texts(new, &i)), by_serde(new), "{new}");
        }
    }

    #[test]
    fn a_document_put_together_from_two_texts_keeps_only_the_one_it_mostly_uses() {
        let a = Known::parse(OLD.to_owned(), None).unwrap();
        let b = Known::parse(OLD.replace("41", "42"), Some(&a)).unwrap();
        let mut view = b.view();
        view.insert("theme".into(), a.view()["theme"].clone());
        view.insert("made".into(), Cow::Owned("[]".into()));
        let known = Known::of(&view, &[&a, &b]);
        assert_eq!(known.texts.len(), 2, "b's text and one made text");
        assert!(Arc::ptr_eq(&known.texts[0], &b.texts[0]));
        let back = known.view();
        assert_eq!(back.len(), view.len());
        for (k, v) in &view {
            assert_eq!(back[k], *v, "{k}");
        }
    }
}
