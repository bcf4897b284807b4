//! `qmon query`: run one SQL statement read-only against the store and print
//! the rows as a table, CSV, JSON or JSON lines.
//!
//! The database is opened with `SQLITE_OPEN_READ_ONLY` and
//! `PRAGMA query_only=1`, so no statement can change it (nor any database
//! `ATTACH`ed to the connection). It works while `qmon record` writes (WAL).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for terminals.
    Table,
    /// RFC 4180, with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// Longest cell shown in table output; longer values end in `…`.
pub const TABLE_CELL_MAX: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database {} does not exist; `qmon record` creates it (or pass the path to an existing one)", path.display())]
    MissingDb { path: PathBuf },
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("writing output: {0}")]
    Io(#[from] io::Error),
}

/// Run `sql` against the database at `db`, writing rows to `out`; returns
/// the number of rows.
pub fn run(db: &Path, format: Format, sql: &str, out: &mut dyn Write) -> Result<u64, QueryError> {
    let conn = open_read_only(db)?;
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    match format {
        Format::Table => {
            let mut cells: Vec<Vec<Cell>> = Vec::new();
            while let Some(row) = rows.next()? {
                cells.push(
                    (0..columns.len())
                        .map(|i| row.get_ref(i).map(table_cell))
                        .collect::<Result<_, _>>()?,
                );
                n += 1;
            }
            write_table(out, &columns, &cells)?;
        }
        Format::Csv => {
            write_csv_row(out, columns.iter().map(|c| c.as_str()))?;
            while let Some(row) = rows.next()? {
                let vals: Vec<String> = (0..columns.len())
                    .map(|i| row.get_ref(i).map(csv_value))
                    .collect::<Result<_, _>>()?;
                write_csv_row(out, vals.iter().map(|v| v.as_str()))?;
                n += 1;
            }
        }
        Format::Json | Format::Jsonl => {
            let json = format == Format::Json;
            if json {
                out.write_all(b"[")?;
            }
            while let Some(row) = rows.next()? {
                if json {
                    out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
                }
                out.write_all(b"{")?;
                for (i, name) in columns.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, name).map_err(io::Error::from)?;
                    out.write_all(b":")?;
                    let v = json_value(row.get_ref(i)?);
                    serde_json::to_writer(&mut *out, &v).map_err(io::Error::from)?;
                }
                out.write_all(b"}")?;
                if !json {
                    out.write_all(b"\n")?;
                }
                n += 1;
            }
            if json {
                out.write_all(if n == 0 { b"]\n" } else { b"\n]\n" })?;
            }
        }
    }
    out.flush()?;
    Ok(n)
}

/// Open `db` so that nothing can be written through the connection.
pub fn open_read_only(db: &Path) -> Result<Connection, QueryError> {
    if !db.exists() {
        return Err(QueryError::MissingDb {
            path: db.to_path_buf(),
        });
    }
    let open_err = |source| QueryError::Open {
        path: db.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "query_only", 1)
        .map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_err)?;
    Ok(conn)
}

struct Cell {
    text: String,
    numeric: bool,
}

fn table_cell(v: ValueRef<'_>) -> Cell {
    let (text, numeric) = match v {
        ValueRef::Null => ("NULL".to_string(), false),
        ValueRef::Integer(i) => (i.to_string(), true),
        ValueRef::Real(f) => (f.to_string(), true),
        ValueRef::Text(t) => (String::from_utf8_lossy(t).into_owned(), false),
        ValueRef::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (format!("<{} bytes>", b.len()), false),
        },
    };
    // One line per row: escape control characters, bound the width.
    let mut clean = String::with_capacity(text.len().min(TABLE_CELL_MAX * 4));
    for (count, ch) in text.chars().enumerate() {
        if count >= TABLE_CELL_MAX {
            clean.pop();
            clean.push('…');
            break;
        }
        match ch {
            '\n' => clean.push_str("\\n"),
            '\r' => clean.push_str("\\r"),
            '\t' => clean.push_str("\\t"),
            c if c.is_control() => clean.push('?'),
            c => clean.push(c),
        }
    }
    Cell {
        text: clean,
        numeric,
    }
}

/// Column names left-aligned over a rule; numbers right-aligned.
fn write_table(out: &mut dyn Write, columns: &[String], rows: &[Vec<Cell>]) -> io::Result<()> {
    let header: Vec<table::Cell> = columns.iter().map(table::Cell::left).collect();
    let rows: Vec<Vec<table::Cell>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| {
                    if c.numeric {
                        table::Cell::right(&c.text)
                    } else {
                        table::Cell::left(&c.text)
                    }
                })
                .collect()
        })
        .collect();
    out.write_all(table::render(&header, true, &rows).as_bytes())
}

/// Hex for binary blobs in CSV/JSON: `\x` + lowercase hex (as PostgreSQL).
fn blob_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
    }
}

fn csv_value(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => blob_text(b),
    }
}

