//! Responses of protocol v1 and the sync report they share: the types that are serialised, and
//! from which the response schemas are derived.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a runtime presents the claude home's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    Real,
    Fake,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Real => "real",
            LinkMode::Fake => "fake",
        }
    }
}

/// What one sync did; every field says something a caller may want to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SyncReport {
    /// Credentials the session refreshed or logged in were saved to the profile.
    pub credentials_saved: bool,
    /// Why the session's credentials were not saved, when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_rejected: Option<String>,
    /// Top-level entries the session created or replaced, folded into the claude home (real mode).
    pub adopted: Vec<String>,
    /// Entries the claude home gained, linked into the runtime (real mode).
    pub linked: Vec<String>,
    /// Entries the claude home lost, unlinked from the runtime (real mode).
    pub unlinked: Vec<String>,
    /// Files copied by the mirror (fake mode).
    pub copied_to_home: u64,
    pub copied_to_runtime: u64,
    pub deleted_in_home: u64,
    pub deleted_in_runtime: u64,
    /// Conflict copies written, relative to the claude home.
    pub conflicts: Vec<String>,
    /// `settings.json` changes of the session saved to the claude home.
    pub settings_saved: bool,
    /// `.claude.json` changes saved to the claude home or the profile.
    pub claude_json_saved: bool,
    /// Documents that did not parse and were left alone: the runtime's by name
    /// (`.claude.json`), the home's by full path; while the home's does not parse the session's
    /// changes wait in the runtime, and reach the home once it parses again.
    pub rejected_documents: Vec<String>,
    /// Paths (relative to the claude home) that could not be looked at (a symlink loop, no
    /// permission), left alone on both sides: nothing was copied or deleted for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl SyncReport {
    /// Whether anything was saved or moved (serve sends an event then).
    pub fn is_eventful(&self) -> bool {
        self.credentials_saved
            || self.credentials_rejected.is_some()
            || !self.adopted.is_empty()
            || self.copied_to_home > 0
            || self.deleted_in_home > 0
            || !self.conflicts.is_empty()
            || self.settings_saved
            || self.claude_json_saved
    }
}

/// `acquire`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Acquired {
    pub session: String,
    pub profile: String,
    pub config_dir: PathBuf,
    pub link_mode: LinkMode,
    /// Variables to set for Claude Code: `CLAUDE_CONFIG_DIR`.
    pub env: BTreeMap<String, String>,
    /// Inherited variables a launcher should remove, since they would override the profile's
    /// account (`ANTHROPIC_BASE_URL` only when the profile does not set it).
    pub env_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<i64>,
    /// The profile is the home profile: `config_dir` is the claude home itself, nothing was
    /// built, and `env` does not set `CLAUDE_CONFIG_DIR` (`env_remove` lists it).
    pub home: bool,
}

/// `tick`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ticked {
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<i64>,
    #[serde(flatten)]
    pub report: SyncReport,
}

/// `release`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Released {
    pub session: String,
    pub runtime_removed: bool,
    pub remaining_sessions: usize,
    #[serde(flatten)]
    pub report: SyncReport,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionInfo {
    pub session: String,
    pub created_at: i64,
    pub owner_pid: Option<u32>,
    pub lease_expires_at: Option<i64>,
    /// Held by a `serve` or `run` process: it ends when that process does.
    pub held: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuntimeInfo {
    pub config_dir: PathBuf,
    pub link_mode: LinkMode,
    /// No live session uses it (left by a crash); the next acquire or `gc` reclaims it.
    pub orphaned: bool,
}

/// The summary reported by `status` and `profile show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "Report")]
pub struct CredentialsReport {
    pub present: bool,
    pub expires_at: Option<i64>,
    pub subscription_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProfileStatus {
    pub name: String,
    pub sessions: Vec<SessionInfo>,
    pub runtime: Option<RuntimeInfo>,
    pub credentials: CredentialsReport,
    /// Which account the profile's login is, as Claude Code recorded it (`oauthAccount` of
    /// `.claude.json`); `null` until a session of the profile has recorded one.
    pub account: Option<AccountInfo>,
    /// The home profile: its login is the one Claude Code keeps in the claude home, so a
    /// refresh by plain `claude` is its own.
    pub home: bool,
    /// Things about the profile's login a person should know (none when all is well).
    pub warnings: Vec<Warning>,
}

/// The account of a login, as `oauthAccount` in `.claude.json` names it: never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AccountInfo {
    /// `oauthAccount.emailAddress`.
    pub email: Option<String>,
    /// `oauthAccount.organizationName`.
    pub organization: Option<String>,
}

/// A note on a profile's login, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Warning {
    /// `same_account_as_home`: the profile and the home are logged in to the same account
    /// with different logins; one of them may have been logged out by the other's refresh.
    pub code: String,
    /// What it means and what to do, for people.
    pub message: String,
}

/// `status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Status {
    pub profiles: Vec<ProfileStatus>,
    /// Where logins are kept: `keychain` (the macOS Keychain, as Claude Code does there) or
    /// `file` (`.credentials.json`).
    pub credential_store: String,
}

/// `capabilities`: what this binary speaks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Capabilities {
    /// Every protocol version this binary answers.
    pub protocol_versions: Vec<u64>,
    pub verbs: Vec<String>,
    /// Optional behaviours; a client checks for one before relying on it.
    pub features: Vec<String>,
    /// The clauth-helper version.
    pub version: String,
    /// `keychain` or `file`: where logins are kept with this environment.
    pub credential_store: String,
}
