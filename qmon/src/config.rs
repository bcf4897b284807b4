//! The configuration file (`/etc/qmon/qmon.toml`, or `--config FILE`).
//!
//! Keys mirror the long command-line flags (`--max-db-size` → `max_db_size`);
//! a flag given on the command line wins over the file. Capture scope rules
//! live in a `[filter]` table. Every problem is reported as one line naming
//! the file, the key, the bad value and what is allowed; an unknown key is an
//! error, with a suggestion when it looks like a typo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::calls::scope::Scope;
use crate::sinks::store::limits;

pub const DEFAULT_PATH: &str = "/etc/qmon/qmon.toml";

/// Top-level keys, as in the file.
pub const KEYS: &[&str] = &[
    "db",
    "retain",
    "max_db_size",
    "body_limit",
    "no_bodies",
    "no_redact",
    "redact",
    "ring_size",
    "max_chunks",
    "attach_mode",
    "metrics_addr",
    "filter",
];

/// Keys of the `[filter]` table.
pub const FILTER_KEYS: &[&str] = &[
    "include_comm",
    "exclude_comm",
    "include_pid",
    "exclude_pid",
    "include_container",
    "exclude_container",
    "include_host",
    "exclude_host",
    "include_port",
    "exclude_port",
    "loopback",
];

/// Settings read from a file; `None` where the file says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub retain: Option<Duration>,
    pub max_db_size: Option<u64>,
    pub body_limit: Option<usize>,
    pub no_bodies: Option<bool>,
    pub no_redact: Option<bool>,
    pub redact: Option<Vec<String>>,
    pub ring_size: Option<u32>,
    pub max_chunks: Option<u32>,
    /// `kprobe` or `tracepoint`.
    pub attach_mode: Option<String>,
    /// An address, or `none`.
    pub metrics_addr: Option<String>,
    pub scope: Scope,
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
    let mut cfg = FileConfig::default();
    for (key, value) in &table {
        let v = Value { key, value };
        match key.as_str() {
            "db" => cfg.db = Some(PathBuf::from(v.string()?)),
            "retain" => {
                let s = v.string()?;
                cfg.retain = Some(limits::parse_age(&s).map_err(|e| v.bad(&s, &e.to_string()))?);
            }
            "max_db_size" => {
                let s = v.string()?;
                cfg.max_db_size =
                    Some(limits::parse_size(&s).map_err(|e| v.bad(&s, &e.to_string()))?);
            }
            "body_limit" => {
                cfg.body_limit =
                    Some(v.int_in(0, 16 * 1024 * 1024, "0 to 16777216 bytes")? as usize)
            }
            "no_bodies" => cfg.no_bodies = Some(v.bool()?),
            "no_redact" => cfg.no_redact = Some(v.bool()?),
            "redact" => cfg.redact = Some(v.strings()?),
            "ring_size" => {
                let n = v.int_in(
                    4096,
                    1 << 30,
                    "a power of two from 4096 to 1073741824 bytes",
                )?;
                if !(n as u64).is_power_of_two() {
                    return Err(v.bad(
                        &n.to_string(),
                        "a power of two from 4096 to 1073741824 bytes",
                    ));
                }
                cfg.ring_size = Some(n as u32);
            }
            "max_chunks" => {
                let max = crate::capture::CHUNKS_HARD_MAX as i64;
                cfg.max_chunks = Some(v.int_in(1, max, &format!("1 to {max}"))? as u32)
            }
            "attach_mode" => {
                let s = v.string()?;
                if s != "kprobe" && s != "tracepoint" {
                    return Err(v.bad(&s, "\"kprobe\" or \"tracepoint\""));
                }
                cfg.attach_mode = Some(s);
            }
            "metrics_addr" => {
                let s = v.string()?;
                if s != "none" && s.parse::<std::net::SocketAddr>().is_err() {
                    return Err(v.bad(&s, "an IP:port such as \"127.0.0.1:9464\", or \"none\""));
                }
                cfg.metrics_addr = Some(s);
            }
            "filter" => cfg.scope = parse_filter(value)?,
            other => return Err(unknown(other, KEYS, "")),
        }
    }
    Ok(cfg)
}

fn parse_filter(value: &toml::Value) -> Result<Scope, String> {
    let Some(table) = value.as_table() else {
        return Err("key `filter` must be a table ([filter])".into());
    };
    let mut s = Scope::default();
    for (key, value) in table {
        let full = format!("filter.{key}");
        let v = Value { key: &full, value };
        match key.as_str() {
            "include_comm" => s.include_comm = v.strings()?,
            "exclude_comm" => s.exclude_comm = v.strings()?,
            "include_pid" => {
                s.include_pid = v
                    .ints(1, u32::MAX as i64, "process ids")?
                    .into_iter()
                    .map(|n| n as u32)
                    .collect()
            }
            "exclude_pid" => {
                s.exclude_pid = v
                    .ints(1, u32::MAX as i64, "process ids")?
                    .into_iter()
                    .map(|n| n as u32)
                    .collect()
            }
            "include_container" => s.include_container = v.strings()?,
            "exclude_container" => s.exclude_container = v.strings()?,
            "include_host" => s.include_host = v.strings()?,
            "exclude_host" => s.exclude_host = v.strings()?,
            "include_port" => {
                s.include_port = v
                    .ints(1, 65535, "ports 1 to 65535")?
                    .into_iter()
                    .map(|n| n as u16)
                    .collect()
            }
            "exclude_port" => {
                s.exclude_port = v
                    .ints(1, 65535, "ports 1 to 65535")?
                    .into_iter()
                    .map(|n| n as u16)
                    .collect()
            }
            "loopback" => s.loopback = v.bool()?,
            other => return Err(unknown(other, FILTER_KEYS, "filter.")),
        }
    }
    Ok(s)
}

struct Value<'a> {
    key: &'a str,
    value: &'a toml::Value,
}

impl Value<'_> {
    fn bad(&self, shown: &str, allowed: &str) -> String {
        format!(
            "key `{}` = {shown} is not allowed: expected {allowed}",
            self.key
        )
    }

    fn shown(&self) -> String {
        self.value.to_string()
    }

    fn string(&self) -> Result<String, String> {
        self.value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.bad(&self.shown(), "a string"))
    }

    fn bool(&self) -> Result<bool, String> {
        self.value
            .as_bool()
            .ok_or_else(|| self.bad(&self.shown(), "true or false"))
    }

    fn int_in(&self, min: i64, max: i64, allowed: &str) -> Result<i64, String> {
        match self.value.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad(&self.shown(), allowed)),
        }
    }

    fn strings(&self) -> Result<Vec<String>, String> {
        let err = || self.bad(&self.shown(), "a list of strings, e.g. [\"a\", \"b\"]");
        let arr = self.value.as_array().ok_or_else(err)?;
        arr.iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(err))
            .collect()
    }

    fn ints(&self, min: i64, max: i64, what: &str) -> Result<Vec<i64>, String> {
        let allowed = format!("a list of {what}, e.g. [443, 8443]");
        let arr = self
            .value
            .as_array()
            .ok_or_else(|| self.bad(&self.shown(), &allowed))?;
        arr.iter()
            .map(|x| match x.as_integer() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(self.bad(&self.shown(), &allowed)),
            })
            .collect()
    }
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