fn write_csv_row<'a>(out: &mut dyn Write, fields: impl Iterator<Item = &'a str>) -> io::Result<()> {
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
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

fn json_value(v: ValueRef<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(blob_text(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE t (id INTEGER, name TEXT, score REAL, data BLOB);
             INSERT INTO t VALUES (1, 'plain', 1.5, X'00ff10');
             INSERT INTO t VALUES (22, 'has,comma \"quoted\"', NULL, CAST('text blob' AS BLOB));
             INSERT INTO t VALUES (3, 'multi
line', -2.0, NULL);",
        )
        .unwrap();
        (dir, path)
    }

    fn run_str(path: &Path, f: Format, sql: &str) -> (u64, String) {
        let mut out = Vec::new();
        let n = run(path, f, sql, &mut out).unwrap();
        (n, String::from_utf8(out).unwrap())
    }

    const ALL: &str = "SELECT id, name, score, data FROM t ORDER BY rowid";

    #[test]
    fn table() {
        let (_d, p) = db();
        let (n, s) = run_str(&p, Format::Table, ALL);
        assert_eq!(n, 3);
        let want = "\
id  name                score  data
--  ------------------  -----  ---------
 1  plain                 1.5  <3 bytes>
22  has,comma \"quoted\"  NULL   text blob
 3  multi\\nline            -2  NULL
";
        assert_eq!(s, want);
    }

    #[test]
    fn table_aligns_wide_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE h (host TEXT, calls INTEGER);
                 INSERT INTO h VALUES ('東京.example', 7), ('🦀.rs', 12), ('plain.com', 100);",
            )
            .unwrap();
        let (_, s) = run_str(&path, Format::Table, "SELECT host, calls FROM h");
        assert_eq!(
            s,
            "\
host          calls
------------  -----
東京.example      7
🦀.rs            12
plain.com       100
"
        );
    }

    #[test]
    fn csv() {
        let (_d, p) = db();
        let (n, s) = run_str(&p, Format::Csv, ALL);
        assert_eq!(n, 3);
        assert_eq!(
            s,
            "id,name,score,data\r\n1,plain,1.5,\\x00ff10\r\n22,\"has,comma \"\"quoted\"\"\",,text blob\r\n3,\"multi\nline\",-2,\r\n"
        );
    }

    #[test]
    fn json_and_jsonl() {
        let (_d, p) = db();
        let (n, s) = run_str(&p, Format::Json, ALL);
        assert_eq!(n, 3);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v[0]["id"], 1);
        assert_eq!(v[0]["data"], "\\x00ff10");
        assert_eq!(v[1]["name"], "has,comma \"quoted\"");
        assert_eq!(v[1]["score"], serde_json::Value::Null);
        assert_eq!(v[2]["score"], -2.0);
        // Column order is kept.
        assert!(s.find("\"id\"").unwrap() < s.find("\"name\"").unwrap());

        let (_, s) = run_str(&p, Format::Json, "SELECT * FROM t WHERE 0");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&s).unwrap(),
            serde_json::json!([])
        );

        let (n, s) = run_str(&p, Format::Jsonl, ALL);
        assert_eq!(n, 3);
        let lines: Vec<serde_json::Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["name"], "multi\nline");
    }

    #[test]
    fn read_only_guarantee() {
        let (d, p) = db();
        for sql in [
            "DELETE FROM t",
            "DROP TABLE t",
            "INSERT INTO t(id) VALUES (9)",
            "CREATE TABLE x(a)",
            "PRAGMA user_version = 7",
        ] {
            let err = run(&p, Format::Csv, sql, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, QueryError::Sql(_)), "{sql}: {err}");
        }
        // ATTACH of another (writable) file, then write to it: still refused.
        let other = d.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE o(a)")
            .unwrap();
        let conn = open_read_only(&p).unwrap();
        conn.execute(&format!("ATTACH '{}' AS o", other.display()), [])
            .unwrap();
        assert!(conn.execute("INSERT INTO o.o VALUES (1)", []).is_err());
        drop(conn);
        let (_, s) = run_str(&p, Format::Csv, "SELECT count(*) AS n FROM t");
        assert_eq!(s, "n\r\n3\r\n");
        let n: i64 = Connection::open(&other)
            .unwrap()
            .query_row("SELECT count(*) FROM o", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn errors_are_clear() {
        let (d, p) = db();
        let missing = d.path().join("nope/qmon.db");
        let err = run(&missing, Format::Table, "SELECT 1", &mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("nope/qmon.db") && msg.contains("qmon record"),
            "{msg}"
        );

        let err = run(&p, Format::Table, "SELEC 1", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
        let err = run(&p, Format::Table, "SELECT nope FROM t", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no such column"), "{err}");
    }

    #[test]
    fn works_against_a_live_store() {
        use crate::sinks::store::{Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let h = store.handle();
        for i in 0..20 {
            h.send(crate::sinks::store::tests::sample_call(i, 1000 + i));
        }
        h.flush().unwrap();
        let mut out = Vec::new();
        let n = run(
            &path,
            Format::Jsonl,
            "SELECT route, status, json_extract(resp_body, '$.id') AS body_id FROM calls ORDER BY started_at LIMIT 2",
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"route\":\"/v1/items/{id}\",\"status\":200,\"body_id\":0}\n{\"route\":\"/v1/items/{id}\",\"status\":200,\"body_id\":1}\n"
        );
        // Writer continues while readers hold the file.
        h.send(crate::sinks::store::tests::sample_call(99, 5000));
        assert_eq!(store.flush_and_close().unwrap().written, 21);
    }

    #[test]
    fn readme_queries_run() {
        use crate::sinks::store::{Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        for i in 0..10 {
            store
                .handle()
                .send(crate::sinks::store::tests::sample_call(i, 1000 + i));
        }
        store.flush_and_close().unwrap();
        let readme = include_str!("../../schema/README.md");
        let mut ran = 0;
        for block in readme.split("```sql").skip(1) {
            let block = block.split("```").next().unwrap();
            for sql in block
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.starts_with("--"))
            {
                run(&path, Format::Csv, sql, &mut Vec::new())
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                ran += 1;
            }
        }
        assert!(ran >= 8, "{ran}");
    }
}
