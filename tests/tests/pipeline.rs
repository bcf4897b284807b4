//! The pipeline's counters and kernel effects, end to end: what
//! `recorder_status`, `/metrics` and the kernel see must agree with what
//! really happened.

use anyhow::{Context, Result};
use qmon_e2e::servers::free_port;
use qmon_e2e::{curl, python, query, serial, wait_until, Env, Qmon, TestServer};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `/metrics` from 127.0.0.1:port, as name → value for unlabelled samples.
fn scrape(port: u16) -> Result<BTreeMap<String, u64>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, v) = l.split_once(' ')?;
            Some((name.to_string(), v.trim().parse::<f64>().ok()? as u64))
        })
        .collect())
}

/// The `recorder_status` loss counters.
fn status_row(db: &std::path::Path) -> Result<BTreeMap<String, u64>> {
    let rows = query(
        db,
        "SELECT lost_events, lost_bytes, truncated_bytes, gaps, gap_bytes, parse_errors,
                queue_dropped, calls FROM recorder_status",
    )?;
    let row = rows.first().context("no recorder_status row")?;
    Ok(row
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
        .collect())
}

/// Three 300 KB downloads on one keep-alive connection, read with 1 MiB
/// `recv`s: past the 16 KiB a call may copy with `--max-chunks 1`, so bytes
/// are truncated, and the next response's bytes show the hole as a gap.
const PY_BIG_READS: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=30)
total = 0
for i in range(3):
    s.sendall(b"GET /big?n=300000 HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(1 << 20)
    head, _, body = buf.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        body += s.recv(1 << 20)
    total += len(body)
print(total)
"#;

/// A forced ring overflow, and truncation: each loss counter has one
/// meaning, and the database and `/metrics` give the same figures. (The
/// database's `lost_bytes` used to add the gap bytes those same lost bytes
/// caused, so it never matched `qmon_lost_bytes_total`.)
///
/// Both are written from the pipeline's once-a-second snapshot, the
/// database up to a second later, and other processes on the host may keep
/// losing events into this small ring: so the database row must equal one
/// of the recent scrapes.
#[test]
fn loss_counters_agree_in_the_database_and_on_metrics() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let mport = free_port()?;
    let maddr = format!("127.0.0.1:{mport}");
    let qmon = Qmon::record(
        &db,
        &[
            "--ring-size",
            "65536",
            "--max-chunks",
            "1",
            "--metrics-addr",
            &maddr,
        ],
    )?;
    let payload = env.path().join("payload");
    std::fs::write(&payload, "y".repeat(16384))?;
    let data_arg = format!("@{}", payload.display());
    let echo = srv.url("/echo");
    let mut args: Vec<&str> = vec!["--parallel", "--parallel-max", "200"];
    for n in 0..200 {
        if n > 0 {
            args.push("--next");
        }
        args.extend(["--data-binary", &data_arg, "-o", "/dev/null", &echo]);
    }
    curl(&args)?.ok();
    let port = srv.port.to_string();
    let got = python(PY_BIG_READS, &["127.0.0.1", &port], &[])?.ok();
    assert_eq!(got.stdout_str().trim(), "900000");

    let names = [
        ("lost_events", "qmon_lost_events_total"),
        ("lost_bytes", "qmon_lost_bytes_total"),
        ("truncated_bytes", "qmon_truncated_bytes_total"),
        ("gaps", "qmon_gaps_total"),
        ("gap_bytes", "qmon_gap_bytes_total"),
    ];
    let mut scrapes: Vec<Vec<u64>> = Vec::new();
    let mut last = String::new();
    let agree = wait_until(Duration::from_secs(30), || {
        if let Ok(m) = scrape(mport) {
            scrapes.push(
                names
                    .iter()
                    .map(|(_, k)| m.get(*k).copied().unwrap_or(0))
                    .collect(),
            );
            let keep = scrapes.len().saturating_sub(25);
            scrapes.drain(..keep);
        }
        let Ok(row) = status_row(&db) else {
            return false;
        };
        let row: Vec<u64> = names.iter().map(|(k, _)| row[*k]).collect();
        last = format!("{names:?}\ndatabase: {row:?}\nrecent scrapes: {scrapes:?}");
        row.iter().all(|v| *v > 0) && scrapes.contains(&row)
    });
    assert!(agree, "loss counters differ, or some stayed 0: {last}");
    let row = status_row(&db)?;
    assert!(
        row["truncated_bytes"] >= 3 * (300_000 - 16_384),
        "each download's first read copies at most 16 KiB: {row:?}"
    );
    let out = qmon.stop();
    out.assert_clean_exit();
    Ok(())
}

/// A server whose response does not parse, and a client for it, in one
/// process (the server side is never recorded).
const PY_BAD_RESPONSE: &str = r#"
import socket, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
port = ls.getsockname()[1]
def serve():
    for _ in range(3):
        c, _ = ls.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok")
        c.close()
t = threading.Thread(target=serve); t.start()
for i in range(3):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /bad/%d HTTP/1.1\r\nHost: bad.test\r\n\r\n" % i)
    while s.recv(65536):
        pass
    s.close()
t.join()
print(port)
"#;

