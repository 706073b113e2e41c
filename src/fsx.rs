//! File-system primitives: atomic writes and copies, private directories, symlink swaps, moves.
//!
//! Every write that another process may read goes through a temp sibling, fsync and rename, so a
//! reader sees the old bytes or the new bytes, never a mix, and a crash leaves no partial file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::platform;

/// Prefix of every temp file this crate creates; sweeps and mirrors skip names that carry it.
pub const TEMP_PREFIX: &str = ".clauth-tmp-";

/// Mode of credentials and every other store file.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of store directories.
pub const PRIVATE_DIR: u32 = 0o700;

fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    // tempfile creates the file 0600 with O_EXCL, so it is never readable by others, even briefly.
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

fn parent_of(path: &Path) -> Result<&Path> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .with_context(|| format!("{} has no parent directory", path.display()))
}

/// Writes `bytes` to `path` atomically with permission bits `mode`.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    atomic_write_with(path, mode, |out| out.write_all(bytes))
}

/// Like [`atomic_write`], with the contents written by `fill` through a buffer.
pub fn atomic_write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let dir = parent_of(path)?;
    let mut tmp =
        temp_in(dir).with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        fill(&mut out)
            .and_then(|_| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    platform::set_file_mode(tmp.as_file(), mode)
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Copies `src` to `dst` atomically and durably, keeping the modification time and, when `mode`
/// is given, setting those permission bits (otherwise the source's are kept). Returns the
/// metadata of what was written.
pub fn copy_file_atomic(src: &Path, dst: &Path, mode: Option<u32>) -> Result<fs::Metadata> {
    copy_file(src, dst, mode, true).map(|c| c.written)
}

/// What a copy read and what it wrote, as the open files saw them.
pub struct Copied {
    pub source: fs::Metadata,
    pub written: fs::Metadata,
}

/// The same as [`copy_file_atomic`] without fsync: a crash may lose the copy but never shows a
/// partial one. For mirror copies, whose source stays in place until the next sync.
pub fn copy_file_fast(src: &Path, dst: &Path) -> Result<Copied> {
    copy_file(src, dst, None, false)
}

/// Copies into a path that must not exist yet, without a temp file: for filling a directory that
/// nobody else uses until the caller says so (a runtime being built).
pub fn copy_file_new(src: &Path, dst: &Path) -> Result<Copied> {
    let mut input = open_regular(src).with_context(|| format!("cannot open {}", src.display()))?;
    let source = input
        .metadata()
        .with_context(|| format!("cannot stat {}", src.display()))?;
    let mut out =
        File::create_new(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    io::copy(&mut input, &mut out)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    finish_copy(&out, &source, None, dst)?;
    let written = out
        .metadata()
        .with_context(|| format!("cannot stat {}", dst.display()))?;
    Ok(Copied { source, written })
}

/// Gives a copy the source's permission bits (or `mode`) and modification time.
fn finish_copy(out: &File, source: &fs::Metadata, mode: Option<u32>, dst: &Path) -> Result<()> {
    let bits = mode
        .or_else(|| platform::mode_of(source))
        .unwrap_or(PRIVATE_FILE);
    platform::set_file_mode(out, bits)
        .with_context(|| format!("cannot set the mode of {}", dst.display()))?;
    if let Ok(mtime) = source.modified() {
        out.set_modified(mtime)
            .with_context(|| format!("cannot set the time of {}", dst.display()))?;
    }
    Ok(())
}

/// Copies `src` over `dst` only while `dst` is still the version stamped `expected` (`None`:
/// nothing there, a dangling link included): the copy goes to a temp file first, then `guard` is taken (a lock that
/// other writers of `dst` take too) and the stamp checked again just before the rename.
/// `None` when `dst` changed, and nothing was written.
pub fn copy_file_over<G>(
    src: &Path,
    dst: &Path,
    expected: Option<Stamp>,
    guard: impl FnOnce() -> Result<G>,
) -> Result<Option<Copied>> {
    copy_file_if(src, dst, None, false, |dst| {
        let held = guard()?;
        // Links followed, as a walk lists them: a dangling link is nothing there.
        let now = match fs::metadata(dst) {
            Ok(meta) => Some(Stamp::of(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dst.display())),
        };
        Ok((now == expected).then_some(held))
    })
}

fn copy_file(src: &Path, dst: &Path, mode: Option<u32>, durable: bool) -> Result<Copied> {
    let copied = copy_file_if(src, dst, mode, durable, |_| Ok(Some(())))?;
    copied.context("a copy without a condition was dropped")
}

/// A copy through a temp file, renamed over `dst` when `ready` (called just before the rename,
/// its value held across it) says so.
fn copy_file_if<G>(
    src: &Path,
    dst: &Path,
    mode: Option<u32>,
    durable: bool,
    ready: impl FnOnce(&Path) -> Result<Option<G>>,
) -> Result<Option<Copied>> {
    let dir = parent_of(dst)?;
    let mut input = open_regular(src).with_context(|| format!("cannot open {}", src.display()))?;
    let source = input
        .metadata()
        .with_context(|| format!("cannot stat {}", src.display()))?;
    let mut tmp =
        temp_in(dir).with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
    // io::copy between two files uses copy_file_range (reflinks where the file system has them).
    io::copy(&mut input, tmp.as_file_mut())
        .and_then(|_| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    finish_copy(tmp.as_file(), &source, mode, dst)?;
    // Stat the open temp file, not the path: after the rename it is the same inode, and nothing
    // written to the path after the rename can slip into what the caller records.
    let written = tmp
        .as_file()
        .metadata()
        .with_context(|| format!("cannot stat {}", dst.display()))?;
    let Some(_held) = ready(dst)? else {
        return Ok(None);
    };
    tmp.persist(dst)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", dst.display()))?;
    if durable {
        sync_dir(dir);
    }
    Ok(Some(Copied { source, written }))
}

/// Where a path leads when it is a symlink to something that exists (followed to the end), so
/// that a write replaces the target and keeps the link; otherwise the path itself.
pub fn resolve_link(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// Writes `bytes` at `path` only over the version stamped `expected` (`None`: nothing there),
/// in one exchange: when another writer renamed a newer version in after the caller read,
/// that version is put back and this write is dropped. Returns the stamp written, or `None`
/// when it was dropped.
pub fn replace_if_unchanged(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    expected: Option<Stamp>,
) -> Result<Option<Stamp>> {
    replace_if_unchanged_with(path, mode, expected, |out| out.write_all(bytes))
}

/// Like [`replace_if_unchanged`], with the contents written by `fill` through a buffer, so a
/// big document goes to the file piece by piece and is never whole in memory.
pub fn replace_if_unchanged_with(
    path: &Path,
    mode: u32,
    expected: Option<Stamp>,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Option<Stamp>> {
    let dir = parent_of(path)?;
    let new = unique_sibling(dir, "doc");
    atomic_write_with(&new, mode, fill)?;
    let ours = Stamp::at(&new)?;
    // Most races end here: a newer version arrived while this one was being written.
    if Stamp::at(path)? != expected {
        remove_entry(&new)?;
        return Ok(None);
    }
    if !platform::exchange(&new, path)
        .with_context(|| format!("cannot replace {}", path.display()))?
    {
        // Nothing was there: ours is in place.
        return Ok(ours);
    }
    // `new` now holds what was at the path. Each round puts back what another writer put
    // there and looks at what comes out; a few rounds settle any burst.
    for _ in 0..8 {
        let out = Stamp::at(&new)?;
        if out == expected || out == ours {
            remove_entry(&new)?;
            return Ok(if out == expected { ours } else { None });
        }
        if !platform::exchange(&new, path)
            .with_context(|| format!("cannot replace {}", path.display()))?
        {
            return Ok(None);
        }
    }
    // Still contended: what is at the path stays; ours, or a version in between, is dropped.
    remove_entry(&new)?;
    Ok(None)
}

/// A lock directory in the style Claude Code uses (`<file>.lock`, made by `mkdir`, stale once
/// its time is over a minute old), held while the value lives.
pub struct LockDir {
    path: PathBuf,
}

impl LockDir {
    /// Takes `path`, waiting at most `timeout` for its holder; `None` when it stayed held.
    pub fn take(path: &Path, timeout: std::time::Duration) -> Result<Option<LockDir>> {
        // Claude Code renews its locks' time every few seconds and counts them stale after up to
        // a minute; a lock older than that is left by a process that died.
        const STALE: std::time::Duration = std::time::Duration::from_secs(60);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    return Ok(Some(LockDir {
                        path: path.to_path_buf(),
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::symlink_metadata(path)
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE);
                    // An empty stale directory is taken over; anything else (a file, a
                    // directory with entries) waits for the deadline like a held lock.
                    if stale && fs::remove_dir(path).is_ok() {
                        continue;
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for LockDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.path);
    }
}

/// Best-effort fsync of a directory so a rename inside it survives a power cut.
pub fn sync_dir(dir: &Path) {
    platform::sync_dir(dir)
}

/// Creates `path` (and missing parents) and gives it `mode`.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => anyhow::bail!("{} exists and is not a directory", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    platform::set_mode(path, mode)
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// Points `link` at `target`, replacing whatever is at `link` in one rename.
pub fn replace_with_symlink(target: &Path, link: &Path) -> Result<()> {
    let dir = parent_of(link)?;
    let tmp = unique_sibling(dir, "link");
    platform::symlink(target, &tmp)
        .with_context(|| format!("cannot create a symlink in {}", dir.display()))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot replace {}", link.display()));
    }
    Ok(())
}

/// A fresh name in `dir` carrying the temp prefix.
pub fn unique_sibling(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{what}-{}", crate::ids::random_hex(8)))
}

/// Whether symlinks can be created in `dir`.
pub fn symlinks_work(dir: &Path) -> bool {
    let link = unique_sibling(dir, "probe");
    let ok = platform::symlink(Path::new("."), &link).is_ok();
    let _ = fs::remove_file(&link);
    ok
}

/// Removes a file, symlink or directory tree; a missing path is not an error. Never follows a
/// symlink.
pub fn remove_entry(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .with_context(|| format!("cannot remove {}", path.display()))
}

/// Removes what crashed writers and teardowns left under `dir`: temp files and trash
/// directories (never anything without the temp prefix). Runs under the state lock, so no
/// clauth-helper is writing them now.
pub fn sweep_temp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = remove_entry(&entry.path());
        }
    }
}

/// Moves `src` to `dst` (which must not exist), by rename or, across file systems, by copy and
/// removal. The copy completes before the source is removed.
pub fn move_entry(src: &Path, dst: &Path) -> Result<()> {
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: a different file system.
            copy_tree(src, dst)?;
            remove_entry(src)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot move {} to {}", src.display(), dst.display()))
        }
    }
}

/// Copies a file or directory tree, keeping modification times; symlinks are copied as links.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta =
        fs::symlink_metadata(src).with_context(|| format!("cannot stat {}", src.display()))?;
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(src).with_context(|| format!("cannot read {}", src.display()))?;
        platform::symlink(&target, dst)
            .with_context(|| format!("cannot create {}", dst.display()))?;
    } else if meta.is_dir() {
        fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
        for entry in fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))? {
            let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        if let Some(bits) = platform::mode_of(&meta) {
            let _ = platform::set_mode(dst, bits);
        }
        set_dir_mtime(dst, &meta);
    } else if meta.is_file() {
        copy_file_fast(src, dst)?;
    }
    // FIFOs, sockets and devices hold no data to keep: they are not opened, nor copied.
    Ok(())
}

fn set_dir_mtime(dir: &Path, meta: &fs::Metadata) {
    if let (Ok(mtime), Ok(f)) = (meta.modified(), File::open(dir)) {
        let _ = f.set_modified(mtime);
    }
}

/// What tells whether a file changed without reading it: size, modification time and file id
/// (a rename-over gives a new id even within one timestamp tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime_ns: mtime_ns(meta) as i64,
            ino: platform::file_id(meta),
        }
    }

    /// The stamp of whatever is at `path` (not following a symlink), or `None`.
    pub fn at(path: &Path) -> Result<Option<Stamp>> {
        Ok(lstat_optional(path)?.map(|m| Stamp::of(&m)))
    }
}

/// Modification time in nanoseconds since the epoch (0 when unknown).
pub fn mtime_ns(meta: &fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Reads a file, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut file = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(bytes))
}

/// Opens `path` for reading only when it is a regular file (a link to one is followed). The
/// open itself never blocks: a FIFO, socket or device in a tree is refused, not waited on.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    platform::open_nonblocking(&mut options);
    let file = options.open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ))
    }
}

/// `symlink_metadata`, or `None` when nothing is there.
pub fn lstat_optional(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
}
