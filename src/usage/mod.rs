//! Usage and limits per profile: what the usage endpoint says of each profile's account (its
//! 5-hour, 7-day and other windows), cached in the store, and the choice of the profile with
//! the most headroom for `pick`.
//!
//! The only network access of the program is here (`client`); a token leaves it only in the
//! `Authorization` header of a request to `api.anthropic.com`.

pub mod cache;
pub mod client;
pub mod pick;
pub mod time;
pub mod windows;

use std::collections::BTreeMap;

use serde_json::Value;

pub use client::Net;
pub use windows::{headroom, windows_of};

use crate::ids::now_ms;
use crate::layout::Layout;
use crate::protocol::{ProfileName, UsageError, UsageReport};
use client::AccessToken;

/// What one profile's usage is worked out from, read under the state lock. It holds a login:
/// no `Debug`.
pub struct Login {
    pub name: ProfileName,
    /// The login's bytes, where it lives (the home's for the home profile).
    pub credentials: Option<Vec<u8>>,
    /// The profile's env overrides.
    pub env: BTreeMap<String, String>,
    /// Its live sessions.
    pub sessions: usize,
}

/// Variables whose value replaces the login with a key or another token.
const KEY_ENV: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
];

/// Variables that send Claude Code to another provider when set to a true value.
const PROVIDER_ENV: &[&str] = &[
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
];

/// The access token to ask with, or why the profile has no usage to ask for: its env uses a
/// key or another provider, it has no login, its login lacks the `user:profile` scope, or the
/// token has expired (it is never refreshed here: the refresh token is the session's to spend).
pub fn token_of(login: &Login, now: i64) -> Result<AccessToken, UsageError> {
    let set = |k: &&str| login.env.get(*k).is_some_and(|v| !v.is_empty());
    if KEY_ENV.iter().any(set) {
        return Err(UsageError::ApiKey);
    }
    let truthy = |k: &&str| {
        login
            .env
            .get(*k)
            .is_some_and(|v| !matches!(v.trim(), "" | "0" | "false" | "no"))
    };
    if set(&"ANTHROPIC_BASE_URL") || PROVIDER_ENV.iter().any(truthy) {
        return Err(UsageError::Gateway);
    }
    let doc: Value = login
        .credentials
        .as_deref()
        .and_then(|b| crate::nodejson::from_slice(b).ok())
        .ok_or(UsageError::NoLogin)?;
    let oauth = doc.get("claudeAiOauth").ok_or(UsageError::NoLogin)?;
    let token = oauth
        .get("accessToken")
        .and_then(Value::as_str)
        .and_then(AccessToken::new)
        .ok_or(UsageError::NoLogin)?;
    if let Some(scopes) = oauth.get("scopes").and_then(Value::as_array)
        && !scopes.iter().any(|s| s.as_str() == Some("user:profile"))
    {
        return Err(UsageError::NoProfileScope);
    }
    let expires_at = oauth
        .get("expiresAt")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    if expires_at.is_some_and(|at| at <= now) {
        return Err(UsageError::TokenExpired);
    }
    Ok(token)
}

/// The usage of one profile: cached, or asked for.
pub fn report(layout: &Layout, net: &Net, login: &Login) -> UsageReport {
    match token_of(login, now_ms()) {
        Err(code) => UsageReport::error(code),
        Ok(token) => cache::report(&layout.profile_dir(&login.name), &token, net),
    }
}

/// The usage of several profiles, asked for at once (each request waits for its own answer).
pub fn reports(layout: &Layout, net: &Net, logins: &[Login]) -> Vec<UsageReport> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = logins
            .iter()
            .map(|login| scope.spawn(move || report(layout, net, login)))
            .collect();
        asks.into_iter()
            .map(|ask| {
                ask.join()
                    .unwrap_or_else(|_| UsageReport::error(UsageError::Io))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(credentials: &str, env: &[(&str, &str)]) -> Login {
        Login {
            name: ProfileName::parse("p").unwrap(),
            credentials: Some(credentials.as_bytes().to_vec()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sessions: 0,
        }
    }

    const GOOD: &str = r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","refreshToken":"r","expiresAt":2000,"scopes":["user:inference","user:profile"]}}"#;

    #[test]
    fn a_profile_has_usage_only_with_a_live_oauth_login_of_its_own() {
        let code = |l: &Login| token_of(l, 1000).err();
        assert_eq!(code(&login(GOOD, &[])), None);
        assert_eq!(
            code(&login(GOOD, &[("ANTHROPIC_API_KEY", "k")])),
            Some(UsageError::ApiKey)
        );
        assert_eq!(
            code(&login(
                GOOD,
                &[("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")]
            )),
            Some(UsageError::Gateway)
        );
        assert_eq!(
            code(&login(GOOD, &[("CLAUDE_CODE_USE_BEDROCK", "1")])),
            Some(UsageError::Gateway)
        );
        assert_eq!(
            code(&login(GOOD, &[("CLAUDE_CODE_USE_BEDROCK", "0")])),
            None
        );
        assert_eq!(code(&login("{}", &[])), Some(UsageError::NoLogin));
        assert_eq!(
            token_of(&login(GOOD, &[]), 2000).err(),
            Some(UsageError::TokenExpired)
        );
        let inference_only = GOOD.replace(",\"user:profile\"", "");
        assert_eq!(
            code(&login(&inference_only, &[])),
            Some(UsageError::NoProfileScope)
        );
        let mut none = login(GOOD, &[]);
        none.credentials = None;
        assert_eq!(code(&none), Some(UsageError::NoLogin));
    }
}
