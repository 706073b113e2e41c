//! Claude Code credentials: validation, a redacted summary, and the fingerprint that names a
//! login.
//!
//! Bytes are kept as they are (unknown fields survive); this module only reads them. No function
//! here puts any part of the document into an error message.

use serde::Serialize;
use serde_json::Value;

use crate::protocol::CredentialsReport;

/// What may be said about a credentials document without revealing a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `claudeAiOauth.expiresAt`, epoch milliseconds.
    pub expires_at: Option<i64>,
    /// `claudeAiOauth.subscriptionType`.
    pub subscription_type: Option<String>,
    /// Whether `scopes` includes `user:inference` (Claude Code's test for a usable login).
    pub inference: bool,
}

/// Why a document is not usable credentials. The reason never quotes the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    NotJson,
    NotAnObject,
    NoOauth,
    NoAccessToken,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NotJson => "it is not valid JSON",
            Invalid::NotAnObject => "it is not a JSON object",
            Invalid::NoOauth => "it has no claudeAiOauth object",
            Invalid::NoAccessToken => "claudeAiOauth.accessToken is missing or empty",
        })
    }
}

/// Checks that `bytes` are credentials Claude Code can use and summarises them.
pub fn validate(bytes: &[u8]) -> Result<Summary, Invalid> {
    let doc: Value = crate::nodejson::from_slice(bytes).map_err(|_| Invalid::NotJson)?;
    let obj = doc.as_object().ok_or(Invalid::NotAnObject)?;
    let oauth = obj
        .get("claudeAiOauth")
        .and_then(Value::as_object)
        .ok_or(Invalid::NoOauth)?;
    match oauth.get("accessToken").and_then(Value::as_str) {
        Some(token) if !token.is_empty() => {}
        _ => return Err(Invalid::NoAccessToken),
    }
    let expires_at = oauth
        .get("expiresAt")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let subscription_type = oauth
        .get("subscriptionType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let inference = oauth
        .get("scopes")
        .and_then(Value::as_array)
        .is_some_and(|scopes| scopes.iter().any(|s| s.as_str() == Some("user:inference")));
    Ok(Summary {
        expires_at,
        subscription_type,
        inference,
    })
}

/// A login's fingerprint: the first 128 bits of the SHA-256 of its refresh token, in hex. It
/// names a login without revealing it; `None` when the document has no refresh token.
pub fn fingerprint(bytes: &[u8]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let doc: Value = crate::nodejson::from_slice(bytes).ok()?;
    let token = doc.get("claudeAiOauth")?.get("refreshToken")?.as_str()?;
    if token.is_empty() {
        return None;
    }
    let digest = Sha256::digest(token.as_bytes());
    Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// The summary `status` and `profile show` report: never a token.
pub fn report(bytes: Option<&[u8]>) -> CredentialsReport {
    match bytes.map(validate) {
        Some(Ok(Summary {
            expires_at,
            subscription_type,
            inference: _,
        })) => CredentialsReport {
            present: true,
            expires_at,
            subscription_type,
        },
        _ => CredentialsReport {
            present: false,
            expires_at: None,
            subscription_type: None,
        },
    }
}
