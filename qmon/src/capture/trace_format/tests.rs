use serde_json::json;

use super::*;

fn o(tgid: u32, tid: u32, fd: i32, conn_id: u64, ts_ns: u64) -> Origin {
    Origin {
        tgid,
        tid,
        fd,
        conn_id,
        ts_ns,
    }
}

/// One event of every kind, each with every field the format carries set.
fn every_kind() -> Vec<CaptureEvent> {
    vec![
        CaptureEvent::ConnOpen {
            origin: o(7, 8, 3, 9, 5),
            role: Role::Client,
            remote: Some("[::1]:8443".parse().unwrap()),
            comm: "curl".into(),
            cgroup_id: 42,
        },
        CaptureEvent::ConnOpen {
            origin: o(7, 7, 4, 10, 5),
            role: Role::Unknown,
            remote: None,
            comm: String::new(),
            cgroup_id: 0,
        },
        CaptureEvent::Data {
            origin: o(7, 8, 3, 9, 6),
            source: Source::OpenSsl,
            dir: Direction::Ingress,
            pos: None,
            call_len: 20_000,
            ssl: 11,
            bytes: b"\x00\xffhello\r\n".to_vec(),
        },
        CaptureEvent::Data {
            origin: o(7, 8, -1, 0, 6),
            source: Source::Syscall,
            dir: Direction::Egress,
            pos: Some(16384),
            call_len: 0,
            ssl: 0,
            bytes: Vec::new(),
        },
        CaptureEvent::ConnClose {
            origin: o(7, 7, 3, 9, 7),
        },
        CaptureEvent::Exec {
            origin: o(7, 7, -1, 0, 1),
            path: "/usr/bin/curl".into(),
            comm: "curl".into(),
            cgroup_id: 0,
        },
        CaptureEvent::LibOpen {
            origin: o(7, 7, 5, 0, 2),
            path: "/usr/lib/libssl.so.3".into(),
        },
        CaptureEvent::ProcExit {
            origin: o(7, 7, -1, 0, 8),
        },
    ]
}

#[test]
fn every_event_survives_a_round_trip() {
    for ev in every_kind() {
        let line = TraceRecord::from(&ev).to_line();
        assert!(!line.contains('\n'), "{line}");
        let back = TraceRecord::from_line(&line, 1)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .into_event();
        assert_eq!(back.as_ref(), Some(&ev), "{line}");
    }
}

/// The field names and encodings `qmon trace` has always written (the
/// objects the hand-written encoder built), compared as JSON values.
#[test]
fn the_wire_format_is_unchanged() {
    let evs = every_kind();
    let want = [
        json!({"type": "conn", "pid": 7, "tid": 8, "fd": 3, "conn_id": 9, "role": "client",
               "remote": "[::1]:8443", "comm": "curl", "cgroup_id": 42, "ts": 5}),
        json!({"type": "conn", "pid": 7, "tid": 7, "fd": 4, "conn_id": 10, "role": "unknown",
               "remote": null, "comm": "", "cgroup_id": 0, "ts": 5}),
        json!({"type": "data", "pid": 7, "tid": 8, "fd": 3, "conn_id": 9, "source": "openssl",
               "dir": "ingress", "pos": null, "len": 9, "call_len": 20000, "ssl": 11,
               "data_b64": "AP9oZWxsbw0K", "ts": 6}),
        json!({"type": "data", "pid": 7, "tid": 8, "fd": -1, "conn_id": 0, "source": "syscall",
               "dir": "egress", "pos": 16384, "len": 0, "call_len": 0, "ssl": 0,
               "data_b64": "", "ts": 6}),
        json!({"type": "close", "pid": 7, "fd": 3, "conn_id": 9, "ts": 7}),
        json!({"type": "exec", "pid": 7, "path": "/usr/bin/curl", "comm": "curl", "ts": 1}),
        json!({"type": "lib_open", "pid": 7, "path": "/usr/lib/libssl.so.3", "fd": 5, "ts": 2}),
        json!({"type": "exit", "pid": 7, "ts": 8}),
    ];
    assert_eq!(evs.len(), want.len());
    for (ev, want) in evs.iter().zip(want) {
        let got: serde_json::Value =
            serde_json::from_str(&TraceRecord::from(ev).to_line()).unwrap();
        assert_eq!(got, want);
    }
    let attach = TraceRecord::Attach(AttachRecord {
        path: "/usr/lib/libssl.so.3".into(),
        inode: 99,
        pid: Some(1),
    });
    assert_eq!(
        serde_json::to_value(&attach).unwrap(),
        json!({"type": "attach", "path": "/usr/lib/libssl.so.3", "inode": 99, "pid": 1})
    );
    let stats = TraceRecord::Stats(StatsRecord {
        events: 1,
        lost_events: 2,
        lost_bytes: 3,
        truncated_bytes: 4,
        decode_errors: 5,
        libs_attached: 6,
    });
    assert_eq!(
        serde_json::to_value(&stats).unwrap(),
        json!({"type": "stats", "events": 1, "lost_events": 2, "lost_bytes": 3,
               "truncated_bytes": 4, "decode_errors": 5, "libs_attached": 6})
    );
}

const BENCH_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/data/https-1k.jsonl");

