//! Store write throughput: 200k synthetic calls with 1 KiB bodies through
//! `StoreHandle` into a temp database. Not a timed test; prints calls/s.
//!
//!     cargo bench -p qmon --bench store
//!     REQ_BODY=0 RESP_BODY=4096 cargo bench -p qmon --bench store
//!
//! REQ_BODY / RESP_BODY set the body sizes (bytes); TMPDIR picks the
//! database's directory (/dev/shm matches bench/*.sh).

use std::time::Instant;

use qmon::calls::{Body, Call, ConnInfo, Exchange, ProcessInfo, Protocol, Timing};
use qmon::sinks::store::{Store, StoreOptions};

const CALLS: u64 = 200_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn call(i: u64, req_len: usize, resp_len: usize) -> Call {
    let mut ex = Exchange::new(Protocol::Http11);
    ex.method = Some("POST".into());
    ex.authority = Some("api.example.com".into());
    ex.path = Some(format!("/v1/orders/{i}?page=1"));
    ex.status = Some(200);
    ex.req_headers = vec![
        ("Host".into(), "api.example.com".into()),
        ("Authorization".into(), "Bearer abcdefghijklmnop".into()),
        ("Content-Type".into(), "application/json".into()),
    ];
    ex.resp_headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("Content-Length".into(), resp_len.to_string()),
    ];
    let mut req = Body::default();
    req.push(&vec![b'x'; req_len], 4096);
    let mut resp = Body::default();
    resp.push(&vec![b'y'; resp_len], 4096);
    ex.req_body = req;
    ex.resp_body = resp;
    let t = 1_700_000_000_000_000_000 + i * 1_000_000;
    ex.timing = Timing {
        req_first_ns: t,
        req_last_ns: t + 10_000,
        resp_first_ns: Some(t + 500_000),
        resp_last_ns: Some(t + 900_000),
    };
    Call {
        process: ProcessInfo {
            pid: 1000 + (i % 8) as u32,
            comm: "bench".into(),
            exe: Some("/usr/bin/bench".into()),
            args: vec!["bench".into(), "--flag".into()],
            container_id: None,
        }
        .into(),
        conn: ConnInfo {
            conn_id: i / 100,
            remote: Some("10.0.0.1:443".parse().unwrap()),
            tls: true,
            tls_lib: Some("openssl".into()),
        },
        exchange: ex,
        host: "api.example.com".into(),
        port: Some(443),
        route: Some("/v1/orders/{id}".into()),
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("qmon-bench-{}", std::process::id()));
    let path = dir.join("bench.db");
    let (req_len, resp_len) = (env_usize("REQ_BODY", 1024), env_usize("RESP_BODY", 1024));
    let calls: Vec<Call> = (0..CALLS).map(|i| call(i, req_len, resp_len)).collect();

    let store = Store::open(&path, StoreOptions::default()).expect("open store");
    let handle = store.handle();
    let start = Instant::now();
    for c in calls {
        let mut c = Some(c);
        // Measure write throughput, not drops: retry when the queue is full.
        while let Some(call) = c.take() {
            if !handle.send(call.clone()) {
                c = Some(call);
                std::thread::yield_now();
            }
        }
    }
    let stats = store.flush_and_close().expect("close store");
    let elapsed = start.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "store (bodies {req_len}/{resp_len} B): {} calls written in {:.2}s = {:.0} calls/s ({} queue-full retries, db {:.1} MiB)",
        stats.written,
        elapsed.as_secs_f64(),
        stats.written as f64 / elapsed.as_secs_f64(),
        stats.queue_dropped,
        size as f64 / (1024.0 * 1024.0),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
