//! Numbers with units, as flags and config keys spell them.
//!
//! [`parse_duration`] is the one duration grammar: `--retain` and the
//! config key `retain`, and `qmon top --interval`, `--duration` and
//! `--window` all read times through it, so a time that works in one place
//! works in every other. Each caller words its own error around the reason.

use std::time::Duration;

/// Examples for error messages.
pub const DURATION_EXAMPLES: &str = "500ms, 30s, 15m, 12h, 7d, 2w";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (e.g. {DURATION_EXAMPLES})")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// A whole number greater than zero, then a unit, optionally after spaces:
/// `ms`; `s`, `sec`, `secs`, `second(s)`; `m`, `min`, `mins`, `minute(s)`;
/// `h`, `hour(s)`; `d`, `day(s)`; `w`, `week(s)`. Units are
/// case-insensitive and surrounding spaces are ignored: `500ms`, `1s`,
/// `30m`, `12h`, `7d`, `2W`, `3 days`. No fractions, no bare numbers.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let (n, unit) = number_and_unit(input).map_err(err)?;
    let ms_per: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        "" => return Err(err("missing unit (ms, s, m, h, d, w)")),
        _ => return Err(err("unknown unit (use ms, s, m, h, d or w)")),
    };
    if n == 0 {
        return Err(err("must be greater than zero"));
    }
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| err("too large"))
}

/// `" 12 KB "` → `(12, "KB")`: a leading whole number and the trimmed rest.
pub(crate) fn number_and_unit(input: &str) -> Result<(u64, &str), &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty");
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("must start with a whole number");
    }
    let n = s[..digits].parse::<u64>().map_err(|_| "number too large")?;
    Ok((n, s[digits..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Everything `--retain`/`retain` and `qmon top`'s times accepted
    /// before they shared this parser, and then some.
    #[test]
    fn accepts_every_spelling_either_old_parser_did() {
        for (input, want) in [
            // --interval / --duration
            ("500ms", ms(500)),
            ("250ms", ms(250)),
            ("1s", ms(1000)),
            ("2m", ms(120_000)),
            (" 6s", ms(6000)),
            ("1 s", ms(1000)),
            // --retain / retain
            ("7d", ms(7 * 86_400_000)),
            ("12h", ms(12 * 3_600_000)),
            ("30m", ms(1_800_000)),
            (" 45s ", ms(45_000)),
            ("2W", ms(14 * 86_400_000)),
            ("3 days", ms(3 * 86_400_000)),
            ("1 sec", ms(1000)),
            ("10 mins", ms(600_000)),
            ("1 hour", ms(3_600_000)),
            ("1 week", ms(7 * 86_400_000)),
            // New to one or the other.
            ("1h", ms(3_600_000)),
            ("100MS", ms(100)),
            ("2 minutes", ms(120_000)),
            ("1second", ms(1000)),
            ("5s ", ms(5000)),
        ] {
            assert_eq!(parse_duration(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("  ", "empty"),
            ("7", "missing unit (ms, s, m, h, d, w)"),
            ("d", "must start with a whole number"),
            ("-1d", "must start with a whole number"),
            ("7y", "unknown unit (use ms, s, m, h, d or w)"),
            ("1.5h", "unknown unit (use ms, s, m, h, d or w)"),
            ("0ms", "must be greater than zero"),
            ("0d", "must be greater than zero"),
            ("99999999999999999999d", "number too large"),
            ("999999999999999999w", "too large"),
        ] {
            let e = parse_duration(input).unwrap_err();
            assert_eq!(e.reason, reason, "{input:?}");
            assert_eq!(
                e.to_string(),
                format!("invalid duration {input:?}: {reason} (e.g. 500ms, 30s, 15m, 12h, 7d, 2w)")
            );
        }
    }
}
