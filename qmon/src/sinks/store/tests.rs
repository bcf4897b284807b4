use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::*;
use crate::calls::{Body, CallError, ConnInfo, Exchange, GrpcInfo, ProcessInfo, Protocol, Timing};

pub(crate) fn sample_call(i: u64, started_at_ns: u64) -> Call {
    let mut ex = Exchange::new(Protocol::Http11);
    ex.method = Some("GET".into());
    ex.authority = Some("api.example.com".into());
    ex.path = Some(format!("/v1/items/{i}?api_key=secret&page=2"));
    ex.status = Some(200);
    ex.req_headers = vec![
        ("Host".into(), "api.example.com".into()),
        ("Authorization".into(), "Bearer xyz".into()),
        ("Accept".into(), "application/json".into()),
    ];
    ex.resp_headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("Vary".into(), "Accept".into()),
        ("Vary".into(), "Origin".into()),
        ("Set-Cookie".into(), "a=1".into()),
        ("Set-Cookie".into(), "b=22".into()),
    ];
    let mut resp = Body::default();
    resp.push(format!("{{\"id\":{i}}}").as_bytes(), 4096);
    ex.resp_body = resp;
    ex.timing = Timing {
        req_first_ns: started_at_ns,
        req_last_ns: started_at_ns + 10,
        resp_first_ns: Some(started_at_ns + 1_000),
        resp_last_ns: Some(started_at_ns + 5_000),
    };
    Call {
        process: ProcessInfo {
            pid: 4242,
            comm: "curl".into(),
            exe: Some("/usr/bin/curl".into()),
            args: vec!["curl".into(), "https://api.example.com".into()],
            container_id: None,
        }
        .into(),
        conn: ConnInfo {
            conn_id: 77,
            remote: Some("93.184.216.34:443".parse().unwrap()),
            tls: true,
            tls_lib: Some("openssl".into()),
        },
        exchange: ex,
        host: "api.example.com".into(),
        port: Some(443),
        route: Some("/v1/items/{id}".into()),
    }
}

/// A call as the pipeline hands it on: redacted by the default policy.
fn redacted(mut call: Call) -> Call {
    crate::calls::redact::CallRedactor::default().redact(&mut call);
    call
}

fn opts() -> StoreOptions {
    StoreOptions {
        batch_interval: Duration::from_millis(20),
        ..StoreOptions::default()
    }
}

fn reader(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap()
}

