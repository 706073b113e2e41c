//! A profile's usage cache, `profiles/NAME/usage.json` (0600, written atomically): the last
//! answer and when it came, when the last request went out and for which access token (a
//! fingerprint, never the token), and the pause a 429 asked for. Its rules keep requests rare:
//! an answer younger than a minute is served again; no token is asked for twice within five
//! seconds; nothing is asked while a 429's `Retry-After` runs, and the last answer is served
//! `stale` meanwhile.
//!
//! `usage.lock` beside it lets one process at a time ask for a profile, across processes. It is
//! held for the request (seconds at most) and never together with the store's state lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{self, AccessToken, Answer, Net};
use super::windows::Windows;
use crate::fsx;
use crate::ids::now_ms;
use crate::layout::check_private_dir;
use crate::lock;
use crate::protocol::{UsageError, UsageReport};

/// An answer younger than this is served again without asking.
pub const FRESH_MS: i64 = 60_000;
/// The least time between two requests with one token.
pub const GAP_MS: i64 = 5_000;
/// The pause after a 429 that named none.
pub const DEFAULT_PAUSE_MS: i64 = 60_000;
/// The longest pause a 429 is taken at its word for.
pub const MAX_PAUSE_MS: i64 = 24 * 3600 * 1000;
/// How long a process waits for another that is asking for the same profile: a request's
/// whole time and a margin.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// What `usage.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The fingerprint of the access token of the last request.
    #[serde(default)]
    pub token: Option<String>,
    /// Epoch ms the last request went out (whatever it met).
    #[serde(default)]
    pub asked_at: Option<i64>,
    /// The last answer, and when it came.
    #[serde(default)]
    pub windows: Option<Windows>,
    #[serde(default)]
    pub fetched_at: Option<i64>,
    /// What the last request met, when it brought no answer (`busy` while it is out).
    #[serde(default)]
    pub error: Option<UsageError>,
    /// No request before this (epoch ms): a 429's `Retry-After`.
    #[serde(default)]
    pub quiet_until: Option<i64>,
}

/// `t` is within `span` before `now` (a clock that went back makes nothing recent).
fn within(t: Option<i64>, now: i64, span: i64) -> bool {
    t.is_some_and(|t| (0..span).contains(&(now - t)))
}

impl Record {
    /// The last answer, served again as `stale`; `code` when there is none.
    pub fn stale_or(&self, code: UsageError) -> UsageReport {
        match (&self.windows, self.fetched_at) {
            (Some(w), Some(at)) => UsageReport::of(w.to_usage(at, true)),
            _ => UsageReport::error(code),
        }
    }

    /// What to answer for `token` without asking, when the rules say not to ask.
    pub fn cached(&self, token: &str, now: i64) -> Option<UsageReport> {
        if self
            .quiet_until
            .is_some_and(|t| t > now && t - now <= MAX_PAUSE_MS)
        {
            return Some(self.stale_or(UsageError::RateLimited));
        }
        if self.token.as_deref() != Some(token) {
            return None;
        }
        if let (None, Some(w), Some(at)) = (self.error, &self.windows, self.fetched_at)
            && within(Some(at), now, FRESH_MS)
        {
            return Some(UsageReport::of(w.to_usage(at, false)));
        }
        if within(self.asked_at, now, GAP_MS) {
            return Some(self.stale_or(self.error.unwrap_or(UsageError::Busy)));
        }
        None
    }

    /// Marks a request for `token` as sent at `now`, before it is: a process that dies in the
    /// middle still counts it.
    pub fn asking(&mut self, token: &str, now: i64) {
        self.token = Some(token.to_owned());
        self.asked_at = Some(now);
        self.error = Some(UsageError::Busy);
    }

    /// Keeps what the request met and says what to answer.
    pub fn answered(&mut self, answer: Answer, now: i64) -> UsageReport {
        match answer {
            Answer::Usage(windows) => {
                let report = UsageReport::of(windows.to_usage(now, false));
                self.windows = Some(windows);
                self.fetched_at = Some(now);
                self.error = None;
                self.quiet_until = None;
                report
            }
            Answer::RateLimited { retry_after_ms } => {
                let pause = retry_after_ms
                    .unwrap_or(DEFAULT_PAUSE_MS)
                    .clamp(0, MAX_PAUSE_MS);
                self.quiet_until = Some(now + pause);
                self.error = Some(UsageError::RateLimited);
                self.stale_or(UsageError::RateLimited)
            }
            Answer::Failed(UsageError::Unauthorized) => {
                // A refused token's old figures say nothing about the login it is now.
                self.windows = None;
                self.fetched_at = None;
                self.error = Some(UsageError::Unauthorized);
                UsageReport::error(UsageError::Unauthorized)
            }
            Answer::Failed(code) => {
                self.error = Some(code);
                self.stale_or(code)
            }
        }
    }
}

/// The name of the cache in a profile's directory.
pub const CACHE_NAME: &str = "usage.json";

pub fn cache_file(profile_dir: &Path) -> PathBuf {
    profile_dir.join(CACHE_NAME)
}

fn lock_file(profile_dir: &Path) -> PathBuf {
    profile_dir.join("usage.lock")
}

