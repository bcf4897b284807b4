//! Structural lint of the Grafana dashboards in `dashboards/` (no BPF, no
//! root): unique uids, a `datasource` variable every panel and query is
//! bound to, no `${DS_…}` import inputs (file provisioning cannot fill
//! them), known units, a schemaVersion, and queries that survive variable
//! substitution.

use qmon_e2e::dashboards::{exprs, load_all, panels, substitute, KNOWN_UNITS};
use serde_json::Value;
use std::collections::HashSet;

fn ds_is_variable(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Object(o)) => o.get("uid").and_then(Value::as_str) == Some("${datasource}"),
        Some(Value::String(s)) => s == "${datasource}" || s == "$datasource",
        _ => false,
    }
}

#[test]
fn dashboards_are_provisionable() {
    let all = load_all().expect("load dashboards");
    assert!(all.len() >= 2, "expected overview and health dashboards");
    let mut uids = HashSet::new();
    let mut problems = Vec::new();
    for (path, d) in &all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let raw = std::fs::read_to_string(path).unwrap();
        if raw.contains("${DS_") || raw.contains("$DS_") || d.get("__inputs").is_some() {
            problems.push(format!("{name}: uses ${{DS_…}} / __inputs"));
        }
        match d.get("uid").and_then(Value::as_str) {
            Some(u) if !u.is_empty() && u.len() <= 40 => {
                if !uids.insert(u.to_string()) {
                    problems.push(format!("{name}: duplicate uid {u}"));
                }
            }
            other => problems.push(format!("{name}: bad uid {other:?}")),
        }
        if d.get("schemaVersion").and_then(Value::as_u64).unwrap_or(0) < 36 {
            problems.push(format!("{name}: schemaVersion missing or old"));
        }
        if d.get("id").is_some_and(|v| !v.is_null()) {
            problems.push(format!("{name}: has a numeric id (breaks provisioning)"));
        }
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ds_var = vars
            .iter()
            .find(|v| v["name"] == "datasource" && v["type"] == "datasource");
        match ds_var {
            Some(v) if v["query"] == "prometheus" => {}
            _ => problems.push(format!(
                "{name}: no `datasource` variable of type datasource/prometheus"
            )),
        }
        for v in &vars {
            if v["type"] == "query" && !ds_is_variable(v.get("datasource")) {
                problems.push(format!(
                    "{name}: variable {} not bound to $datasource",
                    v["name"]
                ));
            }
        }
        let mut ids = HashSet::new();
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or("?");
            if p["type"] == "row" {
                continue;
            }
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
                problems.push(format!("{name}/{title}: duplicate panel id"));
            }
            if !ds_is_variable(p.get("datasource")) {
                problems.push(format!(
                    "{name}/{title}: panel datasource is not ${{datasource}}"
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{name}/{title}: no queries"));
            }
            for t in &targets {
                if !ds_is_variable(t.get("datasource")) {
                    problems.push(format!(
                        "{name}/{title}: target datasource is not ${{datasource}}"
                    ));
                }
                if t["expr"].as_str().unwrap_or("").trim().is_empty() {
                    problems.push(format!("{name}/{title}: empty expr"));
                }
            }
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str();
            match unit {
                Some(u) if KNOWN_UNITS.contains(&u) => {}
                other => problems.push(format!("{name}/{title}: unknown unit {other:?}")),
            }
        }
        for (title, e) in exprs(d) {
            let s = substitute(&e);
            if s.contains('$') {
                problems.push(format!("{name}/{title}: unsubstituted variable in {s}"));
            }
            let opens = s.matches('(').count();
            if opens != s.matches(')').count() || s.matches('{').count() != s.matches('}').count() {
                problems.push(format!("{name}/{title}: unbalanced brackets in {s}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn provisioning_points_at_the_dashboards() {
    let root = qmon_e2e::workspace_root().join("dashboards/provisioning");
    let prov = std::fs::read_to_string(root.join("dashboards.yaml")).expect("dashboards.yaml");
    assert!(
        prov.contains("type: file") && prov.contains("path:"),
        "{prov}"
    );
    let ds = std::fs::read_to_string(root.join("datasources.example.yaml"))
        .expect("datasources example");
    assert!(ds.contains("type: prometheus"), "{ds}");
}

#[test]
fn substitution() {
    assert_eq!(
        substitute(r#"rate(x{a=~"$host",b=~"${process}"}[$__rate_interval])"#),
        r#"rate(x{a=~".*",b=~".*"}[30s])"#
    );
}
