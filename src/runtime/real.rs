//! Real link mode: every top-level entry of the claude home appears in the runtime as a symlink.
//!
//! Claude Code saves files by renaming a temp file over the path, which turns a symlink into a
//! regular file, and it creates new top-level entries as it runs. A sync folds such entries into
//! the claude home and puts the symlink back, links entries the home gained, and unlinks entries
//! the home lost.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::names::{self, NAME_MAX, decode};
use super::{SyncReport, is_managed};
use crate::fsx;
use crate::platform;

/// Top-level names of `dir`, less the managed ones and our temp files.
pub(super) fn entry_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        // Every name, also one that is not valid Unicode (carried encoded).
        let name = names::encode(&entry.file_name()).into_owned();
        if !is_managed(&name) && !name.starts_with(fsx::TEMP_PREFIX) {
            names.insert(name);
        }
    }
    Ok(names)
}

/// Links every top-level entry of the home into a fresh runtime.
pub fn materialise(home: &Path, runtime: &Path) -> Result<()> {
    for name in entry_names(home)? {
        platform::symlink(&home.join(decode(&name)), &runtime.join(decode(&name)))
            .with_context(|| format!("cannot link {} into {}", name, runtime.display()))?;
    }
    Ok(())
}

/// Brings the runtime's top level back in line with the home, adopting what the session wrote.
pub fn sync(home: &Path, runtime: &Path, report: &mut SyncReport) -> Result<()> {
    let home_names = entry_names(home)?;
    let runtime_names = entry_names(runtime)?;
    for name in &runtime_names {
        let here = runtime.join(decode(name));
        let there = home.join(decode(name));
        let meta = fs::symlink_metadata(&here)
            .with_context(|| format!("cannot stat {}", here.display()))?;
        if meta.file_type().is_symlink() && leads_to(&here, &there) {
            if !home_names.contains(name) {
                // The home lost the entry: a link to nothing would only confuse Claude Code.
                fsx::remove_entry(&here)?;
                report.unlinked.push(names::shown(name));
            }
            continue;
        }
        // A regular file or directory (or a foreign link) that the session wrote: the link
        // goes in by one exchange, which takes out exactly what was there (a write landing
        // meanwhile is taken out with it, never overwritten), and that is folded into the home.
        let (taken_name, note) = adopt_name(runtime, name)?;
        let taken = runtime.join(taken_name);
        platform::symlink(&there, &taken)
            .with_context(|| format!("cannot create a link in {}", runtime.display()))?;
        if platform::exchange(&taken, &here)
            .with_context(|| format!("cannot replace {}", here.display()))?
        {
            adopt(home, &taken, name, report)?;
        }
        if let Some(note) = note {
            fsx::remove_entry(&note)?;
        }
        report.adopted.push(names::shown(name));
    }
    for name in home_names.difference(&runtime_names) {
        platform::symlink(&home.join(decode(name)), &runtime.join(decode(name)))
            .with_context(|| format!("cannot link {} into {}", name, runtime.display()))?;
        report.linked.push(names::shown(name));
    }
    Ok(())
}

/// The temp name an entry taken out of a runtime carries until it is in the home; it keeps
/// the entry's name, so a crash in between can be finished later ([`recover`]). A name too
/// long to carry goes in a note beside it (`<temp>.name`) instead.
fn adopt_name(runtime: &Path, name: &str) -> Result<(String, Option<PathBuf>)> {
    let hex = crate::ids::random_hex(4);
    let plain = format!("{}adopt-{hex}-{name}", fsx::TEMP_PREFIX);
    // A name that is not valid Unicode is carried in the note, which holds it encoded.
    if plain.len() <= NAME_MAX && !plain.contains('\0') {
        return Ok((plain, None));
    }
    let note = name_note(runtime, &hex);
    fsx::atomic_write(&note, name.as_bytes(), fsx::PRIVATE_FILE)?;
    Ok((format!("{}adopt-{hex}-~", fsx::TEMP_PREFIX), Some(note)))
}

fn name_note(runtime: &Path, hex: &str) -> PathBuf {
    runtime.join(format!("{}adopt-{hex}.name", fsx::TEMP_PREFIX))
}

/// Whether the link at `link` is the runtime's link to `target`: by its text, or by where both
/// lead (the same home reached by another spelling).
fn leads_to(link: &Path, target: &Path) -> bool {
    fs::read_link(link).ok().as_deref() == Some(target)
        || matches!(
            (fs::canonicalize(link), fs::canonicalize(target)),
            (Ok(a), Ok(b)) if a == b
        )
        || points_at(link, target)
}

