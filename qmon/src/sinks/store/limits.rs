//! Parsers for `--retain AGE` and `--max-db-size SIZE`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason} (e.g. {examples})")]
pub struct LimitParseError {
    pub what: &'static str,
    pub input: String,
    pub reason: &'static str,
    pub examples: &'static str,
}

const AGE_EXAMPLES: &str = "30m, 12h, 7d, 2w";
const SIZE_EXAMPLES: &str = "500MB, 2GiB, 100M";

/// `30s`, `15m`, `12h`, `7d`, `2w` (whole numbers; the unit is required).
pub fn parse_age(input: &str) -> Result<Duration, LimitParseError> {
    let err = |reason| LimitParseError {
        what: "age",
        input: input.to_string(),
        reason,
        examples: AGE_EXAMPLES,
    };
    let (n, unit) = split_number(input).map_err(err)?;
    let secs: u64 = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        "" => return Err(err("missing unit (s, m, h, d, w)")),
        _ => return Err(err("unknown unit (use s, m, h, d or w)")),
    };
    if n == 0 {
        return Err(err("must be greater than zero"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| err("too large"))
}

/// Bytes: `B`, decimal `KB`/`MB`/`GB`/`TB` (1000ⁿ), binary `KiB`/`MiB`/`GiB`/`TiB`
/// and the bare `K`/`M`/`G`/`T` (1024ⁿ). Case-insensitive; no unit = bytes.
pub fn parse_size(input: &str) -> Result<u64, LimitParseError> {
    let err = |reason| LimitParseError {
        what: "size",
        input: input.to_string(),
        reason,
        examples: SIZE_EXAMPLES,
    };
    let (n, unit) = split_number(input).map_err(err)?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => {
            return Err(err(
                "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
            ))
        }
    };
    if n == 0 {
        return Err(err("must be greater than zero"));
    }
    n.checked_mul(mult).ok_or_else(|| err("too large"))
}

fn split_number(input: &str) -> Result<(u64, &str), &'static str> {
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

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_age(" 45s ").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_age("2W").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(
            parse_age("3 days").unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        for bad in [
            "",
            "7",
            "d",
            "7y",
            "-1d",
            "1.5h",
            "0d",
            "99999999999999999999d",
        ] {
            let e = parse_age(bad).unwrap_err();
            assert!(e.to_string().contains("invalid age"), "{e}");
        }
        assert!(parse_age("7")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("500mb").unwrap(), 500_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1 KB").unwrap(), 1000);
        for bad in ["", "MB", "5XB", "0MB", "1.5GB", "99999999999TB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.to_string().contains("invalid size"), "{e}");
        }
    }
}
