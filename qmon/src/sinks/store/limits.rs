//! Parsers for `--retain AGE` and `--max-db-size SIZE`.

use std::time::Duration;

use crate::units::{number_and_unit, parse_duration};

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

/// A retention age: any time [`parse_duration`] reads (`30s`, `15m`,
/// `12h`, `7d`, `2w`, ...), its errors worded as an age.
pub fn parse_age(input: &str) -> Result<Duration, LimitParseError> {
    parse_duration(input).map_err(|e| LimitParseError {
        what: "age",
        input: input.to_string(),
        reason: e.reason,
        examples: AGE_EXAMPLES,
    })
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
    let (n, unit) = number_and_unit(input).map_err(err)?;
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
