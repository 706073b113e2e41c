//! Stable error codes and the coded error that the wire carries.

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
    LoginInUse,
    HomeBusy,
    HomeMismatch,
    KeychainLocked,
    KeychainFailed,
    NoHeadroom,
    Io,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 20] = [
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
        ErrorCode::LoginInUse,
        ErrorCode::HomeBusy,
        ErrorCode::HomeMismatch,
        ErrorCode::KeychainLocked,
        ErrorCode::KeychainFailed,
        ErrorCode::NoHeadroom,
        ErrorCode::Io,
    ];

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
            ErrorCode::LoginInUse => "login_in_use",
            ErrorCode::HomeBusy => "home_busy",
            ErrorCode::HomeMismatch => "home_mismatch",
            ErrorCode::KeychainLocked => "keychain_locked",
            ErrorCode::KeychainFailed => "keychain_failed",
            ErrorCode::NoHeadroom => "no_headroom",
            ErrorCode::Io => "io",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the same request may succeed if sent again unchanged.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::LockTimeout | ErrorCode::KeychainLocked | ErrorCode::NoHeadroom
        )
    }
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
    /// `no_headroom`: the earliest reset it knows of, RFC 3339 (the error's `resets_at`).
    pub resets_at: Option<String>,
}

impl CodedError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CodedError {
        CodedError {
            code,
            message: message.into(),
            resets_at: None,
        }
    }

    pub fn with_resets_at(mut self, resets_at: Option<String>) -> CodedError {
        self.resets_at = resets_at;
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> CodedError {
        CodedError::new(ErrorCode::InvalidRequest, message)
    }
}

impl fmt::Display for CodedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodedError {}
