//! The manifest: the record of the last synced state of a fake-mode runtime, keyed by
//! relative path with `/` separators.
//!
//! On disk it is a full file plus a journal of the rows changed since (`<file>.log`), so that a
//! tick that changed k files writes k rows, not the whole tree; the journal is folded into the
//! full file once it grows past a fraction of it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsx::{self, Stamp};
use crate::platform;

/// One manifest row: what both sides were at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    Dir,
    File { home: Stamp, runtime: Stamp },
}

/// The record of the last synced state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    // Boxed strings: the manifest is the largest thing a pass holds, one row per file.
    pub(super) rows: BTreeMap<Box<str>, Synced>,
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
            platform::create_mode(&mut out, fsx::PRIVATE_FILE);
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

    pub(super) fn set(&mut self, rel: String, row: Synced) {
        let rel = rel.into_boxed_str();
        if self.rows.get(&rel) != Some(&row) {
            self.record(rel.clone(), Some(row));
            self.rows.insert(rel, row);
        }
    }

    pub(super) fn unset(&mut self, rel: &str) {
        if self.rows.remove(rel).is_some() {
            self.record(rel.into(), None);
        }
    }

    /// Rows of the direct children of directory `rel` ("" for the top) whose name passes
    /// `keep`, as full paths.
    pub(super) fn children_where(
        &self,
        rel: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<(String, Synced)> {
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
    pub(super) fn forget_below(&mut self, rel: &str) {
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
