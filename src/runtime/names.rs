//! Which names of a runtime's top level are its own, never linked to or mirrored with the
//! claude home, and the names the helper gives the copies it keeps aside.

use std::path::{Path, PathBuf};

use crate::ids::now_ms;

/// Documents of a runtime's top level that it keeps as its own files in both modes.
pub const MANAGED: &[&str] = &[".credentials.json", "settings.json", ".claude.json"];

/// Top-level directories that belong to the profile rather than the claude home: Claude Code
/// keeps backups of `.claude.json` (account keys included) in `backups/`.
pub const PER_PROFILE: &[&str] = &["backups"];

/// Whether a top-level name is never linked to or mirrored with the claude home: the managed
/// documents, the per-profile directories, Claude Code's lock files and lock directories
/// (`.claude.json.lock`, `.oauth_refresh.lock`, ...), and the temp files it renames over the
/// managed documents (`.claude.json.tmp.<pid>.<hex>`). Shared, a lock of one account would
/// block the others and a half-written document could travel.
pub fn is_managed(name: &str) -> bool {
    MANAGED.contains(&name)
        || PER_PROFILE.contains(&name)
        || name.ends_with(".lock")
        // Temp files renamed over their target a moment later (`x.tmp`, `x.tmp.<pid>.<hex>`).
        || name.ends_with(".tmp")
        || name.contains(".tmp.")
        || MANAGED.iter().any(|m| {
            name.len() > m.len() && name.starts_with(m) && name.as_bytes()[m.len()] == b'.'
        })
}

/// `dir/name.clauth-conflict-<ms>-<side>`, beside `path`.
pub fn conflict_name(path: &Path, side: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.clauth-conflict-{}-{side}", now_ms()))
}