/// `recorder_status.parse_errors` used to be read from the Prometheus
/// exporter's counter, so it stayed 0 with `--metrics-addr none`.
#[test]
fn parse_errors_are_recorded_without_metrics() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &["--metrics-addr", "none"])?;
    python(PY_BAD_RESPONSE, &[], &[])?.ok();
    let seen = wait_until(Duration::from_secs(20), || {
        status_row(&db).is_ok_and(|r| r["parse_errors"] >= 3)
    });
    let out = qmon.stop();
    out.assert_clean_exit();
    let row = status_row(&db)?;
    assert!(seen, "parse_errors stayed below 3: {row:?}");
    let malformed = query(
        &db,
        "SELECT count(*) AS n FROM calls WHERE error LIKE 'malformed%' OR error = 'degraded'",
    )?;
    assert_eq!(
        Some(row["parse_errors"]),
        malformed[0]["n"].as_u64(),
        "parse_errors must count the malformed calls stored: {row:?}"
    );
    Ok(())
}

/// A line protocol that is not HTTP on one connection: a few round trips
/// (qmon sees the first bytes and mutes the connection), then, once told
/// on stdin, 20,000 more: enough that an unmuted client would stand far
/// above the events other processes on the host make meanwhile.
const PY_PING_PONG: &str = r#"
import socket, sys, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
def serve():
    c, _ = ls.accept()
    f = c.makefile("rb")
    for line in f:
        c.sendall(b"PONG " + line)
t = threading.Thread(target=serve, daemon=True); t.start()
s = socket.create_connection(ls.getsockname())
def rounds(n):
    for i in range(n):
        s.sendall(b"PING %d\n" % i)
        got = b""
        while not got.endswith(b"\n"):
            got += s.recv(64)
rounds(20)
print("opened", flush=True)
sys.stdin.readline()
rounds(20000)
print("done", flush=True)
"#;

/// Muting, qmon's main cost control: once a connection is known not to be
/// HTTP, the kernel stops sending its bytes. After the table has decided
/// (`qmon_connections_not_http_total` went up), 20,000 round trips make
/// 40,000 data calls on each side: the server's are muted since accept,
/// the client's since the decision, so all 80,000 are skipped in the
/// kernel and none become events.
#[test]
fn a_muted_connection_sends_no_more_events() -> Result<()> {
    use std::io::{BufRead, BufReader};
    let _g = serial();
    let env = Env::new()?;
    let mport = free_port()?;
    let maddr = format!("127.0.0.1:{mport}");
    let qmon = Qmon::record(&env.path().join("q.db"), &["--metrics-addr", &maddr])?;
    // The counters are published once a second: wait for a first value.
    assert!(wait_until(Duration::from_secs(10), || scrape(mport)
        .is_ok_and(|m| m.contains_key("qmon_events_total"))));
    let not_http = |m: &BTreeMap<String, u64>| m.get("qmon_connections_not_http_total").copied();
    let decided_before = not_http(&scrape(mport)?).unwrap_or(0);
    let mut client = std::process::Command::new(qmon_e2e::python_bin())
        .args(["-c", PY_PING_PONG])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(client.stdout.take().context("stdout")?).lines();
    assert_eq!(lines.next().transpose()?.as_deref(), Some("opened"));
    let decided = wait_until(Duration::from_secs(30), || {
        scrape(mport).is_ok_and(|m| not_http(&m).unwrap_or(0) > decided_before)
    });
    assert!(
        decided,
        "the ping-pong connection was never found to be not HTTP"
    );
    // The counters of the tick that saw the decision may predate it.
    std::thread::sleep(Duration::from_millis(1500));
    let before = scrape(mport)?;
    writeln!(client.stdin.take().context("stdin")?, "go")?;
    assert_eq!(lines.next().transpose()?.as_deref(), Some("done"));
    client.wait()?;
    std::thread::sleep(Duration::from_millis(2500));
    let after = scrape(mport)?;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let (events, muted) = (delta("qmon_events_total"), delta("qmon_muted_calls_total"));
    assert!(
        muted >= 80_000,
        "every call of both sides should be skipped in the kernel: muted {muted}, events {events}"
    );
    assert!(
        events < 4_000,
        "a muted connection still sends events: {events} events for 40,000 client data calls (muted {muted})"
    );
    qmon.stop().assert_clean_exit();
    Ok(())
}

/// `qmon top`, capturing by itself, used to ignore the config file: it
/// must record what `qmon record` would with the same file.
#[test]
fn top_applies_the_config_files_scope() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let cfg = env.path().join("qmon.toml");
    std::fs::write(&cfg, "[filter]\nexclude_comm = [\"curl\"]\n")?;
    let bin = qmon_e2e::qmon_bin()?;
    let top = std::process::Command::new(&bin)
        .args(["top", "--once", "--duration", "6s", "--group", "process"])
        .arg("--config")
        .arg(&cfg)
        .arg("--db")
        .arg(env.path().join("none.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let url = srv.url("/hello");
    for _ in 0..3 {
        curl(&["-o", "/dev/null", &url])?.ok();
    }
    python(
        "import sys, urllib.request\nfor _ in range(2): urllib.request.urlopen(sys.argv[1]).read()",
        &[&url],
        &[],
    )?
    .ok();
    let out = top.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!(":{}", srv.port)))
        .collect();
    assert!(
        rows.iter().any(|r| r.starts_with("python")),
        "python3's calls are in scope:\n{text}"
    );
    assert!(
        !rows.iter().any(|r| r.starts_with("curl")),
        "curl is excluded by the config:\n{text}"
    );
    Ok(())
}
