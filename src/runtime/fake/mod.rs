//! Fake link mode: the runtime holds copies, mirrored both ways against a record of the last
//! synced state (the manifest), so that a deletion on one side is carried to the other instead of
//! being undone, and a file changed on both sides keeps both versions.
//!
//! A file is "changed" when its stamp (size, mtime, file id) differs from the manifest's, so a
//! pass with nothing changed reads no file contents. The walk goes directory by directory over
//! both trees at once, so memory follows the widest directory and the manifest, not the tree.
//! Copies into a live runtime go through a temp file and a rename.

mod manifest;
mod progress;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use manifest::Synced;
pub use manifest::{Manifest, journal_path};
use progress::Progress;

use super::SyncReport;
use super::names::{self, conflict_name, is_managed, is_transient, join};
use crate::fsx::{self, Stamp};
use crate::layout::Layout;
use crate::lock::StateLock;

/// Deeper than this, a walk stops and reports the folder as skipped. Loops through symlinks are
/// found by the folders' ids; this only bounds the walk's stack.
const MAX_DEPTH: usize = 512;

/// A folder's device and inode.
type DirId = (u64, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(Stamp),
}

/// The entries of one directory, sorted by name, less the managed top-level names and our temp
/// files. Symlinks are followed (a home may link folders in from elsewhere); a missing directory
/// lists as empty.
fn list(dir: &Path, top: bool) -> Result<Listing> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Listing::default());
        }
        // A folder that cannot be read (no permission, a loop) is not an empty one: reading it
        // as empty would carry every file in it to the other side as deleted.
        Err(e) if unreadable(&e) => {
            return Ok(Listing {
                unreadable: true,
                ..Listing::default()
            });
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        // Every name is listed, also one that is not valid Unicode (carried encoded).
        let name = names::encode(&entry.file_name()).into_owned();
        if name.starts_with(fsx::TEMP_PREFIX) || (top && is_managed(&name)) {
            continue;
        }
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        if !top && is_transient(&name, file_type.is_dir()) {
            continue;
        }
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
            Err(e) if unreadable(&e) => skipped.push(name.into_boxed_str()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot stat {}", entry.path().display()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Listing {
        entries: out,
        skipped,
        unreadable: false,
    })
}

/// One side's view of a directory.
#[derive(Default)]
struct Listing {
    entries: Vec<(Box<str>, Node)>,
    /// Entries that could not be looked at (a symlink loop, no permission): left alone on
    /// both sides, neither copied nor taken for deleted.
    skipped: Vec<Box<str>>,
    /// The directory itself could not be read.
    unreadable: bool,
}

/// Errors that say an entry cannot be looked at, rather than that something broke.
fn unreadable(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::ELOOP)
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
    /// The store whose lock every write into the claude home is made under (other profiles'
    /// mirrors write there too), each checked against what the walk saw just before it lands.
    store: Option<&'a Layout>,
    progress: Progress,
    /// The ids of the folders being walked, home and runtime side, from the top down: a folder
    /// that is one of its own ancestors (a symlink to a parent) is a loop, skipped and reported.
    ancestors: Vec<(Option<DirId>, Option<DirId>)>,
}

