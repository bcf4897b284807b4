//! The configuration file (`/etc/qmon/qmon.toml`, or `--config FILE`).
//!
//! Keys mirror the long command-line flags (`--max-db-size` → `max_db_size`);
//! a flag given on the command line wins over the file. Capture scope rules
//! live in a `[filter]` table. Every problem is reported as one line naming
//! the file, the key, the bad value and what is allowed; an unknown key is an
//! error, with a suggestion when it looks like a typo.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_path_to_error::Segment;

use crate::calls::scope::Scope;

pub const DEFAULT_PATH: &str = "/etc/qmon/qmon.toml";

/// Top-level keys, as in the file: the fields of [`FileConfig`].
pub static KEYS: LazyLock<&'static [&'static str]> = LazyLock::new(field_names::<FileConfig>);

/// Keys of the `[filter]` table: the fields of [`Filter`].
pub static FILTER_KEYS: LazyLock<&'static [&'static str]> = LazyLock::new(field_names::<Filter>);

/// Settings read from a file; `None` where the file says nothing.
///
/// The file is this struct: serde reads it, each key through a checker (in
/// `mod setting`) that words its own error, and an unknown key is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    #[serde(deserialize_with = "setting::path")]
    pub db: Option<PathBuf>,
    #[serde(deserialize_with = "setting::age")]
    pub retain: Option<Duration>,
    #[serde(deserialize_with = "setting::size")]
    pub max_db_size: Option<u64>,
    #[serde(deserialize_with = "setting::body_limit")]
    pub body_limit: Option<usize>,
    #[serde(deserialize_with = "setting::flag")]
    pub no_bodies: Option<bool>,
    #[serde(deserialize_with = "setting::flag")]
    pub no_redact: Option<bool>,
    #[serde(deserialize_with = "setting::names")]
    pub redact: Option<Vec<String>>,
    #[serde(deserialize_with = "setting::ring_size")]
    pub ring_size: Option<u32>,
    #[serde(deserialize_with = "setting::max_chunks")]
    pub max_chunks: Option<u32>,
    /// `kprobe` or `tracepoint`.
    #[serde(deserialize_with = "setting::attach_mode")]
    pub attach_mode: Option<String>,
    /// An address, or `none`.
    #[serde(deserialize_with = "setting::metrics_addr")]
    pub metrics_addr: Option<String>,
    /// The `[filter]` table.
    #[serde(rename = "filter", deserialize_with = "setting::filter")]
    pub scope: Scope,
}

/// The `[filter]` table: the capture scope's rules (see [`Scope`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, deserialize_with = "setting::strings")]
    pub include_comm: Vec<String>,
    #[serde(default, deserialize_with = "setting::strings")]
    pub exclude_comm: Vec<String>,
    #[serde(default, deserialize_with = "setting::pids")]
    pub include_pid: Vec<u32>,
    #[serde(default, deserialize_with = "setting::pids")]
    pub exclude_pid: Vec<u32>,
    #[serde(default, deserialize_with = "setting::strings")]
    pub include_container: Vec<String>,
    #[serde(default, deserialize_with = "setting::strings")]
    pub exclude_container: Vec<String>,
    #[serde(default, deserialize_with = "setting::strings")]
    pub include_host: Vec<String>,
    #[serde(default, deserialize_with = "setting::strings")]
    pub exclude_host: Vec<String>,
    #[serde(default, deserialize_with = "setting::ports")]
    pub include_port: Vec<u16>,
    #[serde(default, deserialize_with = "setting::ports")]
    pub exclude_port: Vec<u16>,
    #[serde(default = "setting::yes", deserialize_with = "setting::bool")]
    pub loopback: bool,
}

impl From<Filter> for Scope {
    fn from(f: Filter) -> Scope {
        Scope {
            include_comm: f.include_comm,
            exclude_comm: f.exclude_comm,
            include_pid: f.include_pid,
            exclude_pid: f.exclude_pid,
            include_container: f.include_container,
            exclude_container: f.exclude_container,
            include_host: f.include_host,
            exclude_host: f.exclude_host,
            include_port: f.include_port,
            exclude_port: f.exclude_port,
            loopback: f.loopback,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config {file}: {msg}")]
pub struct ConfigError {
    pub file: String,
    pub msg: String,
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        msg: format!("cannot read it: {e}"),
    })?;
    parse(&text).map_err(|msg| ConfigError {
        file: path.display().to_string(),
        msg,
    })
}

/// The file to use: `--config` if given (it must exist), else the default
/// path if it exists, else none.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// Parse and validate config text. The error is one line without the file
/// name.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message().trim()))?;
    if table.get("filter").is_some_and(|f| !f.is_table()) {
        return Err("key `filter` must be a table ([filter])".into());
    }
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| describe(&e))
}

/// One line naming the key: an unknown key with a hint, or what the
/// key's checker said about its value.
fn describe(e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let keys: Vec<&str> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let msg = e.inner().message();
    match keys[..] {
        [] => msg.to_string(),
        [key] if !KEYS.contains(&key) => unknown(key, &KEYS, ""),
        ["filter", key] if !FILTER_KEYS.contains(&key) => unknown(key, &FILTER_KEYS, "filter."),
        _ => format!("key `{}` {msg}", keys.join(".")),
    }
}

