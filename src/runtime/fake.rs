//! Fake link mode: the runtime holds copies, mirrored both ways against a record of the last
//! synced state (the manifest), so that a deletion on one side is carried to the other instead of
//! being undone, and a file changed on both sides keeps both versions.
//!
//! A file is "changed" when its stamp (size, mtime, file id) differs from the manifest's, so a
//! tick with nothing changed reads no file contents. Copies go through a temp file and a rename.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    rows: BTreeMap<String, Synced>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut rows = BTreeMap::new();
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            // A damaged row is dropped: the path then counts as never synced, which copies
            // nothing over anything without comparing contents first.
            if let Some((rel, row)) = parse_row(&line) {
                rows.insert(rel, row);
            }
        }
        Ok(Manifest { rows })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out = Vec::with_capacity(self.rows.len() * 96);
        for (rel, row) in &self.rows {
            match row {
                Synced::Dir => writeln!(out, "d\t{}", escape(rel))?,
                Synced::File {
                    home: h,
                    runtime: r,
                } => writeln!(
                    out,
                    "f\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    h.size,
                    h.mtime_ns,
                    h.ino,
                    r.size,
                    r.mtime_ns,
                    r.ino,
                    escape(rel)
                )?,
            }
        }
        fsx::atomic_write(path, &out, fsx::PRIVATE_FILE)
    }
}

fn escape(rel: &str) -> String {
    rel.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
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

fn parse_row(line: &str) -> Option<(String, Synced)> {
    let mut f = line.split('\t');
    match f.next()? {
        "d" => Some((unescape(f.next()?), Synced::Dir)),
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
            Some((unescape(f.next()?), Synced::File { home, runtime }))
        }
        _ => None,
    }
}

/// Every directory and file under `root`, less the managed top-level names and our temp files.
/// Symlinks are followed (a home may link folders in from elsewhere).
fn walk(root: &Path) -> Result<BTreeMap<String, Node>> {
    let mut out = BTreeMap::new();
    walk_into(root, "", 0, &mut out)?;
    Ok(out)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut BTreeMap<String, Node>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(fsx::TEMP_PREFIX) || (depth == 0 && is_managed(&name)) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        let meta = if file_type.is_symlink() {
            match fs::metadata(entry.path()) {
                Ok(m) => m,
                Err(_) => continue, // a dangling link has nothing to mirror
            }
        } else if file_type.is_dir() {
            out.insert(rel.clone(), Node::Dir);
            walk_into(&entry.path(), &rel, depth + 1, out)?;
            continue;
        } else {
            match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot stat {}", entry.path().display()));
                }
            }
        };
        if meta.is_dir() {
            out.insert(rel.clone(), Node::Dir);
            walk_into(&entry.path(), &rel, depth + 1, out)?;
        } else if meta.is_file() {
            out.insert(rel, Node::File(Stamp::of(&meta)));
        }
    }
    Ok(())
}

fn join(root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in rel.split('/') {
        p.push(part);
    }
    p
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
}

impl Mirror<'_> {
    fn root(&self, side: Side) -> &Path {
        match side {
            Side::Home => self.home,
            Side::Runtime => self.runtime,
        }
    }

    /// Copies `rel` from `from` to the other side and records both stamps.
    fn copy(&mut self, from: Side, rel: &str, from_stamp: Stamp) -> Result<()> {
        let to = if from == Side::Home {
            Side::Runtime
        } else {
            Side::Home
        };
        let src = join(self.root(from), rel);
        let dst = join(self.root(to), rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let written = Stamp::of(&fsx::copy_file_fast(&src, &dst)?);
        let (home, runtime) = if from == Side::Home {
            (from_stamp, written)
        } else {
            (written, from_stamp)
        };
        self.manifest
            .rows
            .insert(rel.to_owned(), Synced::File { home, runtime });
        match to {
            Side::Home => self.report.copied_to_home += 1,
            Side::Runtime => self.report.copied_to_runtime += 1,
        }
        Ok(())
    }

    fn mkdir(&mut self, side: Side, rel: &str) -> Result<()> {
        let dir = join(self.root(side), rel);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        self.manifest.rows.insert(rel.to_owned(), Synced::Dir);
        Ok(())
    }

    /// Both sides changed `rel` since the last sync (or it was never synced): the newer version
    /// takes the path on both sides and the other is kept beside it as a conflict copy.
    fn both_changed(&mut self, rel: &str, h: Stamp, r: Stamp) -> Result<()> {
        let hp = join(self.home, rel);
        let rp = join(self.runtime, rel);
        if h.size == r.size && same_contents(&hp, &rp)? {
            self.manifest.rows.insert(
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
        let loser_path = join(self.root(loser), rel);
        let aside = conflict_name(&join(self.home, rel), loser_name);
        fsx::copy_file_fast(&loser_path, &aside)?;
        let winner_stamp = if winner == Side::Home { h } else { r };
        self.copy(winner, rel, winner_stamp)?;
        self.report.conflicts.push(
            aside
                .strip_prefix(self.home)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        Ok(())
    }

    fn visit(&mut self, rel: &str, h: Option<Node>, r: Option<Node>) -> Result<()> {
        let m = self.manifest.rows.get(rel).copied();
        match (h, r) {
            (None, None) => {
                self.manifest.rows.remove(rel);
            }
            (Some(Node::Dir), Some(Node::Dir)) => {
                if m != Some(Synced::Dir) {
                    self.manifest.rows.insert(rel.to_owned(), Synced::Dir);
                }
            }
            (Some(Node::File(hs)), Some(Node::File(rs))) => match m {
                Some(Synced::File { home, runtime }) if home == hs && runtime == rs => {}
                Some(Synced::File { home, .. }) if home == hs => {
                    self.copy(Side::Runtime, rel, rs)?
                }
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.copy(Side::Home, rel, hs)?
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
                _ => self.copy(Side::Home, rel, hs)?,
            },
            (None, Some(Node::File(rs))) => match m {
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.deletions.push((Side::Runtime, rel.to_owned()))
                }
                _ => self.copy(Side::Runtime, rel, rs)?,
            },
            (Some(_), Some(_)) => {
                // A file on one side, a directory on the other: leave both for the user.
                self.report.conflicts.push(rel.to_owned());
            }
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
                self.manifest.rows.remove(&rel);
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

/// One two-way mirror pass over the whole tree.
pub fn sync(
    home: &Path,
    runtime: &Path,
    manifest: &mut Manifest,
    report: &mut SyncReport,
) -> Result<()> {
    let h = walk(home)?;
    let r = walk(runtime)?;
    let mut paths: BTreeSet<&str> = h.keys().map(String::as_str).collect();
    paths.extend(r.keys().map(String::as_str));
    let known: Vec<String> = manifest
        .rows
        .keys()
        .filter(|k| !paths.contains(k.as_str()))
        .cloned()
        .collect();
    let mut mirror = Mirror {
        home,
        runtime,
        manifest,
        report,
        deletions: Vec::new(),
    };
    for rel in paths {
        mirror.visit(rel, h.get(rel).copied(), r.get(rel).copied())?;
    }
    for rel in known {
        mirror.visit(&rel, None, None)?;
    }
    mirror.delete_pending()
}
