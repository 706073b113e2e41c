//! The one HTTP request clauth-helper makes: `GET https://api.anthropic.com/api/oauth/usage`
//! with a profile's access token. The URL is fixed (no redirect is followed, so the token goes
//! to that host only); `HTTPS_PROXY` (else `https_proxy`) is the way through a proxy, unless
//! `NO_PROXY` names the host, and `SSL_CERT_FILE` adds certificates to the roots trusted. The
//! token is only ever put in the `Authorization` header, never in an error or a log.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::time::parse_retry_after;
use super::windows::Windows;
use crate::protocol::UsageError;

/// The usage endpoint.
pub const USAGE_URL: &str = "https://api.anthropic.com/api/oauth/usage";
/// The only host a token is sent to.
pub const USAGE_HOST: &str = "api.anthropic.com";
/// The user agent of every request: it names the program, not Claude Code.
pub const USER_AGENT: &str = concat!("clauth-helper/", env!("CARGO_PKG_VERSION"));

/// Connecting (through a proxy too) may take this long; the whole request at most `TOTAL`.
const CONNECT: Duration = Duration::from_secs(5);
const TOTAL: Duration = Duration::from_secs(10);
/// Larger answers are not usage figures.
const MAX_BODY: u64 = 256 * 1024;
/// Larger certificate files are not read.
const MAX_CERT_FILE: u64 = 16 * 1024 * 1024;

/// How the request leaves the machine, from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Net {
    /// The proxy URL, when one is to be used for the usage host.
    pub proxy: Option<String>,
    /// Extra PEM certificates to trust beside the usual roots.
    pub cert_file: Option<PathBuf>,
}

impl Net {
    /// From the process environment.
    pub fn from_env() -> Net {
        Net::from_vars(|k| std::env::var_os(k))
    }

    /// From any source of variables: `HTTPS_PROXY` or `https_proxy`, `NO_PROXY` or
    /// `no_proxy`, `SSL_CERT_FILE`.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Net {
        let text = |k: &str| {
            var(k)
                .and_then(|v| v.into_string().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let exempt = text("NO_PROXY")
            .or_else(|| text("no_proxy"))
            .is_some_and(|list| no_proxy_names(&list, USAGE_HOST));
        Net {
            proxy: text("HTTPS_PROXY")
                .or_else(|| text("https_proxy"))
                .filter(|_| !exempt),
            cert_file: var("SSL_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// Whether a `NO_PROXY` list names `host`: `*`, the host itself, or a domain it is in
/// (`anthropic.com`, `.anthropic.com`, `*.anthropic.com`).
fn no_proxy_names(list: &str, host: &str) -> bool {
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches("*.").trim_start_matches('.');
        let entry = entry.split(':').next().unwrap_or("");
        entry == "*"
            || entry.eq_ignore_ascii_case(host)
            || (!entry.is_empty()
                && host.len() > entry.len()
                && host[host.len() - entry.len()..].eq_ignore_ascii_case(entry)
                && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
    })
}

/// An access token. It shows as nothing in `Debug`, and leaves this module only in the
/// `Authorization` header.
pub struct AccessToken(String);

impl AccessToken {
    /// A token that can travel in a header: visible ASCII only.
    pub fn new(token: &str) -> Option<AccessToken> {
        (!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| AccessToken(token.to_owned()))
    }

    /// Its fingerprint: what the cache records to tell one token's answer from another's.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Usage(Windows),
    /// 429; `retry_after_ms` from its `Retry-After`, when it had a readable one.
    RateLimited {
        retry_after_ms: Option<i64>,
    },
    Failed(UsageError),
}

/// Asks the usage endpoint once, with `now` for reading an HTTP-date `Retry-After`.
pub fn fetch(net: &Net, token: &AccessToken, now: i64) -> Answer {
    let Some(agent) = agent(net) else {
        return Answer::Failed(UsageError::Unreachable);
    };
    let sent = agent
        .get(USAGE_URL)
        .header("Authorization", format!("Bearer {}", token.0))
        .header("anthropic-beta", "oauth-2025-04-20")
        .header("Accept", "application/json")
        .call();
    // The error's text is dropped on purpose: only its kind is reported.
    let Ok(mut response) = sent else {
        return Answer::Failed(UsageError::Unreachable);
    };
    match response.status().as_u16() {
        200 => {
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec();
            match body.ok().and_then(|b| Windows::parse(&b)) {
                Some(windows) => Answer::Usage(windows),
                None => Answer::Failed(UsageError::BadResponse),
            }
        }
        429 => Answer::RateLimited {
            retry_after_ms: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now)),
        },
        401 | 403 => Answer::Failed(UsageError::Unauthorized),
        500..=599 => Answer::Failed(UsageError::Unreachable),
        _ => Answer::Failed(UsageError::BadResponse),
    }
}

fn agent(net: &Net) -> Option<ureq::Agent> {
    let proxy = match &net.proxy {
        None => None,
        Some(url) => Some(ureq::Proxy::new(url).ok()?),
    };
    let roots = match &net.cert_file {
        None => RootCerts::WebPki,
        Some(path) => {
            let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()))
                .collect();
            roots.extend(read_certificates(path));
            RootCerts::Specific(Arc::new(roots))
        }
    };
    let config = ureq::Agent::config_builder()
        .proxy(proxy)
        .https_only(true)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT))
        .timeout_global(Some(TOTAL))
        .user_agent(USER_AGENT)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    Some(ureq::Agent::new_with_config(config))
}

/// The certificates of a PEM file; none when it cannot be read (the usual roots still are).
fn read_certificates(path: &std::path::Path) -> Vec<Certificate<'static>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CERT_FILE).read_to_end(&mut bytes))
        .is_ok();
    if !read {
        return Vec::new();
    }
    ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(vars: &[(&str, &str)]) -> Net {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Net::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_proxy_is_https_proxy_unless_no_proxy_names_the_host() {
        assert_eq!(net(&[]).proxy, None);
        assert_eq!(
            net(&[("https_proxy", "http://127.0.0.1:1")])
                .proxy
                .as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(
            net(&[("HTTPS_PROXY", "http://a:1"), ("https_proxy", "http://b:1")])
                .proxy
                .as_deref(),
            Some("http://a:1")
        );
        assert_eq!(net(&[("HTTP_PROXY", "http://a:1")]).proxy, None);
        for exempt in [
            "*",
            "api.anthropic.com",
            ".anthropic.com",
            "x, anthropic.com",
        ] {
            assert_eq!(
                net(&[("HTTPS_PROXY", "http://a:1"), ("NO_PROXY", exempt)]).proxy,
                None,
                "{exempt}"
            );
        }
        for not in ["thropic.com", "example.com", ""] {
            assert!(
                net(&[("HTTPS_PROXY", "http://a:1"), ("no_proxy", not)])
                    .proxy
                    .is_some(),
                "{not}"
            );
        }
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = AccessToken::new("sk-ant-oat01-secret").unwrap();
        assert!(!format!("{token:?}").contains("secret"));
        assert!(AccessToken::new("a\r\nX-Evil: 1").is_none());
        assert!(!token.fingerprint().contains("secret"));
    }
}
