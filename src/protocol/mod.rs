//! The helper protocol v1 on the wire: every request, response, event and error code, the
//! framing, and the one dispatch that one-shot calls and `serve` share.
//!
//! Nothing here touches the file system, a lock or a session: the [`Handler`] carries requests
//! out. Depends on serde and schemars only.

pub mod envelope;
pub mod error;
pub mod framing;
pub mod handler;
pub mod request;
pub mod response;
pub mod schema;

pub use envelope::{ErrorBody, EventBody, event, failure, success};
pub use error::{CodedError, ErrorCode};
pub use handler::{Handler, answer, answer_line, dispatch, oneshot};
pub use request::{
    AcquireRequest, CapabilitiesRequest, LinkModeRequest, MAX_LEASE_MS, Pick, ProfileName, Request,
    SessionId, SessionRequest, StatusRequest, Verb, decode,
};
pub use response::{
    AccountInfo, Acquired, Capabilities, CredentialsReport, LinkMode, Picked, ProfileStatus,
    Released, RuntimeInfo, SessionInfo, Status, SyncReport, Ticked, Usage, UsageError, UsageReport,
    UsageWindow, Warning,
};

/// The protocol version this binary speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Every protocol version this binary answers.
pub const SUPPORTED_VERSIONS: &[u64] = &[1];

/// Requests larger than this are refused before parsing.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Optional behaviours a client may check for before relying on them. `owner_pid` is offered
/// only where the platform knows a process's start time.
pub const FEATURES: &[&str] = &[
    "owner_pid",
    "lease_ms",
    "env_remove",
    "link_mode",
    "serve",
    "serve_events",
    "held_sessions",
    "sync_report",
    "orphaned_runtimes",
    "home_profile",
    "credential_store",
    "profile_env",
    "usage",
    "pick",
    "usage_events",
];

/// What this binary speaks; `owner_pid` says whether the platform supports that feature.
pub fn capabilities(owner_pid: bool, credential_store: &str) -> Capabilities {
    Capabilities {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        verbs: Verb::ALL.iter().map(|v| v.as_str().to_owned()).collect(),
        features: FEATURES
            .iter()
            .filter(|f| owner_pid || **f != "owner_pid")
            .map(|f| (*f).to_owned())
            .collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        credential_store: credential_store.to_owned(),
    }
}
