//! Profiles in the store: their configuration (env overrides), credentials and listing. The
//! verbs that change them under the locks are in `app`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::credentials;
use crate::error::{ErrorCode, coded};
use crate::fsx;
use crate::layout::{Layout, check_private_dir};
use crate::protocol::ProfileName;

/// A profile's stored configuration, `profiles/<name>/profile.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileConfig {
    /// Merged into the `env` block of the runtime's `settings.json`; the profile wins.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Fails with `profile_not_found` unless the (valid) profile exists.
pub fn require(layout: &Layout, name: &ProfileName) -> Result<()> {
    require_for(layout, name, Purpose::Use)
}

/// What a command wanted a missing profile for: it decides what the error suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Run, show, change: creating it is a way on.
    Use,
    /// Remove: nothing to do, unless it was meant to be another.
    Remove,
}

/// [`require`], with the error's suggestion fitted to `purpose`.
pub fn require_for(layout: &Layout, name: &ProfileName, purpose: Purpose) -> Result<()> {
    let dir = layout.profile_dir(name);
    if !dir.is_dir() {
        return Err(coded(
            ErrorCode::ProfileNotFound,
            missing(layout, name, purpose),
        ));
    }
    check_private_dir(&dir)
}

/// Why `name` is not a profile and what to do: the profile it was probably meant to be, the
/// profiles there are, and a way on.
fn missing(layout: &Layout, name: &ProfileName, purpose: Purpose) -> String {
    let names = list(layout).unwrap_or_default();
    let shown: Vec<&str> = names.iter().take(12).map(|n| n.as_str()).collect();
    let more = if names.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    let profiles = match shown.is_empty() {
        true => "there are no profiles yet".to_owned(),
        false => format!("the profiles are: {}{more}", shown.join(", ")),
    };
    let removed = removed_of(layout, name)
        .map(|r| !r.is_empty())
        .unwrap_or(false);
    if let Some(close) = crate::suggest::closest(name, names.iter().map(|n| n.as_str())) {
        return format!("no profile named {name}; did you mean {close}? ({profiles})");
    }
    match (purpose, removed) {
        (_, true) => format!(
            "no profile named {name}: it was removed, and `clauth-helper profile restore {name}` puts it back ({profiles})"
        ),
        (Purpose::Remove, false) => {
            format!("no profile named {name}, so nothing was removed ({profiles})")
        }
        (Purpose::Use, false) if names.is_empty() => format!(
            "no profile named {name}; {profiles}: create it with `clauth-helper profile add {name} --from-claude` (the login Claude Code has in ~/.claude) or `clauth-helper profile add {name}` (log in inside its first session)"
        ),
        (Purpose::Use, false) => format!(
            "no profile named {name} ({profiles}); create it with `clauth-helper profile add {name}`"
        ),
    }
}

/// Where removed profiles are kept aside: `<store>/removed/<name>-<ms>/`.
pub fn removed_dir(layout: &Layout) -> std::path::PathBuf {
    layout.store.join("removed")
}

/// Every removed profile kept aside, as (name, when it was removed in epoch ms, directory),
/// newest first.
pub fn removed_all(layout: &Layout) -> Result<Vec<(String, i64, std::path::PathBuf)>> {
    let dir = removed_dir(layout);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some((name, ms)) = file.rsplit_once('-') else {
            continue;
        };
        let (Ok(ms), Ok(_)) = (ms.parse::<i64>(), ProfileName::parse(name)) else {
            continue;
        };
        if entry.path().is_dir() {
            out.push((name.to_owned(), ms, entry.path()));
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// The removed profiles once named `name`, newest first.
pub fn removed_of(layout: &Layout, name: &str) -> Result<Vec<(i64, std::path::PathBuf)>> {
    Ok(removed_all(layout)?
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, ms, path)| (ms, path))
        .collect())
}

pub fn exists(layout: &Layout, name: &str) -> bool {
    layout.profile_dir(name).is_dir()
}

pub fn load_config(layout: &Layout, name: &str) -> Result<ProfileConfig> {
    match fsx::read_optional(&layout.profile_config(name))? {
        None => Ok(ProfileConfig::default()),
        // serde's message may quote a value of the file, which may be a secret: not repeated.
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "the configuration of profile {name} ({}) is damaged: it is not a JSON object with an \"env\" object of strings",
                layout.profile_config(name).display()
            )
        }),
    }
}

/// Writes a profile's configuration (0600, atomic).
pub fn save_config(layout: &Layout, name: &str, config: &ProfileConfig) -> Result<()> {
    fsx::atomic_write(
        &layout.profile_config(name),
        &serde_json::to_vec_pretty(config)?,
        fsx::PRIVATE_FILE,
    )
}

/// The canonical credentials bytes of a profile, when it has any.
pub fn read_credentials(layout: &Layout, name: &str) -> Result<Option<Vec<u8>>> {
    fsx::read_optional(&layout.profile_credentials(name))
}

/// Saves credentials bytes, validated, as the profile's canonical file (0600, atomic).
pub fn write_credentials(
    layout: &Layout,
    name: &str,
    bytes: &[u8],
) -> Result<credentials::Summary> {
    let summary = credentials::validate(bytes).map_err(|why| {
        coded(
            ErrorCode::InvalidCredentials,
            format!("the credentials are not usable: {why}"),
        )
    })?;
    fsx::atomic_write(&layout.profile_credentials(name), bytes, fsx::PRIVATE_FILE)?;
    Ok(summary)
}