/// Whether the link at `link` names `target` itself (also when neither exists), comparing
/// their folders as resolved: such a link moved to `target` would lead to itself.
fn points_at(link: &Path, target: &Path) -> bool {
    let Ok(text) = fs::read_link(link) else {
        return false;
    };
    let resolved = |p: &Path| -> Option<PathBuf> {
        Some(fs::canonicalize(p.parent()?).ok()?.join(p.file_name()?))
    };
    let named = if text.is_absolute() {
        text
    } else {
        link.parent().map(|d| d.join(&text)).unwrap_or(text)
    };
    matches!((resolved(&named), resolved(target)), (Some(a), Some(b)) if a == b)
}

/// Moves an entry taken out of the runtime (`taken`) into the home as `name`. A link that
/// leads to the home entry itself is only this runtime's own link under another spelling: it
/// is dropped, never put in the home, where it would replace the entry with a link to itself.
fn adopt(home: &Path, taken: &Path, name: &str, report: &mut SyncReport) -> Result<()> {
    let there = home.join(decode(name));
    if fs::symlink_metadata(taken).is_ok_and(|m| m.file_type().is_symlink())
        && points_at(taken, &there)
    {
        return fsx::remove_entry(taken);
    }
    if fsx::lstat_optional(&there)?.is_some() {
        fold(home, taken, &there, report)
    } else {
        fsx::move_entry(taken, &there)
    }
}

/// Finishes adoptions a killed process left half done: entries taken out of the runtime but
/// not yet in the home.
pub fn recover(home: &Path, runtime: &Path, report: &mut SyncReport) -> Result<()> {
    let prefix = format!("{}adopt-", fsx::TEMP_PREFIX);
    for entry in
        fs::read_dir(runtime).with_context(|| format!("cannot read {}", runtime.display()))?
    {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((hex, name)) = rest.split_once('-') else {
            continue;
        };
        let note = name_note(runtime, hex);
        let noted;
        let name = if name == "~" {
            match fsx::read_optional(&note)?.and_then(|b| String::from_utf8(b).ok()) {
                Some(n) => {
                    noted = n;
                    noted.as_str()
                }
                // Without its note nothing says where it belongs: it stays for the user.
                None => continue,
            }
        } else {
            name
        };
        if name.is_empty() || is_managed(name) {
            continue;
        }
        let path = entry.path();
        if fs::read_link(&path).ok().as_deref() == Some(home.join(decode(name)).as_path()) {
            // The link prepared for the exchange, killed before it: the entry is still in place.
            fsx::remove_entry(&path)?;
            continue;
        }
        adopt(home, &path, name, report)?;
        fsx::remove_entry(&note)?;
        report.adopted.push(names::shown(name));
    }
    Ok(())
}

/// Moves `src` over `dst`, where both exist: the session's version wins file by file, and
/// directories are merged so nothing only the home had is lost.
fn fold(home: &Path, src: &Path, dst: &Path, report: &mut SyncReport) -> Result<()> {
    // A home entry linked in from elsewhere (a dotfiles repository) is updated where it leads.
    let dst = &fsx::resolve_link(dst);
    let src_meta =
        fs::symlink_metadata(src).with_context(|| format!("cannot stat {}", src.display()))?;
    let dst_meta =
        fs::symlink_metadata(dst).with_context(|| format!("cannot stat {}", dst.display()))?;
    if src_meta.is_dir() && dst_meta.is_dir() {
        for entry in fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))? {
            let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
            let target = dst.join(entry.file_name());
            if fsx::lstat_optional(&target)?.is_some() {
                fold(home, &entry.path(), &target, report)?;
            } else {
                fsx::move_entry(&entry.path(), &target)?;
            }
        }
        fs::remove_dir(src).with_context(|| format!("cannot remove {}", src.display()))?;
        return Ok(());
    }
    if src_meta.is_dir() != dst_meta.is_dir() {
        // A file became a directory or the reverse: keep the home's as a conflict copy.
        let aside = super::names::conflict_name(dst, "home");
        fs::rename(dst, &aside).with_context(|| format!("cannot move {} aside", dst.display()))?;
        let shown = aside.strip_prefix(home).unwrap_or(&aside);
        report.conflicts.push(shown.to_string_lossy().into_owned());
        return fsx::move_entry(src, dst);
    }
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(_) => {
            fsx::copy_file_atomic(src, dst, None)?;
            fsx::remove_entry(src)
        }
    }
}
