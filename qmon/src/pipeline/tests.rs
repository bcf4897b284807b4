use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::capture::events::Origin;
use crate::capture::Source;
use crate::sinks::store::{read_recorder_status, Store, StoreOptions, StoreSink};
use qmon_protocols::Direction;

const PID: u32 = u32::MAX - 9; // no such process: metadata falls back to comm

fn origin(conn_id: u64, ts: u64) -> Origin {
    Origin {
        tgid: PID,
        tid: PID,
        fd: 5,
        conn_id,
        ts_ns: ts,
    }
}

fn open(conn_id: u64, comm: &str) -> CaptureEvent {
    CaptureEvent::ConnOpen {
        origin: origin(conn_id, 1),
        role: Role::Client,
        remote: Some("10.1.2.3:8080".parse().unwrap()),
        comm: comm.into(),
        cgroup_id: 1,
    }
}

fn data(conn_id: u64, dir: Direction, pos: u64, bytes: &[u8]) -> CaptureEvent {
    CaptureEvent::Data {
        origin: origin(conn_id, 10 + pos),
        source: Source::Syscall,
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

const REQ: &[u8] =
    b"GET /v1?token=abc HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer xyz\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// A response head that does not parse.
const BAD_RESP: &[u8] = b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok";

/// One exchange on connection `id`.
fn exchange(id: u64, comm: &str, resp: &[u8]) -> Vec<CaptureEvent> {
    vec![
        open(id, comm),
        data(id, Direction::Egress, 0, REQ),
        data(id, Direction::Ingress, 0, resp),
        close(id),
    ]
}

/// A process, and the sockets of it the kernel was told to forget.
type Forgotten = (u32, Vec<i32>);

/// What the pipeline asked of the kernel.
#[derive(Clone, Default)]
struct Recorded {
    muted: Arc<Mutex<Vec<(u32, i32, Mute)>>>,
    forgotten: Arc<Mutex<Vec<Forgotten>>>,
}

impl KernelControl for Recorded {
    fn mute(&self, tgid: u32, fd: i32, how: Mute) {
        self.muted.lock().unwrap().push((tgid, fd, how));
    }
    fn forget(&self, tgid: u32, fds: &[i32]) {
        self.forgotten.lock().unwrap().push((tgid, fds.to_vec()));
    }
}

/// The table's mutes and forgets reach the kernel: a connection that is
/// not HTTP is muted for syscalls, a process's exit forgets its sockets.
#[test]
fn table_effects_reach_the_kernel() {
    let kernel = Recorded::default();
    let mut p = Pipeline::new(ParserLimits::default(), Policy::default())
        .with_capture(kernel.clone(), Arc::default());
    p.feed(&open(1, "psql"));
    p.feed(&data(
        1,
        Direction::Egress,
        0,
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f startup",
    ));
    p.feed(&data(
        1,
        Direction::Ingress,
        0,
        b"R\x00\x00\x00\x08 more bytes",
    ));
    assert_eq!(*kernel.muted.lock().unwrap(), [(PID, 5, Mute::Syscall)]);
    p.feed(&CaptureEvent::ProcExit {
        origin: origin(0, 2000),
    });
    assert_eq!(*kernel.forgotten.lock().unwrap(), [(PID, vec![5])]);
}

/// Keeps what it is given; drops every call past `room` (counted).
#[derive(Clone, Default)]
struct Collect {
    calls: Arc<Mutex<Vec<Arc<Call>>>>,
    ticks: Arc<Mutex<Vec<Status>>>,
    room: Option<usize>,
    dropped: Arc<Mutex<u64>>,
}

impl Sink for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }
    fn calls(&mut self, calls: &[Arc<Call>]) {
        let mut kept = self.calls.lock().unwrap();
        for c in calls {
            if self.room.is_some_and(|r| kept.len() >= r) {
                *self.dropped.lock().unwrap() += 1;
            } else {
                kept.push(c.clone());
            }
        }
    }
    fn tick(&mut self, status: &Status) {
        self.ticks.lock().unwrap().push(status.clone());
    }
    fn dropped(&self) -> u64 {
        *self.dropped.lock().unwrap()
    }
}

fn pipeline_with(policy: Policy) -> (Pipeline, Collect) {
    let mut p = Pipeline::new(ParserLimits::default(), policy);
    let sink = Collect::default();
    p.add_sink(Box::new(sink.clone()));
    (p, sink)
}

#[test]
fn calls_reach_every_sink_redacted_and_in_scope() {
    let scope = Scope {
        exclude_comm: vec!["wget".into()],
        ..Scope::default()
    };
    let (mut p, sink) = pipeline_with(Policy {
        scope,
        redactor: Redactor::default(),
    });
    let second = Collect::default();
    p.add_sink(Box::new(second.clone()));
    // wget's connection is muted at open: the kernel sends none of its bytes.
    p.feed(&open(2, "wget"));
    for ev in exchange(1, "curl", RESP) {
        p.feed(&ev);
    }
    p.deliver();
    let calls = sink.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(second.calls.lock().unwrap().len(), 1);
    let c = &calls[0];
    assert_eq!(c.process.comm, "curl");
    assert_eq!(c.exchange.path.as_deref(), Some("/v1?token=[REDACTED:3]"));
    assert_eq!(
        c.exchange.req_header("authorization"),
        Some("Bearer [REDACTED:3]")
    );
    let st = p.status();
    assert_eq!((st.calls, st.out_of_scope_conns), (1, 1));
}

