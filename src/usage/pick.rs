//! How `pick` chooses among profiles by their usage: the order, the ties, and what it says when
//! none will do. Pure: the figures come in, a choice goes out.

use std::cmp::Ordering;

use super::time::{format_rfc3339, parse_rfc3339};
use super::windows::{headroom, windows_of};
use crate::protocol::{ProfileName, Usage, UsageError, UsageReport};

/// A profile `pick` may choose.
pub struct Candidate<'a> {
    pub name: &'a ProfileName,
    /// Its live sessions (fewer wins a tie).
    pub sessions: usize,
    pub report: &'a UsageReport,
}

/// Why nothing was chosen: a sentence naming each profile's state, and the earliest time one of
/// them has headroom again, when any is known.
#[derive(Debug, Clone, PartialEq)]
pub struct NoHeadroom {
    pub message: String,
    pub resets_at: Option<i64>,
}

/// Whether a profile without usage has no login to use at all (rather than usage unknown).
fn no_login(report: &UsageReport) -> bool {
    matches!(
        report.usage_error,
        Some(UsageError::NoLogin | UsageError::ApiKey | UsageError::Gateway)
    )
}

/// A window keeps the profile from being chosen: at or over its limit, or leaving less headroom
/// than asked.
fn blocking(utilization: f64, min_headroom: Option<f64>) -> bool {
    utilization >= 100.0 || min_headroom.is_some_and(|min| utilization > 100.0 - min)
}

/// When every blocking window of `usage` has reset; `None` when one names no time.
fn ready_at(usage: &Usage, min_headroom: Option<f64>) -> Option<i64> {
    let mut at = None;
    for (_, w) in windows_of(usage) {
        if blocking(w.utilization, min_headroom) {
            let reset = parse_rfc3339(w.resets_at.as_deref()?)?;
            at = Some(at.map_or(reset, |a: i64| a.max(reset)));
        }
    }
    at
}

