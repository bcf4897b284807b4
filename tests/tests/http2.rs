//! HTTP/2 and gRPC (`qmon record` → SQLite → `qmon query`): every stream a
//! real client opens becomes one `calls` row with protocol `HTTP/2`, over
//! TLS (ALPN h2: curl, httpx, a raw h2-over-ssl client, all on the system
//! OpenSSL) and cleartext (prior knowledge and `Upgrade: h2c`), with gRPC
//! status and message from trailers; 120 concurrent streams on one
//! connection; and a connection that was already open when qmon started
//! (HPACK state unknown: NULL, never wrong, and marked `degraded`).
//!
//! Servers (nginx, the h2c test server, grpcio, which Debian links against
//! the system OpenSSL too) must never show up as making calls.

use qmon_e2e::clients::{run, ClientRun};
use qmon_e2e::servers::NGINX_BIG_LEN;
use qmon_e2e::{
    curl, python_bin, query, serial, workspace_root, Env, Nginx, NginxMode, PyServer, Qmon, Row,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BODY_LIMIT: &[&str] = &["--body-limit", "65536"];

fn s<'a>(row: &'a Row, col: &str) -> Option<&'a str> {
    row.get(col).and_then(Value::as_str)
}

fn i(row: &Row, col: &str) -> Option<i64> {
    row.get(col).and_then(Value::as_i64)
}

fn is_null(row: &Row, col: &str) -> bool {
    row.get(col).is_none_or(Value::is_null)
}

fn h2_clients() -> PathBuf {
    workspace_root().join("tests/clients/h2_clients.py")
}

fn h2c_server() -> PathBuf {
    workspace_root().join("qmon/tests/tools/h2_server.py")
}

fn grpc_server() -> PathBuf {
    workspace_root().join("tests/servers/grpc_server.py")
}

fn grpc_pair() -> PathBuf {
    workspace_root().join("qmon/tests/tools/grpc_pair.py")
}

/// Runs a repository Python script with the system python3 (120 s max).
fn py(script: &Path, args: &[&str]) -> anyhow::Result<ClientRun> {
    let mut c = Command::new(python_bin());
    c.arg(script).args(args);
    run(c, Duration::from_secs(120))
}

fn calls_of(db: &Path, pid: u32) -> Vec<Row> {
    query(
        db,
        &format!("SELECT * FROM calls WHERE pid = {pid} ORDER BY started_at, stream_id"),
    )
    .expect("qmon query")
}

fn stop(qmon: Qmon) {
    qmon.stop().assert_clean_exit();
}

fn no_server_side(db: &Path, pids: &[u32]) {
    for pid in pids {
        let rows = calls_of(db, *pid);
        assert!(
            rows.is_empty(),
            "server pid {pid} recorded as making calls: {rows:#?}"
        );
    }
}

/// One expected call: method, path, status, response body bytes.
type Want<'a> = (&'a str, &'a str, i64, i64);

/// Asserts `rows` are exactly `want` (in order), each a clean HTTP/2 call of
/// `pid` to `host:port`, all on one connection, on distinct odd stream ids.
#[track_caller]
fn assert_h2_calls(rows: &[Row], pid: u32, host: &str, port: u16, tls: bool, want: &[Want]) {
    type Got<'r> = (Option<&'r str>, Option<&'r str>, Option<i64>, Option<i64>);
    let got: Vec<Got> = rows
        .iter()
        .map(|r| {
            (
                s(r, "method"),
                s(r, "path"),
                i(r, "status"),
                i(r, "resp_bytes"),
            )
        })
        .collect();
    let want_v: Vec<_> = want
        .iter()
        .map(|(m, p, st, n)| (Some(*m), Some(*p), Some(*st), Some(*n)))
        .collect();
    assert_eq!(
        got, want_v,
        "calls of pid {pid} (method, path, status, resp_bytes); rows: {rows:#?}"
    );
    let mut ids = std::collections::BTreeSet::new();
    for r in rows {
        assert_eq!(i(r, "pid"), Some(pid as i64), "{r:?}");
        assert_eq!(s(r, "protocol"), Some("HTTP/2"), "protocol: {r:?}");
        assert_eq!(s(r, "host"), Some(host), "host from :authority: {r:?}");
        assert_eq!(i(r, "port"), Some(port as i64), "port: {r:?}");
        assert_eq!(i(r, "tls"), Some(tls as i64), "tls flag: {r:?}");
        assert!(is_null(r, "error"), "clean call has error: {r:?}");
        assert_eq!(i(r, "conn_id"), i(&rows[0], "conn_id"), "one connection");
        let sid = i(r, "stream_id").unwrap_or_else(|| panic!("no stream_id: {r:?}"));
        assert!(sid % 2 == 1, "client stream ids are odd: {r:?}");
        assert!(ids.insert(sid), "stream id {sid} twice: {rows:#?}");
        assert!(i(r, "duration_ns").is_some_and(|d| d >= 0), "{r:?}");
    }
}

