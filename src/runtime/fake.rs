//! Fake link mode: the runtime holds copies, mirrored both ways against a record of the last
//! synced state (the manifest), so that a deletion on one side is carried to the other instead of
//! being undone, and a file changed on both sides keeps both versions.
//!
//! A file is "changed" when its stamp (size, mtime, file id) differs from the manifest's, so a
//! pass with nothing changed reads no file contents. The walk goes directory by directory over
//! both trees at once, so memory follows the widest directory and the manifest, not the tree.
//! Copies into a live runtime go through a temp file and a rename.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{SyncReport, conflict_name, is_managed};
use crate::fsx::{self, Stamp};

/// Deeper than this, a walk stops: it guards against symlink loops in the home.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(Stamp),
}

/// One manifest row: what both sides were at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synced {
    Dir,
    File { home: Stamp, runtime: Stamp },
}

/// The record of the last synced state, keyed by relative path with `/` separators.
///
/// On disk it is a full file plus a journal of the rows changed since (`<file>.log`), so that a
/// tick that changed k files writes k rows, not the whole tree; the journal is folded into the
/// full file once it grows past a fraction of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    // Boxed strings: the manifest is the largest thing a pass holds, one row per file.
    rows: BTreeMap<Box<str>, Synced>,
    /// Rows changed since the last save (`None`: removed), in order, while they are few enough
    /// to journal; past that, `rewrite` is set and they are not kept (a copy of every row would
    /// double the memory of a pass that touches the whole tree, such as a build).
    changed: Vec<(Box<str>, Option<Synced>)>,
    rewrite: bool,
    /// Rows in the journal on disk.
    journaled: usize,
}

/// The journal beside a manifest file.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

fn read_rows(path: &Path, mut each: impl FnMut(&str)) -> Result<bool> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .with_context(|| format!("cannot read {}", path.display()))?
            == 0
        {
            return Ok(true);
        }
        each(line.trim_end_matches('\n'));
    }
}

fn write_row(out: &mut dyn Write, rel: &str, row: Option<Synced>) -> std::io::Result<()> {
    match row {
        None => writeln!(out, "x\t{}", escape(rel)),
        Some(Synced::Dir) => writeln!(out, "d\t{}", escape(rel)),
        Some(Synced::File {
            home: h,
            runtime: r,
        }) => writeln!(
            out,
            "f\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            h.size,
            h.mtime_ns,
            h.ino,
            r.size,
            r.mtime_ns,
            r.ino,
            escape(rel)
        ),
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let mut rows = BTreeMap::new();
        // A damaged row is dropped: the path then counts as never synced, which copies nothing
        // over anything without comparing contents first.
        read_rows(path, |line| {
            if let Some((rel, Some(row))) = parse_row(line) {
                rows.insert(rel.into_boxed_str(), row);
            }
        })?;
        let mut journaled = 0;
        read_rows(&journal_path(path), |line| {
            journaled += 1;
            match parse_row(line) {
                Some((rel, Some(row))) => {
                    rows.insert(rel.into_boxed_str(), row);
                }
                Some((rel, None)) => {
                    rows.remove(rel.as_str());
                }
                None => {}
            }
        })?;
        Ok(Manifest {
            rows,
            changed: Vec::new(),
            rewrite: false,
            journaled,
        })
    }

    /// Whether rows changed since the last save.
    pub fn is_dirty(&self) -> bool {
        self.rewrite || !self.changed.is_empty()
    }

    /// Whether the journal may grow by what changed, or the whole file is rewritten.
    fn journal_fits(&self, more: usize) -> bool {
        (self.journaled + more) * 4 <= self.rows.len().max(64)
    }

    fn record(&mut self, rel: Box<str>, row: Option<Synced>) {
        if self.rewrite {
            return;
        }
        if self.journal_fits(self.changed.len() + 1) {
            self.changed.push((rel, row));
        } else {
            self.rewrite = true;
            self.changed = Vec::new();
        }
    }

    /// Saves the changes: appended to the journal while it stays small, otherwise the whole
    /// manifest written atomically (streamed, not built in memory) and the journal removed.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let journal = journal_path(path);
        if !self.rewrite && path.exists() && self.journal_fits(self.changed.len()) {
            let mut out = fs::OpenOptions::new();
            out.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut out, fsx::PRIVATE_FILE);
            let file = out
                .open(&journal)
                .with_context(|| format!("cannot open {}", journal.display()))?;
            let mut out = std::io::BufWriter::new(file);
            for (rel, row) in &self.changed {
                write_row(&mut out, rel, *row)
                    .with_context(|| format!("cannot write {}", journal.display()))?;
            }
            out.flush()
                .with_context(|| format!("cannot write {}", journal.display()))?;
            self.journaled += self.changed.len();
        } else {
            fsx::atomic_write_with(path, fsx::PRIVATE_FILE, |out| {
                for (rel, row) in &self.rows {
                    write_row(out, rel, Some(*row))?;
                }
                Ok(())
            })?;
            fsx::remove_entry(&journal)?;
            self.journaled = 0;
        }
        self.changed.clear();
        self.rewrite = false;
        Ok(())
    }

    fn set(&mut self, rel: String, row: Synced) {
        let rel = rel.into_boxed_str();
        if self.rows.get(&rel) != Some(&row) {
            self.record(rel.clone(), Some(row));
            self.rows.insert(rel, row);
        }
    }

    fn unset(&mut self, rel: &str) {
        if self.rows.remove(rel).is_some() {
            self.record(rel.into(), None);
        }
    }

    /// Rows of the direct children of directory `rel` ("" for the top) whose name passes
    /// `keep`, as full paths.
    fn children_where(&self, rel: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, Synced)> {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        self.rows
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| {
                let name = &k[prefix.len()..];
                !name.contains('/') && keep(name)
            })
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// Drops the rows of everything below directory `rel`.
    fn forget_below(&mut self, rel: &str) {
        let prefix = format!("{rel}/");
        let below: Vec<String> = self
            .rows
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.to_string())
            .collect();
        for k in below {
            self.unset(&k);
        }
    }
}