/// The candidate to choose: among those with a login, the one with the most headroom (100
/// minus the highest utilization of its windows), skipping any at or over a limit (headroom 0)
/// or below `min_headroom`. Profiles of known usage come before those whose usage is unknown
/// (which are chosen only when no `min_headroom` was asked); ties go to fewer live sessions,
/// then to the name that sorts first.
pub fn choose(
    candidates: &[Candidate<'_>],
    min_headroom: Option<f64>,
) -> Result<usize, NoHeadroom> {
    // (index, headroom) of every candidate that will do.
    let mut good: Vec<(usize, Option<f64>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match &c.report.usage {
            Some(usage) => {
                let h = headroom(usage);
                if h > 0.0 && min_headroom.is_none_or(|min| h >= min) {
                    good.push((i, Some(h)));
                }
            }
            None if no_login(c.report) || min_headroom.is_some() => {}
            None => good.push((i, None)),
        }
    }
    let order = |a: &(usize, Option<f64>), b: &(usize, Option<f64>)| {
        let by_headroom = match (a.1, b.1) {
            (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let (ca, cb) = (&candidates[a.0], &candidates[b.0]);
        by_headroom
            .then(ca.sessions.cmp(&cb.sessions))
            .then(ca.name.cmp(cb.name))
    };
    if let Some(best) = good.iter().min_by(|a, b| order(a, b)) {
        return Ok(best.0);
    }
    Err(none_good(candidates, min_headroom))
}

fn percent(v: f64) -> String {
    format!("{}%", (v * 10.0).round() / 10.0)
}

fn none_good(candidates: &[Candidate<'_>], min_headroom: Option<f64>) -> NoHeadroom {
    let mut why = Vec::new();
    let mut earliest: Option<i64> = None;
    for c in candidates {
        let name = c.name;
        match (&c.report.usage, c.report.usage_error) {
            (Some(usage), _) => {
                let full: Vec<String> = windows_of(usage)
                    .into_iter()
                    .filter(|(_, w)| blocking(w.utilization, min_headroom))
                    .map(|(k, w)| match &w.resets_at {
                        Some(at) => format!("{k} {} until {at}", percent(w.utilization)),
                        None => format!("{k} {}", percent(w.utilization)),
                    })
                    .collect();
                why.push(format!("{name} is at {}", full.join(", ")));
                if let Some(at) = ready_at(usage, min_headroom) {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                }
            }
            (None, Some(code)) if no_login(c.report) => {
                why.push(format!("{name} has no login to use ({})", code.as_str()))
            }
            (None, code) => why.push(format!(
                "{name}'s usage is unknown ({}), so it cannot be known to have the headroom asked",
                code.map_or("unknown", UsageError::as_str)
            )),
        }
    }
    let wanted = match min_headroom {
        Some(min) => format!("at least {} headroom", percent(min)),
        None => "headroom".to_owned(),
    };
    let mut message = if candidates.is_empty() {
        format!("no profile has {wanted}: there is no profile to pick from")
    } else {
        format!("no profile has {wanted}: {}", why.join("; "))
    };
    match earliest {
        Some(at) => message.push_str(&format!(
            "; the earliest reset is at {}",
            format_rfc3339(at)
        )),
        None => message.push_str("; no reset time is known"),
    }
    NoHeadroom {
        message,
        resets_at: earliest,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::protocol::UsageWindow;

    fn name(n: &str) -> ProfileName {
        ProfileName::parse(n).unwrap()
    }

    fn used(five: f64, seven: f64, resets: &str) -> UsageReport {
        let w = |u| {
            Some(UsageWindow {
                utilization: u,
                resets_at: Some(resets.to_owned()),
            })
        };
        UsageReport::of(Usage {
            five_hour: w(five),
            seven_day: w(seven),
            other: BTreeMap::new(),
            extra_usage: None,
            fetched_at: 0,
            stale: false,
        })
    }

    fn pick(
        profiles: &[(&str, usize, UsageReport)],
        min: Option<f64>,
    ) -> Result<String, NoHeadroom> {
        let names: Vec<ProfileName> = profiles.iter().map(|p| name(p.0)).collect();
        let candidates: Vec<Candidate> = profiles
            .iter()
            .zip(&names)
            .map(|(p, n)| Candidate {
                name: n,
                sessions: p.1,
                report: &p.2,
            })
            .collect();
        choose(&candidates, min).map(|i| profiles[i].0.to_owned())
    }

    const T1: &str = "2030-01-01T01:00:00Z";
    const T2: &str = "2030-01-01T02:00:00Z";

    #[test]
    fn the_most_headroom_wins_and_ties_go_to_fewer_sessions_then_the_name() {
        let unknown = UsageReport::error(UsageError::TokenExpired);
        let nothing = UsageReport::error(UsageError::NoLogin);
        assert_eq!(
            pick(
                &[
                    ("a", 0, used(10.0, 60.0, T1)),
                    ("b", 0, used(30.0, 20.0, T1)),
                    ("c", 0, unknown.clone()),
                ],
                None
            ),
            Ok("b".into())
        );
        assert_eq!(
            pick(
                &[
                    ("a", 2, used(10.0, 10.0, T1)),
                    ("b", 1, used(10.0, 10.0, T1))
                ],
                None
            ),
            Ok("b".into())
        );
        assert_eq!(
            pick(
                &[
                    ("b", 0, used(10.0, 10.0, T1)),
                    ("a", 0, used(10.0, 10.0, T1))
                ],
                None
            ),
            Ok("a".into())
        );
        // Unknown usage only when nothing known will do, and never to meet a minimum.
        assert_eq!(
            pick(
                &[
                    ("a", 0, used(100.0, 10.0, T1)),
                    ("b", 0, unknown.clone()),
                    ("c", 0, nothing.clone())
                ],
                None
            ),
            Ok("b".into())
        );
        assert!(pick(&[("b", 0, unknown)], Some(0.0)).is_err());
        assert!(pick(&[("c", 0, nothing)], None).is_err());
    }

    #[test]
    fn none_good_enough_names_the_earliest_reset() {
        let err = pick(
            &[
                ("a", 0, used(100.0, 10.0, T2)),
                ("b", 0, used(50.0, 100.0, T1)),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(err.resets_at, parse_rfc3339(T1));
        assert!(
            err.message.contains("a is at five_hour 100% until"),
            "{}",
            err.message
        );
        // With a minimum, every window over it must reset first.
        let err = pick(&[("a", 0, used(70.0, 80.0, T1))], Some(50.0)).unwrap_err();
        assert_eq!(err.resets_at, parse_rfc3339(T1));
        assert_eq!(
            pick(&[("a", 0, used(40.0, 50.0, T1))], Some(50.0)),
            Ok("a".into())
        );
        let err = pick(&[], None).unwrap_err();
        assert_eq!(err.resets_at, None);
    }
}
