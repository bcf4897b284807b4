//! `qmon top --once`: one frame as plain text (no escape codes), for
//! scripts and bug reports; or its rows as JSON, JSON Lines or CSV, framed
//! as `qmon query` frames them.

use serde::Serialize;

use super::app::App;
use super::model::{Program, Row};
use super::ui::{column_titles, header_line, row_cells, status_line, text_columns};
use crate::table::{self, Cell};

/// Output formats of `--once`: those of `qmon query`, with the text frame
/// in place of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Header lines and an aligned table.
    #[default]
    Text,
    /// RFC 4180, with a header row.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per row per line.
    Jsonl,
}

/// Header lines, then the table with columns padded to their widest cell;
/// numbers right-aligned.
pub fn render(app: &App) -> String {
    let route = app.spec.grouping.has_route();
    let text_cols = text_columns(route);
    let cells = |texts: Vec<String>| -> Vec<Cell> {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if i < text_cols {
                    Cell::left(t)
                } else {
                    Cell::right(t)
                }
            })
            .collect()
    };
    let titles = cells(column_titles(route, app.spec.sort, app.spec.desc));
    let rows: Vec<Vec<Cell>> = app.view.rows.iter().map(|r| cells(row_cells(r))).collect();
    let mut out = String::new();
    out.push_str(&header_line(app));
    out.push('\n');
    out.push_str(&status_line(app));
    out.push('\n');
    out.push_str(&table::render(&titles, false, &rows));
    if rows.is_empty() {
        out.push_str("(no calls)\n");
    }
    out
}

/// One row for scripts: every field, whatever the grouping, in this order
/// (the README documents them). Raw numbers: ns, bytes.
#[derive(Debug, Serialize)]
pub struct RowRecord {
    /// The process column as shown.
    pub process: String,
    /// Grouped by program or pid: the executable name.
    pub comm: Option<String>,
    /// Grouped by program where two executables share a name: its path.
    pub exe: Option<String>,
    /// Grouped by pid: the pid.
    pub pid: Option<u32>,
    pub pids: u64,
    /// `host:port` (or `N hosts`).
    pub host: String,
    pub route: Option<String>,
    pub proto: String,
    pub reqs: u64,
    pub rps: f64,
    pub errors: u64,
    pub err_pct: f64,
    pub p50_ns: Option<u64>,
    pub p95_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl RowRecord {
    pub fn of(r: &Row) -> RowRecord {
        let (comm, exe) = match &r.key.program {
            Some(Program::Comm(c)) => (Some(c.clone()), None),
            Some(Program::Exe { comm, exe }) => (Some(comm.clone()), Some(exe.clone())),
            None => (None, None),
        };
        RowRecord {
            process: r.process.clone(),
            comm,
            exe,
            pid: r.key.pid,
            pids: r.pids,
            host: r.host.clone(),
            route: r.route.clone(),
            proto: r.proto.clone(),
            reqs: r.requests,
            rps: r.rps,
            errors: r.errors,
            err_pct: r.error_pct,
            p50_ns: r.p50_ns,
            p95_ns: r.p95_ns,
            p99_ns: r.p99_ns,
            bytes_out: r.bytes_out,
            bytes_in: r.bytes_in,
        }
    }
}

/// Column names of [`RowRecord`], for the CSV header.
pub const RECORD_FIELDS: [&str; 17] = [
    "process",
    "comm",
    "exe",
    "pid",
    "pids",
    "host",
    "route",
    "proto",
    "reqs",
    "rps",
    "errors",
    "err_pct",
    "p50_ns",
    "p95_ns",
    "p99_ns",
    "bytes_out",
    "bytes_in",
];

/// The frame's rows in `format` (text: [`render`]).
pub fn render_as(app: &App, format: Format) -> String {
    let records = app.view.rows.iter().map(RowRecord::of);
    match format {
        Format::Text => render(app),
        Format::Json | Format::Jsonl => {
            let json = format == Format::Json;
            let mut out = String::new();
            if json {
                out.push('[');
            }
            let mut n = 0;
            for r in records {
                if json {
                    out.push_str(if n == 0 { "\n" } else { ",\n" });
                }
                // A struct of strings and numbers always serializes.
                out.push_str(&serde_json::to_string(&r).unwrap_or_default());
                if !json {
                    out.push('\n');
                }
                n += 1;
            }
            if json {
                out.push_str(if n == 0 { "]\n" } else { "\n]\n" });
            }
            out
        }
        Format::Csv => {
            let mut out = csv_line(RECORD_FIELDS.iter().map(|s| s.to_string()));
            for r in records {
                let v = serde_json::to_value(&r).unwrap_or_default();
                out.push_str(&csv_line(RECORD_FIELDS.iter().map(|k| match &v[*k] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    // As `qmon query` prints a REAL: `20`, not `20.0`.
                    serde_json::Value::Number(n) if n.is_f64() => {
                        n.as_f64().unwrap_or_default().to_string()
                    }
                    other => other.to_string(),
                })));
            }
            out
        }
    }
}

