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

/// The longest file name most file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// `name` followed by `suffix`, shortened so the whole fits in [`NAME_MAX`] bytes: a name too
/// long keeps its start and gets a digest of the whole in place of the rest, so two long names
/// that share a start still get names of their own.
pub fn fit(name: &str, suffix: &str) -> String {
    if name.len() + suffix.len() <= NAME_MAX {
        return format!("{name}{suffix}");
    }
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(name.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut keep = NAME_MAX.saturating_sub(suffix.len() + digest.len() + 1);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}~{digest}{suffix}", &name[..keep])
}

/// `dir/name.clauth-conflict-<ms>-<side>`, beside `path`, shortened to fit where it must be.
pub fn conflict_name(path: &Path, side: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(fit(&name, &format!(".clauth-conflict-{}-{side}", now_ms())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_names_fit_and_stay_apart() {
        let short = fit("a.txt", ".x");
        assert_eq!(short, "a.txt.x");
        let long_a = format!("{}a", "é".repeat(120));
        let long_b = format!("{}b", "é".repeat(120));
        let suffix = ".clauth-conflict-1796171104195-session";
        for n in [&long_a, &long_b] {
            let f = fit(n, suffix);
            assert!(f.len() <= NAME_MAX, "{}", f.len());
            assert!(f.ends_with(suffix));
        }
        assert_ne!(fit(&long_a, suffix), fit(&long_b, suffix));
    }
}