fn escape(rel: &str) -> Cow<'_, str> {
    if rel.contains(['\\', '\n', '\t']) {
        Cow::Owned(
            rel.replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('\t', "\\t"),
        )
    } else {
        Cow::Borrowed(rel)
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_row(line: &str) -> Option<(String, Option<Synced>)> {
    let mut f = line.split('\t');
    match f.next()? {
        "d" => Some((unescape(f.next()?), Some(Synced::Dir))),
        "x" => Some((unescape(f.next()?), None)),
        "f" => {
            let mut n = || f.next()?.parse::<i64>().ok();
            let home = Stamp {
                size: n()? as u64,
                mtime_ns: n()?,
                ino: n()? as u64,
            };
            let runtime = Stamp {
                size: n()? as u64,
                mtime_ns: n()?,
                ino: n()? as u64,
            };
            Some((unescape(f.next()?), Some(Synced::File { home, runtime })))
        }
        _ => None,
    }
}

/// The entries of one directory, sorted by name, less the managed top-level names and our temp
/// files. Symlinks are followed (a home may link folders in from elsewhere); a missing directory
/// lists as empty.
fn list(dir: &Path, top: bool) -> Result<Vec<(Box<str>, Node)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(fsx::TEMP_PREFIX) || (top && is_managed(&name)) {
            continue;
        }
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        if file_type.is_dir() {
            out.push((name.into_boxed_str(), Node::Dir));
            continue;
        }
        let meta = if file_type.is_symlink() {
            fs::metadata(entry.path())
        } else {
            entry.metadata()
        };
        match meta {
            Ok(m) if m.is_dir() => out.push((name.into_boxed_str(), Node::Dir)),
            Ok(m) if m.is_file() => out.push((name.into_boxed_str(), Node::File(Stamp::of(&m)))),
            Ok(_) => {}
            // Gone since the listing, or a dangling link: nothing to mirror.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot stat {}", entry.path().display()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn join(root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    if !rel.is_empty() {
        for part in rel.split('/') {
            p.push(part);
        }
    }
    p
}

fn child(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Which directories a pass looks at.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every directory of both trees.
    Full,
    /// Only these directories ("" is the top), and new directories found in them; for a
    /// long-lived session told by file-system notifications what changed.
    Dirs(BTreeSet<String>),
}

/// Which side a change came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Home,
    Runtime,
}

struct Mirror<'a> {
    home: &'a Path,
    runtime: &'a Path,
    manifest: &'a mut Manifest,
    report: &'a mut SyncReport,
    deletions: Vec<(Side, String)>,
    /// The runtime is being built and nobody uses it yet: copy straight into place.
    fresh: bool,
    progress: Progress,
}