/// Where `profile add` takes credentials from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    None,
    /// `~/.claude/.credentials.json`.
    FromClaude,
    /// The bytes of a file (or standard input) the user named.
    Bytes(Vec<u8>),
}

/// Refuses env keys that cannot be environment variable names.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<()> {
    for key in env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(coded(
                ErrorCode::InvalidRequest,
                format!("{key:?} is not a valid environment variable name"),
            ));
        }
    }
    Ok(())
}

/// Validates credentials bytes, with a message that never quotes them.
pub fn check_credentials(bytes: &[u8]) -> Result<credentials::Summary> {
    credentials::validate(bytes).map_err(|why| {
        coded(
            ErrorCode::InvalidCredentials,
            format!("the credentials are not usable: {why}"),
        )
    })
}

/// Creates a profile (or, with `replace`, updates one) under the state lock held by the caller,
/// with `bytes` as its credentials when given.
pub fn add(
    layout: &Layout,
    name: &ProfileName,
    bytes: Option<Vec<u8>>,
    env: BTreeMap<String, String>,
    replace: bool,
) -> Result<()> {
    check_env(&env)?;
    // Validate before touching the store, so a bad file leaves everything as it was.
    if let Some(bytes) = &bytes {
        check_credentials(bytes)?;
    }
    let dir = layout.profile_dir(name);
    if exists(layout, name) && !replace {
        return Err(coded(
            ErrorCode::ProfileExists,
            format!("profile {name} already exists; pass --replace to update it"),
        ));
    }
    check_private_dir(&dir)?;
    fsx::ensure_dir(&dir, fsx::PRIVATE_DIR)?;
    // Made with the profile, so the first use of its lock changes no file.
    crate::lock::create_profile_lock(layout, name)?;
    // Replacing credentials alone keeps the profile's env; --env replaces it.
    let env = if replace && env.is_empty() && exists(layout, name) {
        load_config(layout, name)?.env
    } else {
        env
    };
    save_config(layout, name, &ProfileConfig { env })?;
    if let Some(bytes) = bytes {
        write_credentials(layout, name, &bytes)?;
    }
    Ok(())
}

/// Every profile name in the store, sorted.
pub fn list(layout: &Layout) -> Result<Vec<ProfileName>> {
    let dir = layout.profiles_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| ProfileName::parse(n).ok())
            && entry.path().is_dir()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Inherited variables that would silently override a profile's account in Claude Code.
pub const OVERRIDING_ENV: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    // A login handed over by file descriptor (Claude Code reads it before the stored login).
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
    // A refresh token `claude auth login` would install in place of the profile's login.
    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
    // Moves `.credentials.json` and the refresh locks out of the config directory (Claude Code
    // 2.1.220 and later) and, on macOS, selects another Keychain item: the profile's login would
    // not be the one Claude Code reads.
    "CLAUDE_SECURESTORAGE_CONFIG_DIR",
];

/// What a launcher removes from the environment it inherited before starting Claude Code under
/// this profile: the overriding variables and `ANTHROPIC_BASE_URL`, except those the profile
/// sets itself (then the profile's value, in `env`, is the one to use).
pub fn env_to_remove(config: &ProfileConfig) -> Vec<String> {
    OVERRIDING_ENV
        .iter()
        .chain(std::iter::once(&"ANTHROPIC_BASE_URL"))
        .filter(|k| !config.env.contains_key(**k))
        .map(|k| (*k).to_owned())
        .collect()
}

/// Words that mark a name or a value as carrying a credential.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "AUTH",
    "BEARER",
    "COOKIE",
    "SESSION",
    "CREDENTIAL",
    "SK-",
];

/// Whether an environment variable's value should be hidden when shown: by its name, and by
/// its content, since a harmless-looking name can carry a secret
/// (`ANTHROPIC_CUSTOM_HEADERS=x-api-key: ...`, `OTEL_EXPORTER_OTLP_HEADERS=Authorization=...`):
/// a secret word anywhere, credentials in a URL (`https://user:pass@host`), or a long run of
/// token-like characters.
pub fn is_secret(key: &str, value: &str) -> bool {
    let name = key.to_ascii_uppercase();
    let content = value.to_ascii_uppercase();
    let words = |s: &str| SECRET_WORDS.iter().any(|w| s.contains(w));
    let userinfo = value.split_once("://").is_some_and(|(_, rest)| {
        rest.split(['/', '?', '#'])
            .next()
            .is_some_and(|a| a.contains('@'))
    });
    let mut run = 0usize;
    let mut longest = 0usize;
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '=') {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    words(&name) || words(&content) || userinfo || longest >= 32
}

#[cfg(test)]
mod tests {
    use super::is_secret;

    #[test]
    fn secrets_are_found_by_name_and_by_content() {
        assert!(is_secret("ANTHROPIC_AUTH_TOKEN", "x"));
        assert!(is_secret("ANTHROPIC_CUSTOM_HEADERS", "x-api-key: abc"));
        assert!(is_secret(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer abc"
        ));
        assert!(is_secret(
            "ANTHROPIC_BASE_URL",
            "https://me:pw@llm.example.com/v1"
        ));
        assert!(is_secret("SOMETHING", "q8Zr2LmN0pXvT5wYcB7dK1sH4gJ6fA9e"));
        assert!(!is_secret(
            "ANTHROPIC_BASE_URL",
            "https://llm.example.com/v1?x=1"
        ));
        assert!(!is_secret("ANTHROPIC_MODEL", "claude-sonnet-4-5"));
        assert!(!is_secret("SHARED_FLAG", "1"));
    }
}