#[test]
fn a_new_policy_applies_to_later_calls() {
    let (mut p, sink) = pipeline_with(Policy::default());
    for ev in exchange(1, "curl", RESP) {
        p.feed(&ev);
    }
    p.set_policy(Policy {
        scope: Scope::default(),
        redactor: Redactor::disabled(),
    });
    for ev in exchange(2, "curl", RESP) {
        p.feed(&ev);
    }
    p.deliver();
    let paths: Vec<_> = sink
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.exchange.path.clone().unwrap())
        .collect();
    assert_eq!(paths, ["/v1?token=[REDACTED:3]", "/v1?token=abc"]);
}

/// Out-of-scope connections are muted in the kernel at open: the effect
/// reaches the table's caller, and nothing of them is parsed.
#[test]
fn out_of_scope_connections_are_muted_at_open() {
    let scope = Scope {
        include_comm: vec!["curl".into()],
        ..Scope::default()
    };
    let (p, sink) = pipeline_with(Policy {
        scope,
        redactor: Redactor::default(),
    });
    let kernel = Recorded::default();
    let mut p = p.with_capture(kernel.clone(), Arc::default());
    p.feed(&open(7, "python3"));
    p.feed(&open(8, "curl"));
    assert_eq!(
        *kernel.muted.lock().unwrap(),
        [(PID, 5, Mute::All)],
        "only the out-of-scope connection is muted"
    );
    assert_eq!(p.status().out_of_scope_conns, 1);
    assert_eq!(
        p.conn_stats().conns_opened,
        1,
        "python3's never reached the table"
    );
    for ev in &exchange(7, "python3", RESP)[1..] {
        p.feed(ev);
    }
    p.deliver();
    // Its data (had the kernel sent any) is adopted, parsed, and then left
    // out by the full check.
    assert!(sink.calls.lock().unwrap().is_empty());
}

/// `recorder_status.parse_errors` used to be read from the Prometheus
/// exporter's counter, so it stayed 0 with `--metrics-addr none`. The
/// pipeline counts it, whatever the sinks.
#[test]
fn parse_errors_are_counted_without_the_metrics_sink() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let opts = StoreOptions {
        batch_interval: Duration::from_millis(10),
        ..StoreOptions::default()
    };
    let cap = opts.queue_capacity;
    let store = Store::open(&db, opts).unwrap();
    let mut p = Pipeline::new(ParserLimits::default(), Policy::default());
    p.add_sink(Box::new(StoreSink::new(store, cap)));
    for ev in exchange(1, "curl", RESP)
        .iter()
        .chain(&exchange(2, "curl", BAD_RESP))
    {
        p.feed(ev);
    }
    let status = p.finish(None);
    assert_eq!(status.parse_errors, 1);
    let row = read_recorder_status(&db).unwrap().unwrap();
    assert_eq!((row.calls, row.parse_errors), (2, 1));
}

/// `recorder_status.queue_dropped` was hard-coded to 0 on the recorder's
/// side: now it is what every sink dropped, summed.
#[test]
fn queue_dropped_sums_every_sinks_drops() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let mut p = Pipeline::new(ParserLimits::default(), Policy::default());
    p.add_sink(Box::new(StoreSink::new(store, 16_384)));
    let tight = Collect {
        room: Some(1),
        ..Collect::default()
    };
    p.add_sink(Box::new(tight.clone()));
    for id in 1..=3 {
        for ev in exchange(id, "curl", RESP) {
            p.feed(&ev);
        }
    }
    let status = p.finish(None);
    assert_eq!(status.queue_dropped, 2);
    let row = read_recorder_status(&db).unwrap().unwrap();
    assert_eq!((row.calls, row.queue_dropped), (3, 2));
}

/// Each loss counter has one meaning: `lost_bytes` is the kernel's alone
/// (it used to add the gaps those same bytes caused), truncation and gaps
/// have their own.
#[test]
fn loss_counters_keep_their_meanings() {
    let stats = Arc::new(CaptureStats::default());
    stats.lost_events.store(1, Ordering::Relaxed);
    stats.lost_bytes.store(100, Ordering::Relaxed);
    stats.truncated_bytes.store(7, Ordering::Relaxed);
    let mut p = Pipeline::new(ParserLimits::default(), Policy::default());
    p.capture = Some(stats);
    // The 100 lost bytes come back as a gap in the stream.
    p.feed(&open(1, "curl"));
    p.feed(&data(1, Direction::Egress, 0, REQ));
    p.feed(&data(1, Direction::Ingress, 0, &RESP[..10]));
    p.feed(&data(1, Direction::Ingress, 110, &RESP[10..]));
    let st = p.status();
    let row = crate::sinks::store::status_counters(&st);
    assert_eq!(
        (row.lost_events, row.lost_bytes, row.truncated_bytes),
        (1, 100, 7)
    );
    assert_eq!((row.gaps, row.gap_bytes), (1, 100));
}

#[test]
fn ticks_give_sinks_the_counters() {
    let (mut p, sink) = pipeline_with(Policy::default());
    for ev in exchange(1, "curl", BAD_RESP) {
        p.feed(&ev);
    }
    p.tick(now_ns());
    let ticks = sink.ticks.lock().unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!((ticks[0].calls, ticks[0].parse_errors), (1, 1));
    assert_eq!(sink.calls.lock().unwrap().len(), 1, "tick delivers too");
}
