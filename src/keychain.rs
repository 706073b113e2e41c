//! The macOS Keychain, where Claude Code keeps its login there, through the `security` program
//! found on `PATH`, exactly as Claude Code calls it. Plain Rust with no macOS API, so it is
//! built and tested everywhere (the tests put a stand-in `security` on `PATH`).
//!
//! Secrets travel only on `security`'s standard input (`security -i`) and its standard output,
//! never in argv; error messages never quote what it printed.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::error::{ErrorCode, coded};

/// `security`'s exit status for an item that does not exist.
const NOT_FOUND: i32 = 44;
/// `security`'s exit status for a locked keychain.
const LOCKED: i32 = 36;
/// The longest command line `security -i` reads whole (it reads 4096 bytes, newline included).
const MAX_INTERACTIVE_LINE: usize = 4095;

/// The generic-password service Claude Code uses for the login of a config directory: the
/// unsuffixed `Claude Code-credentials` for the claude home (no `CLAUDE_CONFIG_DIR`), else
/// `-` and the first 8 hex digits of the SHA-256 of the directory string, NFC-normalised and
/// taken exactly as given (no realpath: a trailing slash changes the name).
pub fn service_for(config_dir: Option<&OsStr>) -> String {
    match config_dir {
        None => "Claude Code-credentials".to_owned(),
        Some(dir) => {
            let normal: String = dir.to_string_lossy().nfc().collect();
            let digest = Sha256::digest(normal.as_bytes());
            let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("Claude Code-credentials-{hex}")
        }
    }
}

/// The account Claude Code files its items under: `$USER`, or `claude-code-user` when that is
/// not a plain name.
pub fn account_for(user: Option<&str>) -> String {
    match user {
        Some(u)
            if !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            u.to_owned()
        }
        _ => "claude-code-user".to_owned(),
    }
}

/// The login keychain of one user.
#[derive(Debug, Clone)]
pub struct Keychain {
    pub account: String,
}

fn locked() -> anyhow::Error {
    coded(
        ErrorCode::KeychainLocked,
        "the login keychain is locked; unlock it (`security unlock-keychain`) and try again; nothing was moved",
    )
}

fn failed(what: &str, status: Option<i32>) -> anyhow::Error {
    coded(
        ErrorCode::KeychainFailed,
        format!(
            "`security {what}` failed (exit {}); the Keychain item was left as it was",
            status.map_or_else(|| "by a signal".to_owned(), |c| c.to_string())
        ),
    )
}

fn run(command: &mut Command, what: &str) -> Result<std::process::Output> {
    command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            coded(
                ErrorCode::KeychainFailed,
                "the `security` program is not on PATH, so the Keychain cannot be used; set CLAUTH_CREDENTIAL_STORE=file to keep logins in files",
            )
        } else {
            coded(
                ErrorCode::KeychainFailed,
                format!("cannot run `security {what}`: {e}"),
            )
        }
    })
}

impl Keychain {
    /// The item's password (the credentials document), `None` when there is no such item.
    pub fn read(&self, service: &str) -> Result<Option<Vec<u8>>> {
        let out = run(
            Command::new("security")
                .args([
                    "find-generic-password",
                    "-a",
                    &self.account,
                    "-w",
                    "-s",
                    service,
                ])
                .stdin(Stdio::null()),
            "find-generic-password",
        )?;
        match out.status.code() {
            Some(0) => {
                // `-w` prints the password and one newline.
                let mut bytes = out.stdout;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                Ok((!bytes.is_empty()).then_some(bytes))
            }
            Some(NOT_FOUND) => Ok(None),
            Some(LOCKED) => Err(locked()),
            other => Err(failed("find-generic-password", other)),
        }
    }

    /// Creates or updates the item; the password goes on `security -i`'s standard input.
    pub fn write(&self, service: &str, bytes: &[u8]) -> Result<()> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let line = format!(
            "add-generic-password -U -a \"{}\" -s \"{service}\" -X \"{hex}\"\n",
            self.account
        );
        if line.len() > MAX_INTERACTIVE_LINE {
            // `security -i` cuts longer lines and stores what it read; passing the secret in
            // argv instead would show it to every process. So this one is not written.
            return Err(coded(
                ErrorCode::KeychainFailed,
                format!(
                    "the credentials ({} bytes) are too large for `security -i`, which reads at most {MAX_INTERACTIVE_LINE} bytes a line; the Keychain item was left as it was",
                    bytes.len()
                ),
            ));
        }
        let mut child = Command::new("security")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    coded(
                        ErrorCode::KeychainFailed,
                        "the `security` program is not on PATH, so the Keychain cannot be used; set CLAUTH_CREDENTIAL_STORE=file to keep logins in files",
                    )
                } else {
                    coded(ErrorCode::KeychainFailed, format!("cannot run `security -i`: {e}"))
                }
            })?;
        let sent = child
            .stdin
            .take()
            .context("security -i has no standard input")?
            .write_all(line.as_bytes());
        let out = child
            .wait_with_output()
            .context("cannot wait for security -i")?;
        sent.context("cannot write to security -i")?;
        match out.status.code() {
            Some(0) => Ok(()),
            Some(LOCKED) => Err(locked()),
            other => Err(failed("add-generic-password", other)),
        }
    }

    /// Deletes the item; an item that is not there is fine.
    pub fn delete(&self, service: &str) -> Result<()> {
        let out = run(
            Command::new("security")
                .args([
                    "delete-generic-password",
                    "-a",
                    &self.account,
                    "-s",
                    service,
                ])
                .stdin(Stdio::null()),
            "delete-generic-password",
        )?;
        match out.status.code() {
            Some(0) | Some(NOT_FOUND) => Ok(()),
            Some(LOCKED) => Err(locked()),
            other => Err(failed("delete-generic-password", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_derived_as_claude_code_derives_them() {
        assert_eq!(service_for(None), "Claude Code-credentials");
        assert_eq!(
            service_for(Some(OsStr::new("/Users/me/.clauth/runtimes/work/config"))),
            "Claude Code-credentials-a0b10b5e"
        );
        assert_ne!(
            service_for(Some(OsStr::new("/Users/me/.clauth/runtimes/work/config/"))),
            "Claude Code-credentials-a0b10b5e",
            "taken exactly as given"
        );
        // NFC: a decomposed é names the same item as the composed one.
        assert_eq!(
            service_for(Some(OsStr::new("/Users/re\u{301}my/c"))),
            service_for(Some(OsStr::new("/Users/r\u{e9}my/c")))
        );
    }

    #[test]
    fn accounts_fall_back_like_claude_code() {
        assert_eq!(account_for(Some("me")), "me");
        assert_eq!(account_for(Some("j.doe-2_x")), "j.doe-2_x");
        assert_eq!(account_for(Some("Jane Doe")), "claude-code-user");
        assert_eq!(account_for(None), "claude-code-user");
    }
}
