//! Stable error codes, and the coded error that carries one through `anyhow` to the protocol edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The codes callers switch on. Their spelling is part of protocol v1: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    UnknownVerb,
    UnsupportedProtocol,
    InvalidProfileName,
    ProfileNotFound,
    ProfileExists,
    ProfileBusy,
    InvalidCredentials,
    ClaudeHomeMissing,
    SessionNotFound,
    LinkModeConflict,
    LockTimeout,
    UnsafeStore,
    Io,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownVerb => "unknown_verb",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::InvalidProfileName => "invalid_profile_name",
            ErrorCode::ProfileNotFound => "profile_not_found",
            ErrorCode::ProfileExists => "profile_exists",
            ErrorCode::ProfileBusy => "profile_busy",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::ClaudeHomeMissing => "claude_home_missing",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::LinkModeConflict => "link_mode_conflict",
            ErrorCode::LockTimeout => "lock_timeout",
            ErrorCode::UnsafeStore => "unsafe_store",
            ErrorCode::Io => "io",
        }
    }

    /// Whether the same request may succeed if sent again unchanged.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::LockTimeout)
    }

    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownVerb,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::InvalidProfileName,
        ErrorCode::ProfileNotFound,
        ErrorCode::ProfileExists,
        ErrorCode::ProfileBusy,
        ErrorCode::InvalidCredentials,
        ErrorCode::ClaudeHomeMissing,
        ErrorCode::SessionNotFound,
        ErrorCode::LinkModeConflict,
        ErrorCode::LockTimeout,
        ErrorCode::UnsafeStore,
        ErrorCode::Io,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code. Its message is a whole sentence and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for CodedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodedError {}

/// Builds an `anyhow::Error` carrying `code`.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError {
        code,
        message: message.into(),
    })
}

/// The code of the first coded error in the chain; anything else is `io`.
pub fn code_of(err: &anyhow::Error) -> ErrorCode {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>())
        .map(|e| e.code)
        .unwrap_or(ErrorCode::Io)
}

/// The message for the wire: the whole context chain, outermost first.
pub fn message_of(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
