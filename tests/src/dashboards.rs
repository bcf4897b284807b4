//! Grafana dashboards in `dashboards/`: loading, walking panels, and turning
//! panel queries into plain PromQL (template variables substituted).

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

/// Grafana unit ids the dashboards may use (a subset of Grafana's list).
pub const KNOWN_UNITS: &[&str] = &[
    "none",
    "short",
    "percent",
    "percentunit",
    "s",
    "ms",
    "µs",
    "ns",
    "dtdurations",
    "bytes",
    "decbytes",
    "bits",
    "Bps",
    "binBps",
    "bps",
    "reqps",
    "rps",
    "ops",
    "wps",
    "rpm",
    "opm",
    "bool",
    "bool_yes_no",
    "bool_on_off",
    "dateTimeAsIso",
    "hertz",
];

/// Every `dashboards/*.json`, parsed, with its path.
pub fn load_all() -> Result<Vec<(PathBuf, Value)>> {
    let dir = crate::workspace_root().join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        out.push((path, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// All panels, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        for p in list.and_then(Value::as_array).into_iter().flatten() {
            out.push(p);
            walk(p.get("panels"), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard.get("panels"), &mut out);
    out
}

/// `(panel title, expr)` for every query target of every panel.
pub fn exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        let title = p.get("title").and_then(Value::as_str).unwrap_or("?");
        for t in p
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(e) = t.get("expr").and_then(Value::as_str) {
                out.push((title.to_string(), e.to_string()));
            }
        }
    }
    out
}

/// Replaces Grafana variables with values Prometheus accepts: interval
/// variables with `30s`, every other (`$host`, `${process}`, …) with `.*`
/// (they are only used in `=~` matchers).
pub fn substitute(expr: &str) -> String {
    let mut s = expr.to_string();
    for (var, val) in [
        ("$__rate_interval", "30s"),
        ("${__rate_interval}", "30s"),
        ("$__interval", "15s"),
        ("${__interval}", "15s"),
        ("$__range", "5m"),
        ("${__range}", "5m"),
    ] {
        s = s.replace(var, val);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
        out.push_str(".*");
    }
    out
}
