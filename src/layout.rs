//! Every path the program uses, built once from the environment and passed down.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::keychain::{self, Keychain};
use crate::platform;

/// Default time to wait for a lock (the store's or a profile's) before answering `lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The store and the claude home, resolved from the environment.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `$CLAUTH_HOME`, default `~/.clauth`.
    pub store: PathBuf,
    /// `~/.claude`.
    pub claude_home: PathBuf,
    /// `~/.claude.json`.
    pub claude_json: PathBuf,
    /// How long to wait for a lock (the store's or a profile's).
    pub lock_timeout: Duration,
    /// `$CLAUTH_LINK_MODE`, when set.
    pub link_mode_env: Option<String>,
    /// Where Claude Code keeps logins: the Keychain (macOS, or `CLAUTH_CREDENTIAL_STORE=keychain`)
    /// besides `.credentials.json`, or `None` for files only.
    pub keychain: Option<Keychain>,
}

impl Layout {
    /// Builds the layout from the process environment.
    pub fn from_env() -> Result<Layout> {
        Layout::from_vars(|key| std::env::var_os(key))
    }

    /// Builds the layout from any source of environment variables (tests pass their own).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Layout> {
        let non_empty = |key: &str| var(key).filter(|v| !v.is_empty());
        let home = non_empty("HOME")
            .or_else(|| non_empty("USERPROFILE"))
            .map(PathBuf::from)
            .ok_or_else(|| {
                coded(
                    ErrorCode::ClaudeHomeMissing,
                    "neither HOME nor USERPROFILE is set, so there is no claude home",
                )
            })?;
        let store = non_empty("CLAUTH_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".clauth"));
        let store = absolute(&store)?;
        // One spelling of the home whatever path reached it (a symlinked /home, an automount,
        // an editor passing another path), so links made under one spelling are recognised
        // under another.
        let home = std::fs::canonicalize(&home).or_else(|_| absolute(&home))?;
        let lock_timeout = match non_empty("CLAUTH_LOCK_TIMEOUT_MS") {
            None => DEFAULT_LOCK_TIMEOUT,
            Some(v) => {
                let ms: u64 = v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    coded(
                        ErrorCode::InvalidRequest,
                        "CLAUTH_LOCK_TIMEOUT_MS must be a whole number of milliseconds",
                    )
                })?;
                Duration::from_millis(ms)
            }
        };
        let link_mode_env = non_empty("CLAUTH_LINK_MODE").map(|v| v.to_string_lossy().into_owned());
        let keychain_wanted = match non_empty("CLAUTH_CREDENTIAL_STORE").as_deref() {
            None => platform::KEYCHAIN_BY_DEFAULT,
            Some(v) if v == "keychain" => true,
            Some(v) if v == "file" => false,
            Some(_) => {
                return Err(coded(
                    ErrorCode::InvalidRequest,
                    "CLAUTH_CREDENTIAL_STORE must be keychain or file",
                ));
            }
        };
        let keychain = keychain_wanted.then(|| Keychain {
            account: keychain::account_for(var("USER").as_deref().and_then(|u| u.to_str())),
        });
        Ok(Layout {
            store,
            claude_home: home.join(".claude"),
            claude_json: home.join(".claude.json"),
            lock_timeout,
            link_mode_env,
            keychain,
        })
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.store.join("profiles")
    }
    pub fn profile_dir(&self, name: &str) -> PathBuf {
        self.profiles_dir().join(name)
    }
    pub fn profile_credentials(&self, name: &str) -> PathBuf {
        self.profile_dir(name).join("credentials.json")
    }
    pub fn profile_config(&self, name: &str) -> PathBuf {
        self.profile_dir(name).join("profile.json")
    }
    /// The account-bound keys of `.claude.json` that belong to this profile.
    pub fn profile_account(&self, name: &str) -> PathBuf {
        self.profile_dir(name).join("account.json")
    }
    /// Fingerprints of the refresh tokens the profile held before (never a token).
    pub fn profile_logins(&self, name: &str) -> PathBuf {
        self.profile_dir(name).join("logins.json")
    }
    /// Which profile's login is the claude home's own (`{"profile": NAME}`).
    pub fn home_record(&self) -> PathBuf {
        self.store.join("home.json")
    }
    /// An unfinished `profile use`, finished by the next command.
    pub fn switch_journal(&self) -> PathBuf {
        self.store.join("switch.json")
    }
    /// Where Claude Code keeps the home login (on Linux and Windows).
    pub fn home_credentials(&self) -> PathBuf {
        self.claude_home.join(".credentials.json")
    }
    pub fn runtimes_dir(&self) -> PathBuf {
        self.store.join("runtimes")
    }
    /// The runtime's own directory: its config dir and its sync state.
    pub fn runtime_dir(&self, name: &str) -> PathBuf {
        self.runtimes_dir().join(name)
    }
    /// The directory handed to Claude Code as `CLAUDE_CONFIG_DIR`.
    pub fn runtime_config_dir(&self, name: &str) -> PathBuf {
        self.runtime_dir(name).join("config")
    }
    pub fn runtime_state(&self, name: &str) -> PathBuf {
        self.runtime_dir(name).join("state.json")
    }
    pub fn runtime_manifest(&self, name: &str) -> PathBuf {
        self.runtime_dir(name).join("manifest.tsv")
    }
    pub fn sessions_dir(&self) -> PathBuf {
        self.store.join("sessions")
    }
    pub fn session_record(&self, id: &str) -> PathBuf {
        self.sessions_dir().join(format!("{id}.json"))
    }
    pub fn session_lock(&self, id: &str) -> PathBuf {
        self.sessions_dir().join(format!("{id}.lock"))
    }
    /// A profile's lock (see [`crate::lock`]): inside its directory, so it exists exactly
    /// while the profile does and moves with it.
    pub fn profile_lock(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join("lock")
    }
    pub fn state_lock(&self) -> PathBuf {
        self.store.join("state.lock")
    }

    /// Which store holds logins, as `status` and `capabilities` say it.
    pub fn credential_store(&self) -> &'static str {
        if self.keychain.is_some() {
            "keychain"
        } else {
            "file"
        }
    }

    /// This layout with another claude home (`.claude.json` beside it): the home a runtime was
    /// built for, which its syncs keep to whatever `HOME` the calling process has.
    pub fn with_claude_home(&self, claude_home: &Path) -> Layout {
        let parent = claude_home.parent().unwrap_or(claude_home);
        Layout {
            claude_home: claude_home.to_path_buf(),
            claude_json: parent.join(".claude.json"),
            ..self.clone()
        }
    }

    /// Fails with `claude_home_missing` unless `~/.claude` is a directory.
    pub fn require_claude_home(&self) -> Result<()> {
        if self.claude_home.is_dir() {
            Ok(())
        } else {
            Err(coded(
                ErrorCode::ClaudeHomeMissing,
                format!(
                    "the claude home {} does not exist; run Claude Code once or create it",
                    self.claude_home.display()
                ),
            ))
        }
    }

    /// Creates the store (0700) if needed and refuses one that is a symlink or someone else's.
    pub fn ensure_store(&self) -> Result<()> {
        check_private_dir(&self.store)?;
        fsx::ensure_dir(&self.store, fsx::PRIVATE_DIR)?;
        for dir in [
            self.profiles_dir(),
            self.runtimes_dir(),
            self.sessions_dir(),
        ] {
            check_private_dir(&dir)?;
            fsx::ensure_dir(&dir, fsx::PRIVATE_DIR)?;
        }
        Ok(())
    }
}

/// Refuses a store directory that is a symlink, owned by another user, or writable by group or
/// others (absent is fine).
pub fn check_private_dir(path: &Path) -> Result<()> {
    let Some(meta) = fsx::lstat_optional(path)? else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(coded(
            ErrorCode::UnsafeStore,
            format!(
                "{} is a symlink; the store and its directories must be real directories",
                path.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(coded(
            ErrorCode::UnsafeStore,
            format!("{} is not a directory", path.display()),
        ));
    }
    if let Some(mode) = platform::mode_of(&meta)
        && mode & 0o022 != 0
    {
        // Another local user could swap what is inside: a profile's credentials, a runtime.
        return Err(coded(
            ErrorCode::UnsafeStore,
            format!(
                "{} can be written by other users (mode {:04o}); make it private with `chmod 700 {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    if !platform::owned_by_current_user(&meta) {
        return Err(coded(
            ErrorCode::UnsafeStore,
            format!("{} is owned by another user", path.display()),
        ));
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}