#[test]
fn curl_and_httpx_over_tls_to_nginx_h2() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let nginx = Nginx::start_mode(&env.path().join("nginx"), &env.certs, NginxMode::H2Tls)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let ca = env.ca();

    let (u1, u2, u3) = (
        nginx.url("/nginx-hello"),
        nginx.url("/h2-big"),
        nginx.url("/status/7"),
    );
    let c = curl(&[
        "--http2",
        "--cacert",
        &ca,
        "-w",
        "%{http_version} %{num_connects}\n",
        "-o",
        "/dev/null",
        &u1,
        "-o",
        "/dev/null",
        &u2,
        "-o",
        "/dev/null",
        &u3,
    ])?
    .ok();
    assert_eq!(
        c.stdout_str(),
        "2 1\n2 0\n2 0\n",
        "curl did not use one h2 connection"
    );
    let hx = py(&h2_clients(), &["get", &ca, &u1, &u2])?.ok();
    assert_eq!(
        hx.stdout_str(),
        format!("HTTP/2 200 17\nHTTP/2 200 {NGINX_BIG_LEN}\n")
    );
    stop(qmon);

    let want = [
        ("GET", "/nginx-hello", 200, 17),
        ("GET", "/h2-big", 200, NGINX_BIG_LEN as i64),
        ("GET", "/status/7", 201, 8),
    ];
    let rows = calls_of(&db, c.pid);
    assert_h2_calls(&rows, c.pid, "127.0.0.1", nginx.port, true, &want);
    assert_eq!(s(&rows[0], "comm"), Some("curl"), "{:?}", rows[0]);
    assert_eq!(
        s(&rows[0], "resp_body"),
        Some("hello from nginx\n"),
        "{:?}",
        rows[0]
    );
    let rows = calls_of(&db, hx.pid);
    assert_h2_calls(&rows, hx.pid, "127.0.0.1", nginx.port, true, &want[..2]);
    let ua = s(&rows[0], "req_headers").unwrap_or_default();
    assert!(ua.contains("python-httpx"), "httpx user-agent: {ua}");
    no_server_side(&db, &[nginx.pid()]);
    Ok(())
}