/// Readers for each kind of value. Each takes the value as written (so a
/// message can show it) and fails with what follows "key `NAME` " in the
/// message: `= VALUE is not allowed: expected ALLOWED`.
mod setting {
    use std::path::PathBuf;
    use std::time::Duration;

    use serde::de::{Deserialize, Deserializer, Error};

    use super::Filter;
    use crate::calls::scope::Scope;
    use crate::sinks::store::limits;

    type Checked<T> = Result<T, String>;

    fn bad(shown: impl std::fmt::Display, allowed: &str) -> String {
        format!("= {shown} is not allowed: expected {allowed}")
    }

    fn read<'de, D: Deserializer<'de>, T>(
        d: D,
        check: impl FnOnce(&toml::Value) -> Checked<T>,
    ) -> Result<T, D::Error> {
        let v = toml::Value::deserialize(d)?;
        check(&v).map_err(D::Error::custom)
    }

    fn string(v: &toml::Value) -> Checked<String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(v, "a string"))
    }

    fn boolean(v: &toml::Value) -> Checked<bool> {
        v.as_bool().ok_or_else(|| bad(v, "true or false"))
    }

    fn int_in(v: &toml::Value, min: i64, max: i64, allowed: &str) -> Checked<i64> {
        match v.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(bad(v, allowed)),
        }
    }

    fn string_list(v: &toml::Value) -> Checked<Vec<String>> {
        let err = || bad(v, "a list of strings, e.g. [\"a\", \"b\"]");
        let arr = v.as_array().ok_or_else(err)?;
        arr.iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(err))
            .collect()
    }

    fn int_list(v: &toml::Value, min: i64, max: i64, what: &str) -> Checked<Vec<i64>> {
        let allowed = format!("a list of {what}, e.g. [443, 8443]");
        let arr = v.as_array().ok_or_else(|| bad(v, &allowed))?;
        arr.iter()
            .map(|x| match x.as_integer() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(bad(v, &allowed)),
            })
            .collect()
    }

    pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        read(d, |v| Ok(Some(PathBuf::from(string(v)?))))
    }

    pub fn age<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            limits::parse_age(&s)
                .map(Some)
                .map_err(|e| bad(&s, &e.to_string()))
        })
    }

    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            limits::parse_size(&s)
                .map(Some)
                .map_err(|e| bad(&s, &e.to_string()))
        })
    }

    pub fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        read(d, |v| {
            Ok(Some(
                int_in(v, 0, 16 * 1024 * 1024, "0 to 16777216 bytes")? as usize
            ))
        })
    }

    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        read(d, |v| boolean(v).map(Some))
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        read(d, boolean)
    }

    pub fn yes() -> bool {
        true
    }

    pub fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        read(d, |v| string_list(v).map(Some))
    }

    pub fn ring_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        const ALLOWED: &str = "a power of two from 4096 to 1073741824 bytes";
        read(d, |v| {
            let n = int_in(v, 4096, 1 << 30, ALLOWED)?;
            if !(n as u64).is_power_of_two() {
                return Err(bad(n, ALLOWED));
            }
            Ok(Some(n as u32))
        })
    }

    pub fn max_chunks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let max = crate::capture::CHUNKS_HARD_MAX as i64;
        read(d, |v| {
            Ok(Some(int_in(v, 1, max, &format!("1 to {max}"))? as u32))
        })
    }

    pub fn attach_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            if s != "kprobe" && s != "tracepoint" {
                return Err(bad(&s, "\"kprobe\" or \"tracepoint\""));
            }
            Ok(Some(s))
        })
    }

    pub fn metrics_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            if s != "none" && s.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(
                    &s,
                    "an IP:port such as \"127.0.0.1:9464\", or \"none\"",
                ));
            }
            Ok(Some(s))
        })
    }

    /// `parse` has checked that `filter` is a table.
    pub fn filter<'de, D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        Filter::deserialize(d).map(Scope::from)
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, string_list)
    }

    pub fn pids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        read(d, |v| {
            let ns = int_list(v, 1, u32::MAX as i64, "process ids")?;
            Ok(ns.into_iter().map(|n| n as u32).collect())
        })
    }

    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        read(d, |v| {
            let ns = int_list(v, 1, 65535, "ports 1 to 65535")?;
            Ok(ns.into_iter().map(|n| n as u16).collect())
        })
    }
}

/// The field names of a struct that derives `Deserialize`, in declaration
/// order (serde hands them to `deserialize_struct`).
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Grab<'_> {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were wanted"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    fields
}

fn unknown(key: &str, known: &[&str], prefix: &str) -> String {
    let hint = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(k))
        .min()
        .map(|(_, k)| format!(" (did you mean `{prefix}{k}`?)"))
        .unwrap_or_default();
    format!(
        "unknown key `{prefix}{key}`{hint}; known keys: {}",
        known.join(", ")
    )
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