impl Mirror<'_> {
    fn root(&self, side: Side) -> &Path {
        match side {
            Side::Home => self.home,
            Side::Runtime => self.runtime,
        }
    }

    /// The store lock, for a write into the claude home (none while a runtime is built).
    fn shared(&self) -> Result<Option<StateLock>> {
        self.store.map(StateLock::acquire).transpose()
    }

    /// Copies the runtime's `rel` into the home over the version the walk saw there
    /// (`expected`, `None` for none). When another writer (a plain `claude`, another profile's
    /// mirror) changed the home's copy since, the home's newer version wins on both sides and
    /// the session's is kept beside it as a conflict copy: nothing is written over unseen.
    fn copy_home_over(&mut self, rel: &str, expected: Option<Stamp>) -> Result<()> {
        if self.copy_to(Side::Runtime, rel, expected)? {
            return Ok(());
        }
        let hp = join(self.home, rel);
        // Looked at as the walk looks (links followed).
        match fs::metadata(&hp) {
            // Deleted meanwhile: the session's version takes the empty place, if it still is
            // (else the next pass sees what is there).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.copy_to(Side::Runtime, rel, None).map(drop)
            }
            Ok(meta) if meta.is_file() => {
                {
                    let _shared = self.shared()?;
                    let aside = conflict_name(&hp, "session");
                    fsx::copy_file_fast(&join(self.runtime, rel), &aside)?;
                    let shown = aside
                        .strip_prefix(self.home)
                        .map(|p| p.to_string_lossy().into_owned());
                    self.report.conflicts.push(shown.unwrap_or_default());
                }
                let now = fsx::Stamp::at(&join(self.runtime, rel))?;
                self.copy_runtime_over(rel, now)
            }
            // A folder now, or not to be looked at: the next pass decides from what is there.
            _ => Ok(()),
        }
    }

    /// Copies the home's `rel` into the runtime over the version the walk saw there
    /// (`expected`, `None` for none). When the session changed its copy since (Claude Code
    /// appends to files in place), nothing is written: the next pass finds both sides changed
    /// and keeps both versions.
    fn copy_runtime_over(&mut self, rel: &str, expected: Option<Stamp>) -> Result<()> {
        self.copy_to(Side::Home, rel, expected).map(drop)
    }

    /// Copies `rel` from `from` to the other side over the version stamped `expected` there,
    /// and records both stamps as the copy saw them; false when that version changed.
    fn copy_to(&mut self, from: Side, rel: &str, expected: Option<Stamp>) -> Result<bool> {
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
            fsx::copy_file_new(&src, &dst).map(Some)
        } else if to == Side::Home {
            fsx::copy_file_over(&src, &dst, expected, || self.shared())
        } else {
            fsx::copy_file_over(&src, &dst, expected, || Ok(()))
        };
        let copied = match copied {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(false),
            // A file that cannot be read is left alone, and said so, not a failed sync.
            Err(e)
                if e.chain()
                    .filter_map(|c| c.downcast_ref::<std::io::Error>())
                    .any(unreadable) =>
            {
                self.report.skipped.push(names::shown(rel));
                return Ok(true);
            }
            Err(e) => return Err(e),
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
        Ok(true)
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
        {
            // Named and written under the store lock: another profile's mirror may be keeping
            // a conflict copy of the same file in the same millisecond.
            let _shared = self.shared()?;
            let aside = conflict_name(&hp, loser_name);
            fsx::copy_file_fast(&join(self.root(loser), rel), &aside)?;
            let shown = aside
                .strip_prefix(self.home)
                .map(|p| p.to_string_lossy().into_owned());
            self.report.conflicts.push(shown.unwrap_or_default());
        }
        match winner {
            Side::Runtime => self.copy_home_over(rel, Some(h))?,
            Side::Home => self.copy_runtime_over(rel, Some(r))?,
        }
        Ok(())
    }

    /// A file on one side, a directory on the other: as in real mode, the session's takes the
    /// path on both sides and the home's is kept beside it in the home as a conflict copy
    /// (which the next pass mirrors like any new entry).
    fn kind_changed(&mut self, rel: &str, runtime_node: Node) -> Result<()> {
        let hp = join(self.home, rel);
        let aside = conflict_name(&hp, "home");
        {
            let _shared = self.shared()?;
            fs::rename(&hp, &aside)
                .with_context(|| format!("cannot move {} aside", hp.display()))?;
        }
        let shown = aside
            .strip_prefix(self.home)
            .map(|p| p.to_string_lossy().into_owned());
        self.report.conflicts.push(shown.unwrap_or_default());
        self.manifest.unset(rel);
        self.manifest.forget_below(rel);
        match runtime_node {
            Node::File(_) => self.copy_home_over(rel, None),
            Node::Dir => self.mkdir(Side::Home, rel),
        }
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
                Some(Synced::File { home, .. }) if home == hs => {
                    self.copy_home_over(rel, Some(hs))?
                }
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.copy_runtime_over(rel, Some(rs))?
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
                _ => self.copy_runtime_over(rel, None)?,
            },
            (None, Some(Node::File(rs))) => match m {
                Some(Synced::File { runtime, .. }) if runtime == rs => {
                    self.deletions.push((Side::Runtime, rel.to_owned()))
                }
                _ => self.copy_home_over(rel, None)?,
            },
            (Some(_), Some(r)) => self.kind_changed(rel, r)?,
        }
        Ok(())
    }

    /// Visits the entries of directory `rel` on both sides; `deep` descends into every
    /// subdirectory, otherwise only into ones that are new since the last sync.
    fn visit_dir(&mut self, rel: &str, depth: usize, deep: bool) -> Result<()> {
        let id = |root: &Path| {
            fs::metadata(join(root, rel))
                .ok()
                .and_then(|m| crate::platform::dir_id(&m))
        };
        let ids = (id(self.home), id(self.runtime));
        let looped = self
            .ancestors
            .iter()
            .any(|(h, r)| (ids.0.is_some() && *h == ids.0) || (ids.1.is_some() && *r == ids.1));
        if depth > MAX_DEPTH || looped {
            // Left as it is on both sides and said so: never cut silently, never deleted.
            self.report.skipped.push(names::shown(rel));
            return Ok(());
        }
        self.ancestors.push(ids);
        let result = self.visit_entries(rel, depth, deep);
        self.ancestors.pop();
        result
    }

    fn visit_entries(&mut self, rel: &str, depth: usize, deep: bool) -> Result<()> {
        let top = rel.is_empty();
        let home_side = list(&join(self.home, rel), top)?;
        let runtime_side = list(&join(self.runtime, rel), top)?;
        if home_side.unreadable || runtime_side.unreadable {
            self.report.skipped.push(names::shown(rel));
            return Ok(());
        }
        let mut skipped: Vec<&str> = home_side
            .skipped
            .iter()
            .chain(&runtime_side.skipped)
            .map(|n| &**n)
            .collect();
        skipped.sort_unstable();
        skipped.dedup();
        for name in &skipped {
            self.report.skipped.push(names::shown(&child(rel, name)));
        }
        let is_skipped = |name: &str| skipped.binary_search(&name).is_ok();
        let (hs, rs) = (&home_side.entries, &runtime_side.entries);
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
            if is_skipped(name) {
                continue;
            }
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
            is_skipped(name)
                || hs.binary_search_by(|(n, _)| (**n).cmp(name)).is_ok()
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
                Some(_) => self.delete_file(side, &rel, &path)?,
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

impl Mirror<'_> {
    /// Deletes a file that the other side deleted, unless it changed since the walk looked at
    /// it: it is taken out of the way by one rename and only then compared with the stamp the
    /// manifest holds, so a write that landed in the meantime is put back, never deleted (the
    /// manifest still holds the old stamp, so the next pass carries the new version across).
    fn delete_file(&mut self, side: Side, rel: &str, path: &Path) -> Result<bool> {
        let expected = match self.manifest.rows.get(rel) {
            Some(Synced::File { home, runtime }) => Some(match side {
                Side::Home => *home,
                Side::Runtime => *runtime,
            }),
            _ => None,
        };
        let _shared = match side {
            Side::Home => self.shared()?,
            Side::Runtime => None,
        };
        let taken = fsx::unique_sibling(path.parent().unwrap_or(path), "delete");
        match fs::rename(path, &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
        }
        let now = fs::metadata(&taken).ok().map(|m| Stamp::of(&m));
        if now.is_some() && now == expected {
            fs::remove_file(&taken).with_context(|| format!("cannot remove {}", path.display()))?;
            return Ok(true);
        }
        // Back in place by a link, which never replaces a file that took the name meanwhile;
        // if one did, the changed version is kept beside it as a conflict copy.
        match fs::hard_link(&taken, path) {
            Ok(()) => fs::remove_file(&taken)
                .with_context(|| format!("cannot remove {}", taken.display()))?,
            Err(_) => {
                let aside = conflict_name(
                    path,
                    if side == Side::Home {
                        "home"
                    } else {
                        "session"
                    },
                );
                fs::rename(&taken, &aside)
                    .with_context(|| format!("cannot put back {}", path.display()))?;
                let root = self.root(side).to_path_buf();
                let shown = aside.strip_prefix(&root).unwrap_or(&aside);
                self.report
                    .conflicts
                    .push(shown.to_string_lossy().into_owned());
            }
        }
        Ok(false)
    }
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let (Some(x), Some(y)) = (fsx::read_optional(a)?, fsx::read_optional(b)?) else {
        return Ok(false);
    };
    Ok(x == y)
}

/// One two-way mirror pass; without `store`, for a runtime being built, which nobody uses yet.
pub fn sync(
    home: &Path,
    runtime: &Path,
    manifest: &mut Manifest,
    scope: &Scope,
    store: Option<&Layout>,
    report: &mut SyncReport,
) -> Result<()> {
    // Only a runtime being built is mirrored without the store: nothing goes to the home then.
    let fresh = store.is_none();
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
        store,
        progress: Progress::new(fresh),
        ancestors: Vec::new(),
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