/// The first lines of the committed recording `bench/data/https-1k.jsonl`.
const COMMITTED_CONN: &str = r#"{"cgroup_id":1,"comm":"python3","conn_id":4328376523616,"fd":8,"pid":13236,"remote":"127.0.0.1:18443","role":"client","tid":13236,"ts":1795273394665106611,"type":"conn"}"#;
const COMMITTED_DATA: &str = r#"{"call_len":70,"conn_id":4328376523616,"data_b64":"R0VUIC8xayBIVFRQLzEuMQ0KSG9zdDogMTI3LjAuMC4xOjE4NDQzDQpBY2NlcHQtRW5jb2Rpbmc6IGlkZW50aXR5DQoNCg==","dir":"egress","fd":8,"len":70,"pid":13236,"pos":0,"source":"openssl","ssl":45640768,"tid":13236,"ts":1795273394668388891,"type":"data"}"#;
const COMMITTED_CLOSE: &str =
    r#"{"conn_id":4328376523616,"fd":8,"pid":13236,"ts":1795273394706467897,"type":"close"}"#;

#[test]
fn committed_lines_decode_and_reencode_to_the_same_json() {
    let text = std::fs::read_to_string(BENCH_DATA).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(COMMITTED_CONN));
    assert_eq!(lines.next(), Some(COMMITTED_DATA));
    assert!(text.lines().any(|l| l == COMMITTED_CLOSE));

    match TraceRecord::from_line(COMMITTED_CONN, 1).unwrap() {
        TraceRecord::Conn(c) => {
            assert_eq!((c.pid, c.tid, c.fd), (13236, Some(13236), 8));
            assert_eq!(c.conn_id, 4328376523616);
            assert_eq!(c.role, "client");
            assert_eq!(c.remote_port(), Some(18443));
            assert_eq!(c.comm.as_deref(), Some("python3"));
        }
        other => panic!("{other:?}"),
    }
    match TraceRecord::from_line(COMMITTED_DATA, 2).unwrap() {
        TraceRecord::Data(d) => {
            assert_eq!(
                (d.source, d.dir, d.pos),
                (TraceSource::OpenSsl, TraceDir::Egress, Some(0))
            );
            assert_eq!(d.len, 70);
            assert_eq!(d.ssl, 45640768);
            assert!(d
                .bytes
                .starts_with(b"GET /1k HTTP/1.1\r\nHost: 127.0.0.1:18443\r\n"));
        }
        other => panic!("{other:?}"),
    }
    for line in [COMMITTED_CONN, COMMITTED_DATA, COMMITTED_CLOSE] {
        let again = TraceRecord::from_line(line, 1).unwrap().to_line();
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(line).unwrap(),
            serde_json::from_str(&again).unwrap(),
        );
        assert_eq!(a, b, "re-encoded {line}");
    }
}

#[test]
fn the_whole_committed_recording_decodes() {
    let text = std::fs::read_to_string(BENCH_DATA).unwrap();
    let records = parse_lines(text.lines()).unwrap();
    assert_eq!(records.len(), 3030);
    let events: Vec<CaptureEvent> = records
        .into_iter()
        .filter_map(TraceRecord::into_event)
        .collect();
    assert_eq!(events.len(), 3030);
    for ev in &events {
        if let CaptureEvent::Data {
            bytes, call_len, ..
        } = ev
        {
            assert!(bytes.len() as u64 <= *call_len);
        }
    }
}

#[test]
fn a_malformed_line_is_one_error_naming_its_line() {
    let ok = r#"{"type":"exit","pid":1,"ts":2}"#;
    let cases = [
        (
            "nope",
            "line 3: not a qmon trace record: expected ident (column 2)",
        ),
        (
            r#"{"type":"exit","pid":1,"ts":2"#,
            "line 3: not a qmon trace record: EOF while parsing an object (column 29)",
        ),
        (
            r#"{"type":"conn","pid":1}"#,
            "line 3: not a qmon trace record: missing field `fd`",
        ),
        (
            r#"{"pid":1}"#,
            "line 3: not a qmon trace record: missing field `type` (column 9)",
        ),
    ];
    for (bad, want) in cases {
        let err = parse_lines([ok, "", bad, ok]).unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.to_string(), want);
    }
    let bad_b64 = r#"{"type":"data","pid":1,"fd":3,"conn_id":1,"source":"syscall","dir":"egress","pos":0,"len":1,"call_len":1,"data_b64":"!!","ts":1}"#;
    let err = parse_lines([bad_b64]).unwrap_err();
    assert_eq!(err.line, 1);
    assert!(err.to_string().contains("data_b64: "), "{err}");
    let bad_dir = r#"{"type":"data","pid":1,"fd":3,"conn_id":1,"source":"syscall","dir":"up","pos":0,"len":1,"call_len":1,"data_b64":"","ts":1}"#;
    let err = parse_lines([bad_dir]).unwrap_err();
    assert!(err.to_string().contains("unknown variant `up`"), "{err}");
}

#[test]
fn unknown_types_are_skipped_and_optional_fields_default() {
    assert_eq!(
        TraceRecord::from_line(r#"{"type":"something_new","x":1}"#, 1).unwrap(),
        TraceRecord::Other
    );
    assert_eq!(TraceRecord::Other.into_event(), None);
    // Older or hand-written lines: no tid, comm, remote, cgroup, ssl, or
    // the two newer stats counters.
    let conn = r#"{"type":"conn","pid":7,"fd":3,"conn_id":9,"role":"whatever","ts":5}"#;
    assert_eq!(
        TraceRecord::from_line(conn, 1).unwrap().into_event(),
        Some(CaptureEvent::ConnOpen {
            origin: o(7, 7, 3, 9, 5),
            role: Role::Unknown,
            remote: None,
            comm: String::new(),
            cgroup_id: 0,
        })
    );
    let stats =
        r#"{"type":"stats","events":4,"lost_events":2,"lost_bytes":10,"truncated_bytes":0}"#;
    match TraceRecord::from_line(stats, 1).unwrap() {
        TraceRecord::Stats(s) => assert_eq!((s.lost_events, s.libs_attached), (2, 0)),
        other => panic!("{other:?}"),
    }
}
