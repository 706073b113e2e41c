//! An answer of the usage endpoint, read: its windows (`five_hour`, `seven_day` and any other
//! of the same shape), `extra_usage`, and the headroom they leave.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::{format_rfc3339, parse_rfc3339};
use crate::protocol::{Usage, UsageWindow};

/// The figures of one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub five_hour: Option<UsageWindow>,
    pub seven_day: Option<UsageWindow>,
    #[serde(default)]
    pub other: BTreeMap<String, UsageWindow>,
    #[serde(default)]
    pub extra_usage: Option<Value>,
}

/// Keys of an answer that are not windows, whatever their shape.
const NOT_WINDOWS: &[&str] = &["extra_usage", "limits"];

/// A name the server gave a window, shown as it is: lower-case letters, digits and `_`.
fn plain_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A window: an object with a numeric `utilization`, its `resets_at` normalised to UTC.
fn window(value: &Value) -> Option<UsageWindow> {
    let utilization = value.get("utilization")?.as_f64()?;
    if !utilization.is_finite() {
        return None;
    }
    Some(UsageWindow {
        utilization,
        resets_at: value
            .get("resets_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .map(format_rfc3339),
    })
}

impl Windows {
    /// Reads an answer's body; `None` when it is not usage figures (not a JSON object, or none
    /// of `five_hour`, `seven_day`, `extra_usage` in it: Claude Code takes that for an error
    /// too).
    pub fn parse(body: &[u8]) -> Option<Windows> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        let object = doc.as_object()?;
        if !["five_hour", "seven_day", "extra_usage"]
            .iter()
            .any(|k| object.contains_key(*k))
        {
            return None;
        }
        let mut windows = Windows {
            five_hour: object.get("five_hour").and_then(window),
            seven_day: object.get("seven_day").and_then(window),
            extra_usage: object.get("extra_usage").filter(|v| v.is_object()).cloned(),
            ..Windows::default()
        };
        for (key, value) in object {
            if key == "five_hour" || key == "seven_day" || NOT_WINDOWS.contains(&key.as_str()) {
                continue;
            }
            if plain_name(key)
                && let Some(w) = window(value)
            {
                windows.other.insert(key.clone(), w);
            }
        }
        Some(windows)
    }

    /// The wire form, for an answer of `fetched_at`.
    pub fn to_usage(&self, fetched_at: i64, stale: bool) -> Usage {
        Usage {
            five_hour: self.five_hour.clone(),
            seven_day: self.seven_day.clone(),
            other: self.other.clone(),
            extra_usage: self.extra_usage.clone(),
            fetched_at,
            stale,
        }
    }
}

/// The windows of a wire `Usage`, by name: `five_hour` and `seven_day` first.
pub fn windows_of(usage: &Usage) -> Vec<(&str, &UsageWindow)> {
    let mut all = Vec::new();
    if let Some(w) = &usage.five_hour {
        all.push(("five_hour", w));
    }
    if let Some(w) = &usage.seven_day {
        all.push(("seven_day", w));
    }
    all.extend(usage.other.iter().map(|(k, w)| (k.as_str(), w)));
    all
}

/// 100 minus the highest utilization of the windows (100 when there is none), never below 0.
pub fn headroom(usage: &Usage) -> f64 {
    let highest = windows_of(usage)
        .iter()
        .map(|(_, w)| w.utilization)
        .fold(0.0, f64::max);
    (100.0 - highest).max(0.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_answer_keeps_its_windows_and_extra_usage_and_nothing_else() {
        let body = json!({
            "five_hour": {"utilization": 6.0, "resets_at": "2025-11-04T04:59:59.943648+00:00"},
            "seven_day": {"utilization": 35, "resets_at": null},
            "seven_day_oauth_apps": null,
            "seven_day_opus": {"utilization": 0.0, "resets_at": null},
            "Weird Key": {"utilization": 1.0},
            "limits": [{"kind": "spend", "percent": 3}],
            "extra_usage": {"is_enabled": false, "monthly_limit": null}
        });
        let w = Windows::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            w.five_hour,
            Some(UsageWindow {
                utilization: 6.0,
                resets_at: Some("2025-11-04T04:59:59Z".into())
            })
        );
        assert_eq!(w.seven_day.as_ref().unwrap().resets_at, None);
        assert_eq!(w.other.keys().collect::<Vec<_>>(), ["seven_day_opus"]);
        assert_eq!(
            w.extra_usage,
            Some(json!({"is_enabled": false, "monthly_limit": null}))
        );
        let usage = w.to_usage(1, false);
        assert_eq!(headroom(&usage), 65.0);
        let wire = serde_json::to_value(&usage).unwrap();
        assert_eq!(wire["seven_day_opus"]["utilization"], json!(0.0));
        assert_eq!(wire["fetched_at"], json!(1));
    }

    #[test]
    fn a_body_without_usage_figures_is_not_an_answer() {
        for body in [&b"not json"[..], b"[]", b"{}", br#"{"error": "x"}"#] {
            assert_eq!(Windows::parse(body), None);
        }
        let over = Windows::parse(br#"{"five_hour": {"utilization": 130}}"#).unwrap();
        assert_eq!(headroom(&over.to_usage(0, false)), 0.0);
    }
}
