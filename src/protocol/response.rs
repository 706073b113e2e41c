//! Responses of protocol v1 and the sync report they share: the types that are serialised, and
//! from which the response schemas are derived.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Set by a release that removed the runtime: full paths of the copies of the session's
    /// documents kept in its profile (`profiles/<profile>/claude.json.unmerged-<ms>.json`,
    /// `settings.json.unmerged-<ms>.json`), because their changes could not be merged into the
    /// home's (a copy did not parse, the home's or the runtime's own) and the runtime's copy
    /// went with the runtime.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_documents: Vec<String>,
}

impl SyncReport {
    /// Adds what a later pass of the same sync did.
    pub fn absorb(&mut self, later: SyncReport) {
        let SyncReport {
            credentials_saved,
            credentials_rejected,
            adopted,
            linked,
            unlinked,
            copied_to_home,
            copied_to_runtime,
            deleted_in_home,
            deleted_in_runtime,
            conflicts,
            settings_saved,
            claude_json_saved,
            rejected_documents,
            skipped,
            kept_documents,
        } = later;
        self.credentials_saved |= credentials_saved;
        self.credentials_rejected = credentials_rejected.or(self.credentials_rejected.take());
        self.adopted.extend(adopted);
        self.linked.extend(linked);
        self.unlinked.extend(unlinked);
        self.copied_to_home += copied_to_home;
        self.copied_to_runtime += copied_to_runtime;
        self.deleted_in_home += deleted_in_home;
        self.deleted_in_runtime += deleted_in_runtime;
        self.conflicts.extend(conflicts);
        self.settings_saved |= settings_saved;
        self.claude_json_saved |= claude_json_saved;
        for doc in rejected_documents {
            if !self.rejected_documents.contains(&doc) {
                self.rejected_documents.push(doc);
            }
        }
        for path in skipped {
            if !self.skipped.contains(&path) {
                self.skipped.push(path);
            }
        }
        self.kept_documents.extend(kept_documents);
    }

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
            || !self.kept_documents.is_empty()
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
    /// Only when the request had `pick`: why this profile was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick: Option<Picked>,
}

/// What `pick` knew of the profile it chose.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Picked {
    /// 100 minus the highest utilization of its windows; `null` when its usage is unknown (it
    /// was chosen because no profile of known usage had headroom).
    pub headroom: Option<f64>,
    #[serde(flatten)]
    pub report: UsageReport,
}

/// One usage window of an account: how much of it is used and when it starts afresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageWindow {
    /// Percent of the window used, 0 to 100.
    pub utilization: f64,
    /// When the window starts afresh, RFC 3339 in UTC; `null` when the server named no time.
    pub resets_at: Option<String>,
}

/// An account's usage and limits, as the usage endpoint last answered for the profile's login.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Usage {
    /// The 5-hour window; `null` when the server reported none.
    pub five_hour: Option<UsageWindow>,
    /// The 7-day window; `null` when the server reported none.
    pub seven_day: Option<UsageWindow>,
    /// Further windows the server reported, under its names (`seven_day_opus`,
    /// `seven_day_sonnet`, ...).
    #[serde(flatten)]
    pub other: BTreeMap<String, UsageWindow>,
    /// Paid usage beyond the plan (`is_enabled`, `monthly_limit`, `used_credits`,
    /// `utilization`, ...) as the server reported it; `null` when it reported none.
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub extra_usage: Option<Value>,
    /// Epoch ms of the answer these figures come from.
    pub fetched_at: i64,
    /// The figures are an older answer served again: the server asked for a pause (429) or
    /// could not be reached.
    pub stale: bool,
}

/// Why a profile has no usage figures. Stable codes, like error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageError {
    /// The profile has no usable login (no credentials, or no access token in them).
    NoLogin,
    /// The profile's env gives Claude Code an API key or token, which overrides the login.
    ApiKey,
    /// The profile's env sends Claude Code elsewhere (`ANTHROPIC_BASE_URL`, Bedrock, Vertex).
    Gateway,
    /// The login lacks the `user:profile` scope the usage endpoint needs (a token made for
    /// inference only).
    NoProfileScope,
    /// The access token has expired; the next session's Claude Code refreshes it.
    TokenExpired,
    /// The server refused the access token (401 or 403).
    Unauthorized,
    /// The server asked for a pause (429) and no earlier answer is kept.
    RateLimited,
    /// The server could not be reached (network, proxy, TLS, timeout, 5xx).
    Unreachable,
    /// The server answered something that is not usage figures.
    BadResponse,
    /// Another clauth-helper was asking for this profile's usage and did not finish in time.
    Busy,
    /// The profile's usage cache could not be opened.
    Io,
}

impl UsageError {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageError::NoLogin => "no_login",
            UsageError::ApiKey => "api_key",
            UsageError::Gateway => "gateway",
            UsageError::NoProfileScope => "no_profile_scope",
            UsageError::TokenExpired => "token_expired",
            UsageError::Unauthorized => "unauthorized",
            UsageError::RateLimited => "rate_limited",
            UsageError::Unreachable => "unreachable",
            UsageError::BadResponse => "bad_response",
            UsageError::Busy => "busy",
            UsageError::Io => "io",
        }
    }
}

// A doc comment here would become the description of every type it is flattened into.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct UsageReport {
    /// The profile's usage and limits; `null` when there are none to show (`usage_error`).
    pub usage: Option<Usage>,
    /// Why `usage` is `null`; `null` when it is not.
    pub usage_error: Option<UsageError>,
}

impl UsageReport {
    pub fn of(usage: Usage) -> UsageReport {
        UsageReport {
            usage: Some(usage),
            usage_error: None,
        }
    }

    pub fn error(code: UsageError) -> UsageReport {
        UsageReport {
            usage: None,
            usage_error: Some(code),
        }
    }
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
    /// Only when the request had `"usage": true`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageReport>,
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