/// One RFC 4180 line (CRLF), quoting fields that need it.
fn csv_line(fields: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for (i, f) in fields.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&f);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::live::model::tests::{programs, NOW, SEC};
    use crate::sinks::live::model::{Column, Limits, Model, ViewSpec, Window};

    fn app(by_pid: bool) -> App {
        app_grouped(by_pid, crate::sinks::live::model::Grouping::Process)
    }

    fn app_grouped(by_pid: bool, grouping: crate::sinks::live::model::Grouping) -> App {
        let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
        let mut calls = programs();
        // A name, a comma and a quote to escape.
        calls[0].host = "odd,\"host\"".into();
        for c in calls {
            m.push(c);
        }
        let spec = ViewSpec {
            grouping,
            by_pid,
            window: Window::M1,
            sort: Column::Requests,
            desc: true,
            ..ViewSpec::default()
        };
        let mut a = App::new(m, spec, "static".into(), false, NOW);
        a.tick(NOW);
        a
    }

    /// What `qmon query` prints for the same rows: each record put in a
    /// SQLite table (no declared types, so values keep their kind) and
    /// selected back.
    fn query_output(a: &App, format: crate::query::Format) -> String {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!("CREATE TABLE t ({})", RECORD_FIELDS.join(", ")))
            .unwrap();
        let marks = vec!["?"; RECORD_FIELDS.len()].join(", ");
        for r in &a.view.rows {
            let v = serde_json::to_value(RowRecord::of(r)).unwrap();
            let vals: Vec<rusqlite::types::Value> = RECORD_FIELDS
                .iter()
                .map(|k| match &v[*k] {
                    serde_json::Value::Null => rusqlite::types::Value::Null,
                    serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
                    serde_json::Value::Number(n) if n.is_f64() => {
                        rusqlite::types::Value::Real(n.as_f64().unwrap())
                    }
                    serde_json::Value::Number(n) => {
                        rusqlite::types::Value::Integer(n.as_i64().unwrap())
                    }
                    other => panic!("{other}"),
                })
                .collect();
            conn.execute(
                &format!("INSERT INTO t VALUES ({marks})"),
                rusqlite::params_from_iter(vals),
            )
            .unwrap();
        }
        drop(conn);
        let mut out = Vec::new();
        crate::query::run(&db, format, "SELECT * FROM t", &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_as_json_jsonl_and_csv_as_query_prints_them() {
        use crate::query::Format as Q;
        use crate::sinks::live::model::Grouping;
        for (by_pid, grouping) in [
            (false, Grouping::Process),
            (true, Grouping::Process),
            (false, Grouping::HostRoute),
        ] {
            let a = app_grouped(by_pid, grouping);
            for (ours, theirs) in [
                (Format::Json, Q::Json),
                (Format::Jsonl, Q::Jsonl),
                (Format::Csv, Q::Csv),
            ] {
                assert_eq!(
                    render_as(&a, ours),
                    query_output(&a, theirs),
                    "{ours:?}, {grouping:?}, by pid: {by_pid}"
                );
            }
        }
    }

    #[test]
    fn json_rows_carry_every_field() {
        let a = app(false);
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&render_as(&a, Format::Json)).unwrap();
        assert_eq!(rows.len(), 2, "curl (on two hosts), python3");
        let py = rows.iter().find(|r| r["process"] == "python3").unwrap();
        // (In the output they are in RECORD_FIELDS order: the comparison
        // with `qmon query` above checks it; the parsed map sorts them.)
        let mut keys: Vec<&str> = py.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = RECORD_FIELDS.to_vec();
        keys.sort();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(py["comm"], "python3");
        assert_eq!(py["pid"], serde_json::Value::Null);
        assert_eq!(py["pids"], 1);
        assert_eq!(py["reqs"], 10);
        assert_eq!(py["errors"], 1);
        assert_eq!(py["err_pct"], 10.0);
        assert_eq!(py["p50_ns"], 30_000_000);
        assert_eq!(py["host"], "api.example:443");
        assert_eq!(py["route"], serde_json::Value::Null);
        let curl = rows.iter().find(|r| r["process"] == "curl").unwrap();
        assert_eq!(curl["pids"], 20);
        assert_eq!(curl["host"], "2 hosts");
        let a = app(true);
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&render_as(&a, Format::Json)).unwrap();
        assert_eq!(rows.len(), 21);
        assert_eq!(rows[0]["pid"], 77);
        // Nothing to show: an empty array, as query prints it.
        let mut a = app(false);
        a.spec.filter = "nothing matches".into();
        a.tick(NOW);
        assert_eq!(render_as(&a, Format::Json), "[]\n");
        assert_eq!(render_as(&a, Format::Jsonl), "");
        assert_eq!(
            render_as(&a, Format::Csv),
            format!("{}\r\n", RECORD_FIELDS.join(","))
        );
    }
}
