//! Helpers of this suite beside the shared harness (`tests/support`): a seeded RNG, generated
//! credentials, Claude Code-style writes and tree checks.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// A tiny deterministic RNG (xorshift64*), so every run of a seeded test does the same thing.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The suite's seed: `CLAUTH_RELIABILITY_SEED` when set, else a fixed one.
pub fn seed() -> u64 {
    std::env::var("CLAUTH_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C1_A075)
}

/// Credentials shaped like fixtures/credentials/work.json with unique fake tokens.
pub fn refreshed_credentials(tag: &str, n: u64, expires_at: i64) -> Vec<u8> {
    format!(
        r#"{{
  "claudeAiOauth": {{
    "accessToken": "sk-ant-oat01-STRESS-{tag}-{n}-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "refreshToken": "sk-ant-ort01-STRESS-{tag}-{n}-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "expiresAt": {expires_at},
    "scopes": ["user:inference", "user:profile", "user:sessions:claude_code"],
    "subscriptionType": "team",
    "rateLimitTier": "default_claude_max_20x"
  }},
  "mcpOAuth": {{}}
}}
"#
    )
    .into_bytes()
}

/// `claudeAiOauth.expiresAt` of a credentials document, when it parses.
pub fn expires_at(bytes: &[u8]) -> Option<i64> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v["claudeAiOauth"]["expiresAt"].as_i64()
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` the way Claude Code does: a private temp file renamed over the path.
/// The temp file goes in `tmp_dir` (the same file system); a name unique across threads.
pub fn write_by_rename_in(tmp_dir: &Path, path: &Path, bytes: &[u8]) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = tmp_dir.join(format!(
        "{name}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
    file.write_all(bytes).unwrap();
    drop(file);
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename over {}: {e}", path.display()));
}

/// Every path under `root` (not following symlinks), sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_into(root, &mut out);
    out.sort();
    out
}

fn walk_into(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            walk_into(&p, out);
        }
    }
}

/// Paths under `root` whose name starts with the helper's temp prefix.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    walk(root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".clauth-tmp-"))
        })
        .collect()
}

pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub fn mode_bits(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

/// A child that is killed and reaped when dropped, whatever path the test takes.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads all of a child's outputs after it ended (killed or not).
pub fn drain(child: &mut Child) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut err);
    }
    (out, err)
}