fn wait_for(mut cond: impl FnMut() -> bool, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn insert_and_read_back_through_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(&path, opts()).unwrap();
    let h = store.handle();
    let t0 = 1_700_000_000_000_000_000;
    assert!(h.send(redacted(sample_call(1, t0))));

    // A gzip'd JSON response, a gRPC call with an error, and a binary body.
    let mut gz = sample_call(2, t0 + 1);
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(br#"{"name":"zipped"}"#).unwrap();
    let wire = enc.finish().unwrap();
    gz.exchange.resp_body = Body::default();
    gz.exchange.resp_body.push(&wire, 4096);
    gz.exchange
        .resp_headers
        .push(("Content-Encoding".into(), "gzip".into()));
    assert!(h.send(redacted(gz)));

    let mut grpc = sample_call(3, t0 + 2);
    grpc.exchange.protocol = Protocol::Http2;
    grpc.exchange.stream_id = Some(5);
    grpc.exchange.grpc = Some(GrpcInfo {
        status: Some(14),
        message: Some("unavailable".into()),
        ..GrpcInfo::default()
    });
    grpc.exchange.resp_trailers = vec![("grpc-status".into(), "14".into())];
    grpc.exchange.error = Some(CallError::Reset(8));
    grpc.exchange.timing.resp_first_ns = None;
    grpc.exchange.timing.resp_last_ns = None;
    grpc.exchange.resp_body = Body {
        captured: vec![0, 159, 146, 150],
        total: 10,
        truncated: true,
    };
    std::sync::Arc::make_mut(&mut grpc.process).container_id = Some("abc123".into());
    assert!(h.send(redacted(grpc)));

    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.written, 3);
    assert_eq!(stats.queue_dropped, 0);

    let c = reader(&path);
    let row = c
        .query_row(
            "SELECT started_at, pid, comm, exe, container_id, protocol, tls, method, host, port,
                    remote_addr, path, route, status, grpc_status,
                    json_extract(req_headers, '$.authorization'),
                    json_extract(resp_headers, '$.vary'),
                    json_extract(resp_headers, '$.\"set-cookie\"'),
                    json_extract(resp_body, '$.id'), req_bytes, resp_bytes, ttfb_ns, duration_ns,
                    error, req_body, tls_lib, conn_id, cmdline, resp_trailers, stream_id
             FROM calls WHERE started_at = ?1",
            [t0 as i64],
            |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, i64>(9)?,
                    ),
                    (
                        r.get::<_, String>(10)?,
                        r.get::<_, String>(11)?,
                        r.get::<_, String>(12)?,
                        r.get::<_, i64>(13)?,
                        r.get::<_, Option<i64>>(14)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, String>(16)?,
                        r.get::<_, String>(17)?,
                        r.get::<_, i64>(18)?,
                        r.get::<_, i64>(19)?,
                    ),
                    (
                        r.get::<_, i64>(20)?,
                        r.get::<_, i64>(21)?,
                        r.get::<_, i64>(22)?,
                        r.get::<_, Option<String>>(23)?,
                        r.get::<_, Option<Vec<u8>>>(24)?,
                        r.get::<_, String>(25)?,
                        r.get::<_, i64>(26)?,
                        r.get::<_, String>(27)?,
                        r.get::<_, Option<String>>(28)?,
                        r.get::<_, Option<i64>>(29)?,
                    ),
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row.0,
        (
            t0 as i64,
            4242,
            "curl".into(),
            "/usr/bin/curl".into(),
            None,
            "HTTP/1.1".into(),
            1,
            "GET".into(),
            "api.example.com".into(),
            443
        )
    );
    assert_eq!(
        row.1,
        (
            "93.184.216.34:443".into(),
            "/v1/items/1?api_key=[REDACTED:6]&page=2".into(),
            "/v1/items/{id}".into(),
            200,
            None,
            "Bearer [REDACTED:3]".into(),
            "Accept, Origin".into(),
            "[REDACTED:3]\n[REDACTED:4]".into(),
            1,
            0
        )
    );
    assert_eq!(
        row.2,
        (
            8,
            1000,
            5000,
            None,
            None,
            "openssl".into(),
            77,
            "curl https://api.example.com".into(),
            None,
            None
        )
    );

    let (body, decoded, bytes): (String, i64, i64) = c
        .query_row(
            "SELECT resp_body, resp_body_decoded, resp_bytes FROM calls WHERE started_at = ?1",
            [t0 as i64 + 1],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(body, r#"{"name":"zipped"}"#);
    assert_eq!(decoded, 1);
    assert_eq!(bytes, wire.len() as i64, "resp_bytes counts wire bytes");

    let g = c
        .query_row(
            "SELECT protocol, stream_id, grpc_status, grpc_message, error, ttfb_ns, duration_ns,
                    resp_body, resp_body_truncated, resp_bytes, container_id,
                    json_extract(resp_trailers, '$.\"grpc-status\"')
             FROM calls WHERE started_at = ?1",
            [t0 as i64 + 2],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        g,
        (
            "HTTP/2".into(),
            5,
            14,
            "unavailable".into(),
            "reset:8".into(),
            None,
            None,
            vec![0, 159, 146, 150],
            1,
            10,
            "abc123".into(),
            "14".into()
        )
    );

    // One process row for the two identical processes, one for the container.
    let procs: i64 = c
        .query_row("SELECT count(*) FROM processes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(procs, 2);
}

#[test]
fn files_are_private_and_pragmas_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/q.db");
    let store = Store::open(&path, opts()).unwrap();
    store.handle().send(sample_call(1, 1));
    store.handle().flush().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
    }
    let c = reader(&path);
    let av: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(av, 2, "auto_vacuum=INCREMENTAL");
    let jm: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    drop(store);

    // Reopening keeps the data and the schema.
    let store = Store::open(&path, opts()).unwrap();
    store.flush_and_close().unwrap();
    assert_eq!(count(&reader(&path)), 1);
}

#[test]
fn queue_overflow_is_counted_not_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(
        &path,
        StoreOptions {
            queue_capacity: 4,
            batch_rows: 1,
            busy_timeout: Duration::from_secs(10),
            ..opts()
        },
    )
    .unwrap();
    let h = store.handle();
    // Hold the write lock so the writer stalls on its first commit.
    let blocker = reader(&path);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    h.send(sample_call(0, 1));
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    for i in 1..100 {
        h.send(sample_call(i, i + 1));
    }
    assert!(start.elapsed() < Duration::from_secs(1), "send blocked");
    blocker.execute_batch("COMMIT").unwrap();
    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.queued + stats.queue_dropped, 100);
    assert!(stats.queue_dropped >= 90, "{stats:?}");
    assert_eq!(stats.written, stats.queued);
    assert_eq!(count(&reader(&path)), stats.written as i64);
}

#[test]
fn batches_commit_on_interval_and_on_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(
        &path,
        StoreOptions {
            batch_rows: 10,
            batch_interval: Duration::from_millis(300),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let h = store.handle();
    let c = reader(&path);

    let sent = Instant::now();
    h.send(sample_call(0, 1));
    assert!(wait_for(|| count(&c) == 1, Duration::from_secs(2)));
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "committed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1000),
        "committed after {waited:?}"
    );

    // A full batch commits at once, well before the interval.
    let sent = Instant::now();
    for i in 1..=10 {
        h.send(sample_call(i, i + 1));
    }
    assert!(wait_for(|| count(&c) == 11, Duration::from_secs(2)));
    assert!(
        sent.elapsed() < Duration::from_millis(250),
        "{:?}",
        sent.elapsed()
    );
    store.flush_and_close().unwrap();
}