#[test]
fn one_hundred_twenty_concurrent_streams_on_one_connection() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let nginx = Nginx::start_mode(&env.path().join("nginx"), &env.certs, NginxMode::H2Tls)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let port = nginx.port.to_string();
    let authority = format!("localhost:{port}");
    let n = 120;
    let b = py(
        &h2_clients(),
        &[
            "burst",
            &env.ca(),
            "127.0.0.1",
            &port,
            &authority,
            &n.to_string(),
        ],
    )?
    .ok();
    stop(qmon);

    let out = b.stdout_str();
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    assert_eq!(head.first(), Some(&"ok"), "{out}");
    assert_eq!(head.get(1), Some(&"120"), "all answered: {out}");
    let max_open: usize = head.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
    assert!(max_open >= 100, "only {max_open} streams were open at once");
    // The client's own view: path status len, in stream order.
    let want: Vec<(String, i64, i64)> = lines
        .map(|l| {
            let v: Vec<&str> = l.split(' ').collect();
            (
                v[0].to_string(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(want.len(), n);

    let rows = query(
        &db,
        &format!(
            "SELECT * FROM calls WHERE pid = {} ORDER BY stream_id",
            b.pid
        ),
    )?;
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                s(r, "path").unwrap_or("<NULL>").to_string(),
                i(r, "status").unwrap_or(-1),
                i(r, "resp_bytes").unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(got, want, "120 streams (path, status, resp_bytes)");
    for (k, (p, st, len)) in want.iter().enumerate() {
        assert_eq!(*st, 200);
        assert_eq!(*len as usize, p.len() + 1, "nginx echoes the uri");
        let r = &rows[k];
        assert_eq!(s(r, "protocol"), Some("HTTP/2"), "{r:?}");
        assert_eq!(s(r, "host"), Some("localhost"), "{r:?}");
        assert_eq!(s(r, "method"), Some("GET"), "{r:?}");
        assert_eq!(i(r, "tls"), Some(1), "{r:?}");
        assert!(is_null(r, "error"), "{r:?}");
        assert_eq!(i(r, "stream_id"), Some(2 * k as i64 + 1), "{r:?}");
        assert_eq!(i(r, "conn_id"), i(&rows[0], "conn_id"), "one connection");
    }
    no_server_side(&db, &[nginx.pid()]);
    Ok(())
}

#[test]
fn h2c_prior_knowledge_curl() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let h2c = PyServer::start(&h2c_server(), &[], true)?;
    let nginx = Nginx::start_mode(&env.path().join("nginx"), &env.certs, NginxMode::H2c)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;

    // curl 7.88 cannot reuse a prior-knowledge connection for a second URL
    // (it never sends the second request), so one URL per curl.
    let base = format!("http://127.0.0.1:{}", h2c.port);
    let pk = |url: String| {
        curl(&[
            "--http2-prior-knowledge",
            "-w",
            "%{http_version}",
            "-o",
            "/dev/null",
            &url,
        ])
        .map(ClientRun::ok)
    };
    let c1 = pk(format!("{base}/pk-one"))?;
    let c2 = pk(format!("{base}/large"))?;
    let cn = pk(nginx.url("/nginx-hello"))?;
    for c in [&c1, &c2, &cn] {
        assert_eq!(c.stdout_str(), "2", "prior knowledge h2c: {c:?}");
    }
    stop(qmon);

    assert_h2_calls(
        &calls_of(&db, c1.pid),
        c1.pid,
        "127.0.0.1",
        h2c.port,
        false,
        &[("GET", "/pk-one", 200, "hello from /pk-one\n".len() as i64)],
    );
    // 200 kB: many DATA frames, several WINDOW_UPDATEs.
    assert_h2_calls(
        &calls_of(&db, c2.pid),
        c2.pid,
        "127.0.0.1",
        h2c.port,
        false,
        &[("GET", "/large", 200, 204_800)],
    );
    assert_h2_calls(
        &calls_of(&db, cn.pid),
        cn.pid,
        "127.0.0.1",
        nginx.port,
        false,
        &[("GET", "/nginx-hello", 200, 17)],
    );
    no_server_side(&db, &[h2c.pid(), nginx.pid()]);
    Ok(())
}

#[test]
fn h2c_upgrade_from_http1() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let h2c = PyServer::start(&h2c_server(), &[], true)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;

    let base = format!("http://127.0.0.1:{}", h2c.port);
    let (u1, u2) = (format!("{base}/upgrade-me"), format!("{base}/after"));
    let c = curl(&[
        "--http2",
        "-w",
        "%{http_version} %{num_connects}\n",
        "-o",
        "/dev/null",
        &u1,
        "-o",
        "/dev/null",
        &u2,
    ])?
    .ok();
    assert_eq!(c.stdout_str(), "2 1\n2 0\n", "curl did not upgrade to h2c");
    stop(qmon);

    // The request that asked for the upgrade is stream 1 of the HTTP/2
    // connection (RFC 7540 3.2): one HTTP/2 row, no HTTP/1.1 "101" row.
    assert_h2_calls(
        &calls_of(&db, c.pid),
        c.pid,
        "127.0.0.1",
        h2c.port,
        false,
        &[
            (
                "GET",
                "/upgrade-me",
                200,
                "hello from /upgrade-me\n".len() as i64,
            ),
            ("GET", "/after", 200, "hello from /after\n".len() as i64),
        ],
    );
    no_server_side(&db, &[h2c.pid()]);
    Ok(())
}

#[test]
fn grpc_h2c_unary_streaming_and_failure() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = PyServer::start(&grpc_server(), &[], false)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let port = srv.port.to_string();
    let unary = py(&grpc_pair(), &["client", &port, "unary"])?.ok();
    assert!(unary.stdout_str().contains("hello, qmon"), "{unary:?}");
    let fail = py(&grpc_pair(), &["client", &port, "fail"])?.ok();
    assert!(fail.stdout_str().contains("NOT_FOUND"), "{fail:?}");
    let stream = py(&grpc_pair(), &["client", &port, "stream"])?.ok();
    assert!(stream.stdout_str().contains("item-4-"), "{stream:?}");
    stop(qmon);

    let one = |pid: u32| -> Row {
        let rows = calls_of(&db, pid);
        assert_eq!(rows.len(), 1, "one gRPC call for pid {pid}: {rows:#?}");
        let r = rows.into_iter().next().unwrap();
        assert_eq!(s(&r, "protocol"), Some("HTTP/2"), "{r:?}");
        assert_eq!(s(&r, "method"), Some("POST"), "{r:?}");
        assert_eq!(s(&r, "host"), Some("127.0.0.1"), "{r:?}");
        assert_eq!(i(&r, "status"), Some(200), "{r:?}");
        assert_eq!(i(&r, "tls"), Some(0), "{r:?}");
        assert!(is_null(&r, "error"), "{r:?}");
        r
    };
    let r = one(unary.pid);
    assert_eq!(s(&r, "path"), Some("/demo.v1.Greeter/SayHello"), "{r:?}");
    assert_eq!(i(&r, "grpc_status"), Some(0), "{r:?}");
    assert_eq!(i(&r, "req_bytes"), Some(5 + 4), "{r:?}");
    assert_eq!(i(&r, "resp_bytes"), Some(5 + 11), "{r:?}");
    let r = one(fail.pid);
    assert_eq!(s(&r, "path"), Some("/demo.v1.Greeter/Fail"), "{r:?}");
    assert_eq!(i(&r, "grpc_status"), Some(5), "NOT_FOUND: {r:?}");
    assert_eq!(
        s(&r, "grpc_message"),
        Some("user 42 not found: caf\u{e9} 100%"),
        "{r:?}"
    );
    let r = one(stream.pid);
    assert_eq!(s(&r, "path"), Some("/demo.v1.Greeter/Stream"), "{r:?}");
    assert_eq!(i(&r, "grpc_status"), Some(0), "{r:?}");
    // Five messages "item-K-" + 10*K x's, each with a 5-byte prefix.
    let want: i64 = (0..5).map(|k| 5 + 7 + 10 * k).sum();
    assert_eq!(i(&r, "resp_bytes"), Some(want), "{r:?}");
    no_server_side(&db, &[srv.pid()]);
    Ok(())
}

