use super::*;
use crate::capture::events::Origin;

const PID: u32 = u32::MAX - 7; // no such process: metadata falls back to comm

fn origin(conn_id: u64, ts: u64) -> Origin {
    Origin {
        tgid: PID,
        tid: PID,
        fd: 5,
        conn_id,
        ts_ns: ts,
    }
}

fn open(conn_id: u64, role: Role) -> CaptureEvent {
    CaptureEvent::ConnOpen {
        origin: origin(conn_id, 1),
        role,
        remote: Some("10.1.2.3:8080".parse().unwrap()),
        comm: "curl".into(),
        cgroup_id: 1,
    }
}

fn data(conn_id: u64, source: Source, dir: Direction, pos: u64, bytes: &[u8]) -> CaptureEvent {
    CaptureEvent::Data {
        origin: origin(conn_id, 10 + pos),
        source,
        dir,
        pos: Some(pos),
        call_len: bytes.len() as u64,
        ssl: 0,
        bytes: bytes.to_vec(),
    }
}

fn close(conn_id: u64) -> CaptureEvent {
    CaptureEvent::ConnClose {
        origin: origin(conn_id, 1000),
    }
}

const REQ: &[u8] = b"GET /users/12345?token=x HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn run(events: Vec<CaptureEvent>) -> (ConnTable, Vec<Call>) {
    let mut t = ConnTable::new(ParserLimits::default(), None);
    let mut calls = Vec::new();
    for e in events {
        t.on_event(e, &mut calls);
    }
    (t, calls)
}

#[test]
fn plaintext_exchange_becomes_a_call() {
    let (t, calls) = run(vec![
        open(1, Role::Client),
        data(1, Source::Syscall, Direction::Egress, 0, REQ),
        data(1, Source::Syscall, Direction::Ingress, 0, RESP),
        close(1),
    ]);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.process.pid, PID);
    assert_eq!(c.process.comm, "curl");
    assert_eq!(c.host, "api.example.com");
    assert_eq!(c.port, Some(8080));
    assert_eq!(c.exchange.method.as_deref(), Some("GET"));
    assert_eq!(c.exchange.status, Some(200));
    assert_eq!(c.exchange.scheme.as_deref(), Some("http"));
    assert!(!c.conn.tls);
    assert_eq!(c.conn.remote, Some("10.1.2.3:8080".parse().unwrap()));
    assert_eq!(c.route.as_deref(), Some("/users/{id}"));
    assert_eq!(t.stats.http1_conns, 1);
    assert!(t.is_empty());
}

#[test]
fn request_split_across_events_is_detected() {
    let (_, calls) = run(vec![
        open(1, Role::Client),
        data(1, Source::Syscall, Direction::Egress, 0, &REQ[..2]),
        data(1, Source::Syscall, Direction::Egress, 2, &REQ[2..]),
        data(1, Source::Syscall, Direction::Ingress, 0, RESP),
        close(1),
    ]);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].exchange.path.as_deref(),
        Some("/users/12345?token=x")
    );
}

#[test]
fn tls_plaintext_replaces_syscall_bytes() {
    let (_, calls) = run(vec![
        open(1, Role::Client),
        // Handshake bytes that slipped through as syscall data.
        data(
            1,
            Source::Syscall,
            Direction::Egress,
            0,
            b"\x16\x03\x01\x02\x00\x01",
        ),
        data(1, Source::OpenSsl, Direction::Egress, 0, REQ),
        data(
            1,
            Source::Syscall,
            Direction::Ingress,
            0,
            b"\x17\x03\x03garbage",
        ),
        data(1, Source::OpenSsl, Direction::Ingress, 0, RESP),
        close(1),
    ]);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].conn.tls);
    assert_eq!(calls[0].exchange.scheme.as_deref(), Some("https"));
    assert_eq!(calls[0].exchange.status, Some(200));
}

#[test]
fn position_gap_marks_the_call() {
    let (t, calls) = run(vec![
        open(1, Role::Client),
        data(1, Source::Syscall, Direction::Egress, 0, REQ),
        data(1, Source::Syscall, Direction::Ingress, 0, &RESP[..20]),
        // 10 bytes lost in between.
        data(1, Source::Syscall, Direction::Ingress, 30, &RESP[30..]),
        close(1),
    ]);
    assert_eq!(t.stats.gaps, 1);
    assert_eq!(t.stats.gap_bytes, 10);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].exchange.error.is_some(), "{:?}", calls[0].exchange);
}

#[test]
fn non_http_is_switched_off() {
    let (t, calls) = run(vec![
        open(1, Role::Client),
        data(
            1,
            Source::Syscall,
            Direction::Egress,
            0,
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f postgres startup",
        ),
        data(
            1,
            Source::Syscall,
            Direction::Ingress,
            0,
            b"R\x00\x00\x00\x08",
        ),
        close(1),
    ]);
    assert!(calls.is_empty());
    assert_eq!(t.stats.not_http, 1);
}

#[test]
fn server_side_is_never_recorded() {
    let (t, calls) = run(vec![
        // Accepted: the kernel labels it and mutes it, so no data follows.
        open(1, Role::Server),
        // A pre-existing connection whose role the kernel could not know.
        open(2, Role::Unknown),
        data(2, Source::Syscall, Direction::Ingress, 0, REQ),
        data(2, Source::Syscall, Direction::Egress, 0, RESP),
        close(2),
    ]);
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(t.stats.server_conns, 2);
}

#[test]
fn process_exit_flushes_pending_as_incomplete() {
    let (t, calls) = run(vec![
        open(1, Role::Client),
        data(1, Source::Syscall, Direction::Egress, 0, REQ),
        CaptureEvent::ProcExit {
            origin: origin(0, 2000),
        },
    ]);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].exchange.error,
        Some(crate::calls::CallError::Incomplete)
    );
    assert!(t.is_empty());
}

#[test]
fn table_stays_bounded() {
    let mut t = ConnTable::new(ParserLimits::default(), None);
    t.set_max_conns(10);
    let mut calls = Vec::new();
    for id in 1..=100 {
        t.on_event(open(id, Role::Client), &mut calls);
        t.on_event(
            data(id, Source::Syscall, Direction::Egress, 0, REQ),
            &mut calls,
        );
    }
    assert!(t.len() <= 10);
    assert_eq!(t.stats.evicted, 90);
    // Evicted connections still report their pending request.
    assert_eq!(calls.len(), 90);
}

#[test]
fn idle_connections_are_swept() {
    let (mut t, _) = run(vec![open(1, Role::Client)]);
    let mut calls = Vec::new();
    t.sweep(1 + 301_000_000_000, &mut calls);
    assert!(t.is_empty());
}

#[test]
fn host_and_port_from_authority_or_remote() {
    let r = Some("192.0.2.1:443".parse().unwrap());
    assert_eq!(
        host_port(Some("API.example.com"), r),
        ("api.example.com".into(), Some(443))
    );
    assert_eq!(
        host_port(Some("example.com:8443"), r),
        ("example.com".into(), Some(8443))
    );
    assert_eq!(host_port(Some("[::1]:9000"), r), ("::1".into(), Some(9000)));
    assert_eq!(host_port(Some("[::1]"), r), ("::1".into(), Some(443)));
    assert_eq!(host_port(None, r), ("192.0.2.1".into(), Some(443)));
    assert_eq!(
        host_port(Some("u:p@h.example:81"), r),
        ("h.example".into(), Some(81))
    );
    assert_eq!(host_port(Some("h:notaport"), r), ("h".into(), Some(443)));
    assert_eq!(host_port(None, None), (String::new(), None));
}
