//! Which names of a runtime's top level are its own, never linked to or mirrored with the
//! claude home, and the names the helper gives the copies it keeps aside.

use std::borrow::Cow;
use std::ffi::OsStr;
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
        || is_lock_family(name)
        || MANAGED.iter().any(|m| {
            name.len() > m.len() && name.starts_with(m) && name.as_bytes()[m.len()] == b'.'
        })
}

/// Whether a top-level name of a config directory is one of Claude Code's lock or temp files,
/// which belong to the one process that made them. By rule, not by a list of names, since each
/// version adds some (see `docs/claude-code-facts.md`, "Lock family and temp files"):
/// - `x.lock` (proper-lockfile's lock directories, and lock files);
/// - anything named below a lock: `x.lock.owner` (2.1.332's owner record of
///   `.oauth_refresh.lock`), its temp `x.lock.owner.tmp.<hex>`, `x.lock.<anything>`;
/// - temp files renamed over their target a moment later: `x.tmp`, `x.tmp.<...>`
///   (`.owner.tmp.<hex>` included);
/// - `x.v5-lock-anchor`, and the per-refresh records of the cloud auth helpers
///   (`.aws_auth_refresh-<hex>.json`, `.gcp_auth_refresh-<hex>.holder.json`, ...).
pub fn is_lock_family(name: &str) -> bool {
    name.ends_with(".lock")
        || name.contains(".lock.")
        || name.ends_with(".v5-lock-anchor")
        || name.ends_with(".tmp")
        || name.contains(".tmp.")
        || name.starts_with(".aws_auth_refresh-")
        || name.starts_with(".gcp_auth_refresh-")
}

/// Whether a name below the top level is one of Claude Code's own locks or temp files
/// (`plugins/installed_plugins.json.lock/`, `x.json.tmp.<8hex>`): a narrower rule than at the
/// top, since deeper folders hold the user's own files, and a `yarn.lock` in a plugin is one.
/// Lock directories, owner records and temp names of the exact shape Claude Code writes
/// (`.tmp.<8 hex>`, `.tmp.<pid>.<12 hex>`) are its own.
pub fn is_transient(name: &str, is_dir: bool) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let claude_temp = name.rsplit_once(".tmp.").is_some_and(|(_, tail)| {
        hex(tail, 8)
            || tail.split_once('.').is_some_and(|(pid, h)| {
                !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && hex(h, 12)
            })
    });
    (is_dir && name.ends_with(".lock")) || name.contains(".lock.owner") || claude_temp
}

/// The first byte of a name that is not valid Unicode, as the mirror and the real-mode sync
/// carry it: NUL, which no file name holds, followed by the hex of the name's bytes.
const RAW: char = '\0';

/// A file name as text: itself when it is valid Unicode, else [`RAW`] and its bytes in hex, so
/// that every name can be listed, compared, recorded and mirrored, and none is skipped.
pub fn encode(name: &OsStr) -> Cow<'_, str> {
    match name.to_str() {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut out = String::from(RAW);
            for b in crate::platform::name_bytes(name) {
                out.push_str(&format!("{b:02x}"));
            }
            Cow::Owned(out)
        }
    }
}

/// The file name [`encode`] made `name` from.
pub fn decode(name: &str) -> Cow<'_, OsStr> {
    let Some(hex) = name.strip_prefix(RAW) else {
        return Cow::Borrowed(OsStr::new(name));
    };
    let bytes = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    Cow::Owned(crate::platform::name_from_bytes(bytes))
}

/// `root` joined with a relative path of encoded names separated by `/`.
pub fn join(root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    if !rel.is_empty() {
        for part in rel.split('/') {
            p.push(decode(part));
        }
    }
    p
}

/// A relative path of encoded names as a person reads it in a report (`\u{FFFD}` in place of
/// bytes that are not Unicode).
pub fn shown(rel: &str) -> String {
    if !rel.contains(RAW) {
        return rel.to_owned();
    }
    rel.split('/')
        .map(|part| decode(part).to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
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
/// A name that is not valid Unicode keeps its bytes.
pub fn conflict_name(path: &Path, side: &str) -> PathBuf {
    // A name nothing holds yet: two conflicts of one file in one millisecond get two copies.
    let start = now_ms();
    let mut named = conflict_name_at(path, side, start);
    for ms in start + 1..start + 1000 {
        if std::fs::symlink_metadata(&named).is_err() {
            break;
        }
        named = conflict_name_at(path, side, ms);
    }
    named
}

fn conflict_name_at(path: &Path, side: &str, ms: i64) -> PathBuf {
    let name = path.file_name().unwrap_or_default();
    let suffix = format!(".clauth-conflict-{ms}-{side}");
    match name.to_str() {
        Some(n) => path.with_file_name(fit(n, &suffix)),
        None => {
            let mut bytes = crate::platform::name_bytes(name);
            if bytes.len() + suffix.len() > NAME_MAX {
                return path.with_file_name(fit(&name.to_string_lossy(), &suffix));
            }
            bytes.extend_from_slice(suffix.as_bytes());
            path.with_file_name(crate::platform::name_from_bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_unicode_round_trip_and_unicode_ones_stay_as_they_are() {
        assert_eq!(encode(OsStr::new("café.md")), "café.md");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let raw = OsStr::from_bytes(b"caf\xe9\x00?");
            let text = encode(raw);
            assert!(text.starts_with('\0'));
            assert_eq!(decode(&text), raw);
            assert_eq!(shown(&format!("a/{text}")), "a/caf\u{FFFD}\0?");
        }
    }

    #[test]
    fn the_lock_family_is_recognised_by_rule() {
        for top in [
            ".oauth_refresh.lock",
            ".oauth_refresh.lock.owner",
            ".oauth_refresh.lock.owner.tmp.0a1b2c3d",
            ".cloud_sessions_oauth_refresh.lock",
            ".claude.json.tmp.12.0123456789ab",
            ".gcp_auth_refresh-0123456789abcdef.takeover.json",
            "x.json.v5-lock-anchor",
        ] {
            assert!(is_managed(top), "{top}");
        }
        assert!(!is_managed("CLAUDE.md") && !is_managed("projects"));
        assert!(is_transient("installed_plugins.json.lock", true));
        assert!(!is_transient("yarn.lock", false));
        assert!(is_transient("known.json.tmp.1a2b3c4d", false));
        assert!(is_transient("known.json.tmp.4242.0123456789ab", false));
        assert!(!is_transient("notes.tmp.txt", false));
    }

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
