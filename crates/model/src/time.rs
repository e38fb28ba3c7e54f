//! Event time: milliseconds since the Unix epoch, UTC.
//!
//! Hand-written instead of `chrono`/`time` because parsing a timestamp is on the
//! per-event hot path and audit sources disagree on the exact shape (CloudTrail
//! exports and Panther samples use a space instead of `T`, nine fractional digits,
//! or no zone at all). The calendar maths is Howard Hinnant's `days_from_civil`.

use serde::{Deserializer, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z. Every detector takes time as this value,
/// passed in from the event, never read from the clock.
pub type Millis = i64;

/// The wall clock, as event time is counted. Read only at the engine's edge: to bound how
/// far ahead of now an event may claim to be, and to pace automatic actions under
/// `nhid run`; detectors never see it.
pub fn wall_clock() -> Millis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
}

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// The times RFC 3339 can write, years 0000 to 9999. A number outside is no event's time (a
/// timestamp in microseconds read as milliseconds is in the year 53,000), and nhid's outputs,
/// which state times in RFC 3339, could not carry it.
pub const RFC3339_RANGE: std::ops::RangeInclusive<Millis> = -62_167_219_200_000..=253_402_300_799_999;

/// The longest duration a setting may name, in seconds: ten years. Longer is a typo, and
/// past about 9·10¹⁵ seconds a duration in milliseconds overflows (a learning period that
/// wraps to negative learns nothing; a cooldown that wraps is none).
pub const MAX_SETTING_SECS: u64 = 10 * 365 * 86_400;

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]`; no zone means UTC.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // A leap second (:60) is folded into the next second's first millisecond range.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, c) in tail[..n.min(3)].iter().enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &tail[n..];
    }
    let offset_minutes: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] | [sign @ (b'+' | b'-'), hh1, hh2, mm1, mm2] => {
            let h = digits(&[*hh1, *hh2])? as i64;
            let m = digits(&[*mm1, *mm2])? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let v = h * 60 + m;
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second) - offset_minutes * 60;
    Some(secs * 1_000 + millis)
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form every nhid output uses.
pub fn format_rfc3339(t: Millis) -> String {
    let days = t.div_euclid(DAY);
    let ms_of_day = t.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1_000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", secs / 3_600, secs / 60 % 60, secs % 60, ms_of_day % 1_000)
}

/// Hour of day (0..24) in UTC.
pub fn hour_of_day(t: Millis) -> usize {
    (t.rem_euclid(DAY) / HOUR) as usize
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// serde helpers so event structs carry `Millis` but read and write RFC 3339.
pub mod serde_rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*t))
    }

    /// Parses straight from the input's bytes: no string is allocated per event.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        d.deserialize_str(TimeVisitor)
    }

    pub(super) struct TimeVisitor;

    impl<'de> serde::de::Visitor<'de> for TimeVisitor {
        type Value = Millis;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Millis, E> {
            parse_rfc3339(v).ok_or_else(|| E::custom("not a valid RFC 3339 timestamp"))
        }
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format_rfc3339(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            struct Opt;
            impl<'de> serde::de::Visitor<'de> for Opt {
                type Value = Option<Millis>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an RFC 3339 timestamp or null")
                }
                fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    d.deserialize_str(TimeVisitor).map(Some)
                }
            }
            d.deserialize_option(Opt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_shapes_audit_sources_use() {
        let t = parse_rfc3339("2023-01-10T21:04:02Z").unwrap();
        assert_eq!(parse_rfc3339("2023-01-10 21:04:02"), Some(t));
        assert_eq!(parse_rfc3339("2023-01-10 21:04:02.000000000"), Some(t));
        assert_eq!(parse_rfc3339("2023-01-10T22:04:02+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2023-01-10T20:04:02-0100"), Some(t));
        assert_eq!(parse_rfc3339("2023-01-10T21:04:02.123456Z"), Some(t + 123));
        assert_eq!(t, 1_673_384_642_000);
    }

    #[test]
    fn the_rfc3339_range_is_what_formats_and_parses_back() {
        let (first, last) = (*RFC3339_RANGE.start(), *RFC3339_RANGE.end());
        assert_eq!(format_rfc3339(first), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(last), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_rfc3339(&format_rfc3339(first)), Some(first));
        assert_eq!(parse_rfc3339(&format_rfc3339(last)), Some(last));
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2023-01-10",
            "2023-13-10T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-01-10T24:00:00Z",
            "2023-01-10T21:04:02.Z",
            "2023-01-10T21:04:02 UTC",
            "yyyy-01-10T21:04:02Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(t in -62_135_596_800_000i64..253_402_300_799_999i64) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