#[test]
fn grpc_over_tls_through_system_openssl() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let cert = env.certs.cert.display().to_string();
    let key = env.certs.key.display().to_string();
    let srv = PyServer::start(&grpc_server(), &["--cert", &cert, "--key", &key], false)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let (ca, port) = (env.ca(), srv.port.to_string());
    let grpc = |path: &str| {
        py(
            &h2_clients(),
            &["grpc", &ca, "127.0.0.1", &port, path, "tls-call"],
        )
        .map(ClientRun::ok)
    };
    let ok = grpc("/demo.v1.Greeter/SayHello")?;
    assert_eq!(ok.stdout_str(), "status=0 message= resp_bytes=20\n");
    let nf = grpc("/demo.v1.Greeter/Fail")?;
    assert_eq!(
        nf.stdout_str(),
        "status=5 message=user 42 not found: caf\u{e9} 100% resp_bytes=0\n"
    );
    stop(qmon);

    for (run, path, st, msg, resp) in [
        (&ok, "/demo.v1.Greeter/SayHello", 0, None, 20),
        (
            &nf,
            "/demo.v1.Greeter/Fail",
            5,
            Some("user 42 not found: caf\u{e9} 100%"),
            0,
        ),
    ] {
        let rows = calls_of(&db, run.pid);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        let r = &rows[0];
        assert_eq!(s(r, "protocol"), Some("HTTP/2"), "{r:?}");
        assert_eq!(s(r, "method"), Some("POST"), "{r:?}");
        assert_eq!(s(r, "path"), Some(path), "{r:?}");
        assert_eq!(s(r, "host"), Some("127.0.0.1"), "{r:?}");
        assert_eq!(i(r, "port"), Some(srv.port as i64), "{r:?}");
        assert_eq!(i(r, "tls"), Some(1), "{r:?}");
        assert_eq!(i(r, "status"), Some(200), "{r:?}");
        assert_eq!(i(r, "grpc_status"), Some(st), "{r:?}");
        assert_eq!(s(r, "grpc_message"), msg, "{r:?}");
        assert_eq!(i(r, "req_bytes"), Some(5 + 8), "{r:?}");
        assert_eq!(i(r, "resp_bytes"), Some(resp), "{r:?}");
        assert!(is_null(r, "error"), "{r:?}");
    }
    // grpcio (Debian's, on the system OpenSSL) is the server here.
    no_server_side(&db, &[srv.pid()]);
    Ok(())
}