/// A progress line on stderr for a long build, shown only on a terminal and only once the build
/// has taken longer than `CLAUTH_PROGRESS_AFTER_MS` (default 1000). Stdout is never touched.
struct Progress {
    enabled: bool,
    after: Duration,
    start: Instant,
    last: Option<Instant>,
    files: u64,
    bytes: u64,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        let after = std::env::var("CLAUTH_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1));
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            after,
            start: Instant::now(),
            last: None,
            files: 0,
            bytes: 0,
        }
    }

    fn copied(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) >= self.after
            && self
                .last
                .is_none_or(|l| now.duration_since(l) >= Duration::from_millis(200))
        {
            eprint!(
                "\rclauth-helper: copying the claude home into the runtime: {} files, {} MiB",
                self.files,
                self.bytes >> 20
            );
            self.last = Some(now);
        }
    }

    fn finish(&self) {
        if self.last.is_some() {
            eprintln!(
                "\rclauth-helper: copied the claude home into the runtime: {} files, {} MiB in {:.1} s",
                self.files,
                self.bytes >> 20,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

impl Mirror<'_> {
    fn root(&self, side: Side) -> &Path {
        match side {
            Side::Home => self.home,
            Side::Runtime => self.runtime,
        }
    }

    /// Copies `rel` from `from` to the other side and records both stamps as the copy saw them.
    fn copy(&mut self, from: Side, rel: &str) -> Result<()> {
        let to = if from == Side::Home {
            Side::Runtime
        } else {
            Side::Home
        };
        let src = join(self.root(from), rel);
        let dst = join(self.root(to), rel);
        // A home file linked in from elsewhere (a dotfiles repository) is updated where it
        // leads, and stays a link.
        let dst = if to == Side::Home {
            fsx::resolve_link(&dst)
        } else {
            dst
        };
        if let Some((parent, _)) = rel.rsplit_once('/')
            && !join(self.root(to), parent).is_dir()
        {
            self.make_dirs_like(to, parent)?;
        }
        let copied = if self.fresh && to == Side::Runtime {
            fsx::copy_file_new(&src, &dst)?
        } else {
            fsx::copy_file_fast(&src, &dst)?
        };
        self.progress.copied(copied.written.len());
        let (source, written) = (Stamp::of(&copied.source), Stamp::of(&copied.written));
        let (home, runtime) = if from == Side::Home {
            (source, written)
        } else {
            (written, source)
        };
        self.manifest
            .set(rel.to_owned(), Synced::File { home, runtime });
        match to {
            Side::Home => self.report.copied_to_home += 1,
            Side::Runtime => self.report.copied_to_runtime += 1,
        }
        Ok(())
    }

    fn mkdir(&mut self, side: Side, rel: &str) -> Result<()> {
        self.make_dirs_like(side, rel)?;
        self.manifest.set(rel.to_owned(), Synced::Dir);
        Ok(())
    }

    /// Creates directory `rel` (and missing parents) on `side` with the permission bits of the
    /// same directory on the other side, never the process umask's: a private folder stays
    /// private on both sides.
    fn make_dirs_like(&self, side: Side, rel: &str) -> Result<()> {
        let other = if side == Side::Home {
            Side::Runtime
        } else {
            Side::Home
        };
        let mut prefix = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let dir = join(self.root(side), &prefix);
            if fsx::lstat_optional(&dir)?.is_some() {
                continue;
            }
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()));
                }
            }
            let bits = fs::metadata(join(self.root(other), &prefix))
                .ok()
                .and_then(|m| crate::platform::mode_of(&m))
                .unwrap_or(fsx::PRIVATE_DIR);
            crate::platform::set_mode(&dir, bits)
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
        Ok(())
    }

    /// Both sides changed `rel` since the last sync (or it was never synced): the newer version
    /// takes the path on both sides and the other is kept beside it as a conflict copy.
    fn both_changed(&mut self, rel: &str, h: Stamp, r: Stamp) -> Result<()> {
        let hp = join(self.home, rel);
        let rp = join(self.runtime, rel);
        if h.size == r.size && same_contents(&hp, &rp)? {
            self.manifest.set(
                rel.to_owned(),
                Synced::File {
                    home: h,
                    runtime: r,
                },
            );
            return Ok(());
        }
        let (winner, loser, loser_name) = if r.mtime_ns >= h.mtime_ns {
            (Side::Runtime, Side::Home, "home")
        } else {
            (Side::Home, Side::Runtime, "session")
        };
        let aside = conflict_name(&hp, loser_name);
        fsx::copy_file_fast(&join(self.root(loser), rel), &aside)?;
        self.copy(winner, rel)?;
        let shown = aside
            .strip_prefix(self.home)
            .map(|p| p.to_string_lossy().into_owned());
        self.report.conflicts.push(shown.unwrap_or_default());
        Ok(())
    }

    /// Decides one path from what both sides hold now and what the manifest says they held.
    fn visit(
        &mut self,
        rel: &str,
        h: Option<Node>,
        r: Option<Node>,
        m: Option<Synced>,
    ) -> Result<()> {
        match (h, r) {
            (None, None) => {
                if m.is_some() {
                    self.manifest.unset(rel);
                    self.manifest.forget_below(rel);
                }
            }
            (Some(Node::Dir), Some(Node::Dir)) => {
                if m != Some(Synced::Dir) {
                    self.manifest.set(rel.to_owned(), Synced::Dir);
                }
            }
            (Some(Node::File(hs)), Some(Node::File(rs))) => match m {
                Some(Synced::File { home, runtime }) if home == hs && runtime == rs => {}
                Some(Synced::File { home, .. }) if home == hs => self.copy(Side::Runtime, rel)?,
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.copy(Side::Home, rel)?
                }
                _ => self.both_changed(rel, hs, rs)?,
            },
            (Some(Node::Dir), None) => match m {
                Some(Synced::Dir) => self.deletions.push((Side::Home, rel.to_owned())),
                _ => self.mkdir(Side::Runtime, rel)?,
            },
            (None, Some(Node::Dir)) => match m {
                Some(Synced::Dir) => self.deletions.push((Side::Runtime, rel.to_owned())),
                _ => self.mkdir(Side::Home, rel)?,
            },
            (Some(Node::File(hs)), None) => match m {
                // Unchanged in the home since the sync, gone from the runtime: deleted there.
                Some(Synced::File { home, .. }) if home == hs => {
                    self.deletions.push((Side::Home, rel.to_owned()))
                }
                _ => self.copy(Side::Home, rel)?,
            },
            (None, Some(Node::File(rs))) => match m {
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.deletions.push((Side::Runtime, rel.to_owned()))
                }
                _ => self.copy(Side::Runtime, rel)?,
            },
            (Some(_), Some(_)) => {
                // A file on one side, a directory on the other: leave both for the user.
                self.report.conflicts.push(rel.to_owned());
            }
        }
        Ok(())
    }

    /// Visits the entries of directory `rel` on both sides; `deep` descends into every
    /// subdirectory, otherwise only into ones that are new since the last sync.
    fn visit_dir(&mut self, rel: &str, depth: usize, deep: bool) -> Result<()> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let top = rel.is_empty();
        let hs = list(&join(self.home, rel), top)?;
        let rs = list(&join(self.runtime, rel), top)?;
        // Both listings are sorted: merge them without building a set, and look each path up in
        // the manifest, so the widest directory costs two listings and nothing more.
        let (mut i, mut j) = (0, 0);
        loop {
            let (name, h, r) = match (hs.get(i), rs.get(j)) {
                (None, None) => break,
                (Some(a), Some(b)) if a.0 == b.0 => {
                    (i, j) = (i + 1, j + 1);
                    (&*a.0, Some(a.1), Some(b.1))
                }
                (Some(a), b) if b.is_none_or(|b| a.0 < b.0) => {
                    i += 1;
                    (&*a.0, Some(a.1), None)
                }
                (_, Some(b)) => {
                    j += 1;
                    (&*b.0, None, Some(b.1))
                }
                (Some(_), None) => unreachable!("handled by the arm above"),
            };
            let path = child(rel, name);
            let m = self.manifest.rows.get(path.as_str()).copied();
            self.visit(&path, h, r, m)?;
            let is_dir = h == Some(Node::Dir) || r == Some(Node::Dir);
            if is_dir && (deep || m != Some(Synced::Dir)) {
                self.visit_dir(&path, depth + 1, true)?;
            }
        }
        // Paths the manifest knows that are gone from both sides.
        let listed = |name: &str| {
            hs.binary_search_by(|(n, _)| (**n).cmp(name)).is_ok()
                || rs.binary_search_by(|(n, _)| (**n).cmp(name)).is_ok()
        };
        let gone = self.manifest.children_where(rel, |name| !listed(name));
        for (path, m) in gone {
            self.visit(&path, None, None, Some(m))?;
        }
        Ok(())
    }

    /// Deletions run children first, and a directory that gained a new entry is kept.
    fn delete_pending(&mut self) -> Result<()> {
        let mut deletions = std::mem::take(&mut self.deletions);
        deletions.sort_by(|a, b| b.1.cmp(&a.1));
        for (side, rel) in deletions {
            let path = join(self.root(side), &rel);
            let removed = match fsx::lstat_optional(&path)? {
                None => true,
                Some(meta) if meta.is_dir() => fs::remove_dir(&path).is_ok(),
                Some(_) => {
                    fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                    true
                }
            };
            if removed {
                self.manifest.unset(&rel);
                match side {
                    Side::Home => self.report.deleted_in_home += 1,
                    Side::Runtime => self.report.deleted_in_runtime += 1,
                }
            }
        }
        Ok(())
    }
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let (Some(x), Some(y)) = (fsx::read_optional(a)?, fsx::read_optional(b)?) else {
        return Ok(false);
    };
    Ok(x == y)
}

