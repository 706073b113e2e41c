//! The few time formats the usage endpoint speaks: RFC 3339 instants (`resets_at`) and the two
//! forms of `Retry-After` (seconds, or an HTTP date). Epoch milliseconds inside, RFC 3339 in UTC
//! on the wire.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number, as (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn number(s: &str, digits: usize) -> Option<i64> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let mut parts = date.split('-');
    let year = number(parts.next()?, 4)?;
    let month = number(parts.next()?, 2)?;
    let day = number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = number(rest.get(0..2)?, 2)?;
    let minute = number(rest.get(3..5)?, 2)?;
    let second = number(rest.get(6..8)?, 2)?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let shown: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = shown.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            let (h, m) = (number(h, 2)?, number(m, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Epoch milliseconds as RFC 3339 in UTC, to the second: `2025-11-04T04:59:59Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Retry-After` as milliseconds from `now`: delay-seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: i64) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(i64::try_from(seconds.min(i64::MAX as u64 / 1000)).ok()? * 1000);
    }
    let (_, rest) = value.split_once(", ")?;
    let mut f = rest.split(' ');
    let day = number(f.next()?, 2)?;
    let month = f.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year = number(f.next()?, 4)?;
    let time = f.next()?;
    if f.next()? != "GMT" {
        return None;
    }
    let at = parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{time}Z"))?;
    Some((at - now).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_instants_round_trip_through_epoch_milliseconds() {
        let at = parse_rfc3339("2025-11-04T04:59:59.943648+00:00").unwrap();
        assert_eq!(at, 1_762_232_399_943);
        assert_eq!(format_rfc3339(at), "2025-11-04T04:59:59Z");
        assert_eq!(
            parse_rfc3339("2025-11-04T06:59:59+02:00"),
            parse_rfc3339("2025-11-04T04:59:59Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "2025-11-04",
            "2025-13-04T04:59:59Z",
            "2025-11-04T04:59:59",
            "2025-11-04T04:59:59.Z",
            "2025-11-04T24:00:00Z",
            "sk-ant-oat01-xxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        let now = parse_rfc3339("1994-11-06T08:49:00Z").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(37_000)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