#[test]
fn mid_connection_start_is_degraded_never_wrong_and_new_connections_clean() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let nginx = Nginx::start_mode(&env.path().join("nginx"), &env.certs, NginxMode::H2Tls)?;
    let ca = env.ca();
    let base = nginx.url("");
    let gofile = env.path().join("go");
    let gos = gofile.display().to_string();

    // Connection opened, and HPACK tables filled, before qmon starts.
    let mut ll = Command::new(python_bin())
        .arg(h2_clients())
        .args(["longlived", &ca, &base, &gos])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let ll_pid = ll.id();
    let mut out = BufReader::new(ll.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line)?;
    assert_eq!(line, "phase1\n", "long-lived client did not finish phase 1");

    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    std::fs::write(&gofile, b"go")?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest)?;
    let st = ll.wait()?;
    assert!(st.success(), "long-lived client failed: {st} {rest}");
    let phase2: Vec<(String, i64, i64)> = rest
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| {
            let v: Vec<&str> = l.split(' ').collect();
            (
                v[0].to_string(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(
        rest.contains("conns=1"),
        "one connection throughout: {rest}"
    );
    // The premise of the test: phase 2 continued the phase-1 connection
    // (streams 1-7), so qmon started in the middle of it.
    let streams: Vec<u32> = rest
        .lines()
        .find_map(|l| l.strip_prefix("streams="))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(streams.len(), 6, "{rest}");
    assert!(
        streams.iter().all(|&id| id > 7),
        "phase 2 on a new connection: {rest}"
    );
    assert_eq!(phase2.len(), 6, "{rest}");

    // A new client, a new connection: HPACK from the start.
    let fresh = py(
        &h2_clients(),
        &[
            "get",
            &ca,
            &nginx.url("/ll/alpha"),
            &nginx.url("/ll/beta"),
            &nginx.url("/ll/alpha"),
        ],
    )?
    .ok();
    stop(qmon);

    let rows = calls_of(&db, ll_pid);
    assert_eq!(
        rows.len(),
        phase2.len(),
        "every phase-2 request is a row: {rows:#?}"
    );
    let mut with_path = 0;
    for (r, (path, status, len)) in rows.iter().zip(&phase2) {
        assert_eq!(s(r, "protocol"), Some("HTTP/2"), "{r:?}");
        assert_eq!(i(r, "tls"), Some(1), "{r:?}");
        // Never wrong: every field present is the truth.
        if let Some(p) = s(r, "path") {
            assert_eq!(p, path, "{r:?}");
            with_path += 1;
        }
        if let Some(m) = s(r, "method") {
            assert_eq!(m, "GET", "{r:?}");
        }
        if let Some(st) = i(r, "status") {
            assert_eq!(st, *status, "{r:?}");
        }
        assert_eq!(i(r, "resp_bytes"), Some(*len), "{r:?}");
        let h = s(r, "host");
        assert!(
            h == Some("127.0.0.1"),
            "host is the authority's or the remote ip, both 127.0.0.1 here: {r:?}"
        );
        // Missing fields are explained.
        if is_null(r, "path") || is_null(r, "method") || is_null(r, "status") {
            assert_eq!(s(r, "error"), Some("degraded"), "{r:?}");
        }
    }
    // /ll/delta-1 and /ll/epsilon-22 were never sent before qmon started:
    // static-table name + literal value, decodable without the old table.
    assert!(with_path >= 2, "new paths should decode: {rows:#?}");
    let degraded = rows
        .iter()
        .filter(|r| s(r, "error") == Some("degraded"))
        .count();
    assert!(
        degraded >= 1,
        "repeated headers reference the unknown dynamic table: {rows:#?}"
    );

    let rows = calls_of(&db, fresh.pid);
    assert_h2_calls(
        &rows,
        fresh.pid,
        "127.0.0.1",
        nginx.port,
        true,
        &[
            ("GET", "/ll/alpha", 200, 10),
            ("GET", "/ll/beta", 200, 9),
            ("GET", "/ll/alpha", 200, 10),
        ],
    );
    no_server_side(&db, &[nginx.pid()]);
    Ok(())
}