/// One two-way mirror pass. `fresh` is for a runtime being built, which nobody uses yet.
pub fn sync(
    home: &Path,
    runtime: &Path,
    manifest: &mut Manifest,
    scope: &Scope,
    fresh: bool,
    report: &mut SyncReport,
) -> Result<()> {
    // A missing root must never read as "every file deleted".
    anyhow::ensure!(
        home.is_dir(),
        "the claude home {} is missing",
        home.display()
    );
    anyhow::ensure!(
        runtime.is_dir(),
        "the runtime {} is missing",
        runtime.display()
    );
    let mut mirror = Mirror {
        home,
        runtime,
        manifest,
        report,
        deletions: Vec::new(),
        fresh,
        progress: Progress::new(fresh),
    };
    match scope {
        Scope::Full => mirror.visit_dir("", 0, true)?,
        Scope::Dirs(dirs) => {
            for dir in dirs {
                mirror.visit_dir(dir, 0, false)?;
            }
        }
    }
    mirror.progress.finish();
    mirror.delete_pending()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_rows_survive_a_save_and_load_with_awkward_names() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = |n| Stamp {
            size: n,
            mtime_ns: -(n as i64),
            ino: n * 3,
        };
        let mut m = Manifest::default();
        for (i, name) in [
            "plain",
            "tab\there",
            "new\nline",
            "back\\slash",
            "ünï",
            "a/b/c",
        ]
        .iter()
        .enumerate()
        {
            m.set(
                name.to_string(),
                Synced::File {
                    home: stamp(i as u64),
                    runtime: stamp(i as u64 + 100),
                },
            );
        }
        m.set("dir".into(), Synced::Dir);
        let path = dir.path().join("manifest.tsv");
        m.save(&path).unwrap();
        let loaded = Manifest::load(&path).unwrap();
        assert_eq!(loaded.rows, m.rows);
    }

    #[test]
    fn small_changes_go_to_the_journal_and_large_ones_compact_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.tsv");
        let mut m = Manifest::default();
        for i in 0..400 {
            m.set(format!("todos/t{i}"), Synced::Dir);
        }
        m.save(&path).unwrap();
        assert!(
            !journal_path(&path).exists(),
            "the first save writes the whole file"
        );
        let full = fs::read(&path).unwrap();
        m.set("todos/new".into(), Synced::Dir);
        m.unset("todos/t7");
        m.save(&path).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            full,
            "a small change leaves the full file alone"
        );
        assert_eq!(
            fs::read_to_string(journal_path(&path))
                .unwrap()
                .lines()
                .count(),
            2
        );
        let loaded = Manifest::load(&path).unwrap();
        assert_eq!(loaded.rows, m.rows);
        let mut m = loaded;
        for i in 0..200 {
            m.unset(&format!("todos/t{i}"));
        }
        m.save(&path).unwrap();
        assert!(!journal_path(&path).exists(), "a large change compacts");
        assert_eq!(Manifest::load(&path).unwrap().rows, m.rows);
    }

    #[test]
    fn children_are_direct_children_only() {
        let mut m = Manifest::default();
        for p in ["a", "a/b", "a/b/c", "a/d", "a.txt", "b"] {
            m.set(p.into(), Synced::Dir);
        }
        let names = |rel| {
            m.children_where(rel, |_| true)
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(""), ["a", "a.txt", "b"]);
        assert_eq!(names("a"), ["a/b", "a/d"]);
        assert_eq!(names("a/b"), ["a/b/c"]);
        m.forget_below("a");
        assert_eq!(
            m.rows.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["a", "a.txt", "b"]
        );
    }
}