/// The record in `profile_dir`; an empty one when there is none or it does not parse.
pub fn load(profile_dir: &Path) -> Record {
    fsx::read_optional(&cache_file(profile_dir))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(profile_dir: &Path, record: &Record) -> anyhow::Result<()> {
    fsx::atomic_write(
        &cache_file(profile_dir),
        &serde_json::to_vec_pretty(record)?,
        fsx::PRIVATE_FILE,
    )
}

/// The usage of the login whose access token is `token`, kept in `profile_dir`: from the
/// cache when the rules allow, else asked with `ask` (the usage endpoint; tests pass another).
pub fn report_with(
    profile_dir: &Path,
    token: &AccessToken,
    ask: impl FnOnce(&AccessToken) -> Answer,
) -> UsageReport {
    if check_private_dir(profile_dir).is_err() || !profile_dir.is_dir() {
        return UsageReport::error(UsageError::Io);
    }
    let fingerprint = token.fingerprint();
    let _lock = match lock::lock_with_timeout(&lock_file(profile_dir), LOCK_WAIT) {
        Ok(Some(lock)) => lock,
        Ok(None) => return load(profile_dir).stale_or(UsageError::Busy),
        Err(_) => return UsageReport::error(UsageError::Io),
    };
    let mut record = load(profile_dir);
    if let Some(report) = record.cached(&fingerprint, now_ms()) {
        return report;
    }
    record.asking(&fingerprint, now_ms());
    // Without the record of this request the next one could follow too soon: none is made.
    if save(profile_dir, &record).is_err() {
        return UsageReport::error(UsageError::Io);
    }
    let answer = ask(token);
    let report = record.answered(answer, now_ms());
    let _ = save(profile_dir, &record);
    report
}

/// [`report_with`] the usage endpoint.
pub fn report(profile_dir: &Path, token: &AccessToken, net: &Net) -> UsageReport {
    report_with(profile_dir, token, |t| client::fetch(net, t, now_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::UsageWindow;

    fn windows(utilization: f64) -> Windows {
        Windows {
            five_hour: Some(UsageWindow {
                utilization,
                resets_at: None,
            }),
            ..Windows::default()
        }
    }

    #[test]
    fn an_answer_is_served_for_a_minute_then_asked_again() {
        let mut r = Record::default();
        assert_eq!(r.cached("t", 1000), None);
        r.asking("t", 1000);
        let first = r.answered(Answer::Usage(windows(10.0)), 1000);
        assert_eq!(r.cached("t", 1000 + FRESH_MS - 1), Some(first));
        assert_eq!(r.cached("t", 1000 + FRESH_MS), None);
        assert_eq!(
            r.cached("other token", 1001),
            None,
            "a new token is asked for"
        );
        assert_eq!(r.cached("t", 999), None, "a clock that went back");
    }

    #[test]
    fn a_failure_is_served_for_five_seconds_with_the_last_answer_stale() {
        let mut r = Record::default();
        r.asking("t", 0);
        r.answered(Answer::Usage(windows(10.0)), 0);
        r.asking("t", 70_000);
        let failed = r.answered(Answer::Failed(UsageError::Unreachable), 70_000);
        let usage = failed.usage.clone().unwrap();
        assert!(usage.stale && usage.fetched_at == 0);
        assert_eq!(r.cached("t", 70_000 + GAP_MS - 1), Some(failed));
        assert_eq!(r.cached("t", 70_000 + GAP_MS), None);
        r.asking("t", 80_000);
        assert_eq!(
            r.answered(Answer::Failed(UsageError::Unauthorized), 80_000),
            UsageReport::error(UsageError::Unauthorized)
        );
    }

    #[test]
    fn after_a_429_nothing_is_asked_until_retry_after_has_passed() {
        let mut r = Record::default();
        r.asking("t", 0);
        assert_eq!(
            r.answered(
                Answer::RateLimited {
                    retry_after_ms: None
                },
                0
            ),
            UsageReport::error(UsageError::RateLimited)
        );
        assert!(r.cached("t", DEFAULT_PAUSE_MS - 1).is_some());
        assert_eq!(r.cached("t", DEFAULT_PAUSE_MS), None);
        r.asking("t", DEFAULT_PAUSE_MS);
        r.answered(Answer::Usage(windows(50.0)), DEFAULT_PAUSE_MS);
        let t = 200_000;
        r.asking("t", t);
        let limited = r.answered(
            Answer::RateLimited {
                retry_after_ms: Some(600_000),
            },
            t,
        );
        assert!(limited.usage.as_ref().unwrap().stale);
        // Even a new token waits out the pause.
        assert_eq!(r.cached("new", t + 599_999), Some(limited));
        assert_eq!(r.cached("new", t + 600_000), None);
    }

    #[test]
    fn the_cache_counts_requests_and_keeps_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = AccessToken::new("sk-ant-oat01-cache-test").unwrap();
        let mut asked = 0;
        let mut ask = |_: &AccessToken| {
            asked += 1;
            Answer::Usage(windows(20.0))
        };
        let first = report_with(dir.path(), &token, &mut ask);
        let second = report_with(dir.path(), &token, &mut ask);
        assert_eq!(asked, 1);
        assert_eq!(first, second);
        let text = std::fs::read_to_string(cache_file(dir.path())).unwrap();
        assert!(!text.contains("cache-test"), "{text}");
    }
}