#[test]
fn flush_and_close_commits_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(
        &path,
        StoreOptions {
            batch_rows: 100_000,
            batch_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for i in 0..500 {
        assert!(store.handle().send(sample_call(i, i)));
    }
    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.written, 500);
    assert_eq!(count(&reader(&path)), 500);
}

#[test]
fn write_failures_drop_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(50),
            ..opts()
        },
    )
    .unwrap();
    let h = store.handle();
    h.send(sample_call(0, 1));
    h.flush().unwrap();

    let blocker = reader(&path);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 1..=5 {
        h.send(sample_call(i, i + 1));
    }
    h.flush().unwrap();
    assert_eq!(h.stats().write_dropped, 5);
    blocker.execute_batch("COMMIT").unwrap();

    for i in 6..=8 {
        h.send(sample_call(i, i + 1));
    }
    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.written, 4);
    assert_eq!(stats.write_dropped, 5);
    assert_eq!(count(&reader(&path)), 4, "nothing committed was lost");
    let st = read_recorder_status(&path).unwrap().unwrap();
    assert_eq!(st.write_dropped, 5);
}

#[test]
fn recorder_status_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(&path, opts()).unwrap();
    let h = store.handle();
    h.update_status(StatusCounters {
        events: 10,
        lost_events: 1,
        lost_bytes: 2,
        calls: 3,
        queue_dropped: 4,
        parse_errors: 5,
        ..StatusCounters::default()
    });
    h.flush().unwrap();
    let st = read_recorder_status(&path).unwrap().unwrap();
    assert_eq!(st.pid, std::process::id());
    assert_eq!(
        (
            st.events,
            st.lost_events,
            st.lost_bytes,
            st.calls,
            st.queue_dropped,
            st.parse_errors
        ),
        (10, 1, 2, 3, 4, 5)
    );
    assert!(st.is_live(now_ns()));
    assert!(st.updated_at_ns >= st.started_at_ns);
    assert!(!st.is_live(st.updated_at_ns + 60_000_000_000));
    store.flush_and_close().unwrap();
}

#[test]
fn retention_by_age_deletes_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let now = now_ns();
    let day = 86_400_000_000_000u64;
    let store = Store::open(
        &path,
        StoreOptions {
            retention: Retention {
                max_age: Some(Duration::from_secs(86_400)),
                interval: Duration::from_millis(50),
                delete_batch: 7,
                ..Retention::default()
            },
            ..opts()
        },
    )
    .unwrap();
    let h = store.handle();
    for i in 0..50 {
        h.send(sample_call(i, now - 2 * day - i));
    }
    for i in 0..10 {
        h.send(sample_call(100 + i, now - i));
    }
    h.flush().unwrap();
    let c = reader(&path);
    assert!(wait_for(|| count(&c) == 10, Duration::from_secs(5)));
    let oldest: i64 = c
        .query_row("SELECT min(started_at) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert!(oldest as u64 > now - day);
    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.retention_deleted, 50);
}

#[test]
fn retention_by_size_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let big = |i: u64| {
        let mut c = sample_call(i, 1_000 + i);
        c.exchange.resp_body = Body::default();
        c.exchange.resp_body.push(&vec![b'x'; 4000], 4096);
        c
    };
    let store = Store::open(&path, opts()).unwrap();
    for i in 0..1000 {
        assert!(store.handle().send(big(i)));
        if i % 200 == 0 {
            store.handle().flush().unwrap();
        }
    }
    store.flush_and_close().unwrap();
    let c = reader(&path);
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    assert!(before > 4_000_000, "{before}");

    let max = 1_000_000;
    let store = Store::open(
        &path,
        StoreOptions {
            retention: Retention {
                max_db_size: Some(max),
                interval: Duration::from_millis(50),
                delete_batch: 50,
                ..Retention::default()
            },
            ..opts()
        },
    )
    .unwrap();
    let freelist = |c: &Connection| -> i64 {
        c.query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap()
    };
    assert!(wait_for(
        || retention::used_bytes(&c).unwrap() <= max && freelist(&c) == 0,
        Duration::from_secs(10)
    ));
    // Newest rows are the ones kept.
    let min_id: i64 = c
        .query_row("SELECT min(started_at) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert!(min_id > 1_000 + 500);
    store.flush_and_close().unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before / 2, "file {before} → {after}");
}

#[test]
fn read_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(
        &path,
        StoreOptions {
            batch_rows: 50,
            ..opts()
        },
    )
    .unwrap();
    let h = store.handle();
    let writer = std::thread::spawn(move || {
        for i in 0..3000 {
            while !h.send(sample_call(i, i)) {
                std::thread::yield_now();
            }
        }
    });
    let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut last = 0;
    let mut reads = 0;
    while !writer.is_finished() || reads < 5 {
        let n = count(&c);
        assert!(n >= last, "count went backwards");
        last = n;
        reads += 1;
    }
    writer.join().unwrap();
    let stats = store.flush_and_close().unwrap();
    assert_eq!(stats.written, 3000);
    assert_eq!(count(&c), 3000);
}
