//! Record (`qmon record` → SQLite → `qmon query`): HTTP/1 calls made by
//! real clients are stored with the right method, host, path, status and
//! pid; server-side TLS (Python ssl, nginx) is not recorded; the store
//! survives kill -9, is private, redacts credentials and is read-only
//! through `qmon query`.

use qmon_e2e::clients::{PY_PIPELINE, PY_URLLIB_GET};
use qmon_e2e::{
    curl, python, query, query_raw, serial, unique_tag, Env, Nginx, Qmon, Row, TestServer,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Bodies are only asserted where the recorder was told to keep them.
const BODY_LIMIT: &[&str] = &["--body-limit", "65536"];

fn s<'a>(row: &'a Row, col: &str) -> Option<&'a str> {
    row.get(col).and_then(Value::as_str)
}

fn i(row: &Row, col: &str) -> Option<i64> {
    row.get(col).and_then(Value::as_i64)
}

/// `host` is the request's host name; accept it with or without the port
/// the Host header carried, but nothing else.
fn host_is(row: &Row, host: &str, port: u16) -> bool {
    match s(row, "host") {
        Some(h) => h == host || h == format!("{host}:{port}"),
        None => false,
    }
}

fn calls_of(db: &Path, pid: u32) -> Vec<Row> {
    query(
        db,
        &format!("SELECT * FROM calls WHERE pid = {pid} ORDER BY started_at"),
    )
    .expect("qmon query")
}

fn count(db: &Path, where_: &str) -> i64 {
    let rows = query(
        db,
        &format!("SELECT count(*) AS n FROM calls WHERE {where_}"),
    )
    .expect("qmon query count");
    assert_eq!(rows.len(), 1, "count query returned {rows:?}");
    i(&rows[0], "n").unwrap_or_else(|| panic!("count not an integer: {rows:?}"))
}

/// Asserts method/path/status of `rows` in order, plus the fields every
/// recorded call must have right.
#[track_caller]
fn assert_calls(
    rows: &[Row],
    pid: u32,
    host: &str,
    port: u16,
    tls: bool,
    want: &[(&str, &str, i64)],
) {
    let got: Vec<(Option<&str>, Option<&str>, Option<i64>)> = rows
        .iter()
        .map(|r| (s(r, "method"), s(r, "path"), i(r, "status")))
        .collect();
    let want_v: Vec<(Option<&str>, Option<&str>, Option<i64>)> = want
        .iter()
        .map(|(m, p, st)| (Some(*m), Some(*p), Some(*st)))
        .collect();
    assert_eq!(
        got, want_v,
        "calls of pid {pid} (method, path, status); rows: {rows:#?}"
    );
    for r in rows {
        assert_eq!(i(r, "pid"), Some(pid as i64), "{r:?}");
        assert!(host_is(r, host, port), "host should be {host}: {r:?}");
        assert_eq!(i(r, "port"), Some(port as i64), "port: {r:?}");
        assert_eq!(i(r, "tls"), Some(tls as i64), "tls flag: {r:?}");
        assert_eq!(s(r, "protocol"), Some("HTTP/1.1"), "protocol: {r:?}");
        assert!(
            r.get("error").is_some_and(Value::is_null),
            "clean call has error: {r:?}"
        );
        assert!(
            s(r, "remote_addr").is_some_and(|a| a.contains(&port.to_string())),
            "remote_addr should name the server port {port}: {r:?}"
        );
        assert!(
            i(r, "started_at").is_some_and(|t| t > 1_600_000_000_000_000_000),
            "{r:?}"
        );
        assert!(i(r, "duration_ns").is_some_and(|d| d >= 0), "{r:?}");
    }
}

fn stop(qmon: Qmon) {
    let out = qmon.stop();
    out.assert_clean_exit();
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

#[test]
fn curl_keepalive_chunked_post_head_and_204_over_tls() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let ca = env.ca();

    // One curl, four URLs, one connection (checked via num_connects): the
    // 204 has no body, the chunked one a chunked body; each next response
    // must still be parsed at the right place.
    let urls = [
        srv.url("/hello"),
        srv.url("/status/204"),
        srv.url("/chunked"),
        srv.url("/status/201"),
    ];
    let mut args = vec!["--http1.1", "--cacert", &ca, "-w", "%{num_connects}\n"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let keepalive = curl(&args)?.ok();
    assert_eq!(
        keepalive.stdout_str(),
        "1\n0\n0\n0\n",
        "curl did not reuse one connection for all four requests"
    );

    let payload = unique_tag("post-body-");
    let post = curl(&[
        "--http1.1",
        "--cacert",
        &ca,
        "--data-binary",
        &payload,
        &srv.url("/echo"),
    ])?
    .ok();
    assert_eq!(post.stdout_str(), payload);

    // HEAD (Content-Length but no body), then a GET on the same connection.
    let head = curl(&[
        "--http1.1",
        "--cacert",
        &ca,
        "-I",
        &srv.url("/hello"),
        "--next",
        "--http1.1",
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        &srv.url("/status/202"),
    ])?
    .ok();

    stop(qmon);

    let h = "127.0.0.1";
    let rows = calls_of(&db, keepalive.pid);
    assert_calls(
        &rows,
        keepalive.pid,
        h,
        srv.port,
        true,
        &[
            ("GET", "/hello", 200),
            ("GET", "/status/204", 204),
            ("GET", "/chunked", 200),
            ("GET", "/status/201", 201),
        ],
    );
    assert_eq!(s(&rows[0], "comm"), Some("curl"), "{:?}", rows[0]);
    assert_eq!(
        s(&rows[0], "resp_body"),
        Some("hello world\n"),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        s(&rows[2], "resp_body"),
        Some("chunk-one;chunk-two;chunk-three\n"),
        "chunked body should be stored de-chunked: {:?}",
        rows[2]
    );
    assert!(
        rows[1]
            .get("resp_body")
            .is_some_and(|b| b.is_null() || b == ""),
        "204 has no body: {:?}",
        rows[1]
    );
    let req_headers = s(&rows[0], "req_headers").unwrap_or_default();
    let hv: Value = serde_json::from_str(req_headers)
        .unwrap_or_else(|e| panic!("req_headers is not JSON ({e}): {req_headers}"));
    assert!(
        hv.to_string().to_lowercase().contains("user-agent"),
        "req_headers lacks User-Agent: {hv}"
    );
    let resp_headers = s(&rows[2], "resp_headers").unwrap_or_default();
    let rv: Value = serde_json::from_str(resp_headers)
        .unwrap_or_else(|e| panic!("resp_headers is not JSON ({e}): {resp_headers}"));
    assert!(rv.to_string().to_lowercase().contains("chunked"), "{rv}");

    let rows = calls_of(&db, post.pid);
    assert_calls(
        &rows,
        post.pid,
        h,
        srv.port,
        true,
        &[("POST", "/echo", 200)],
    );
    assert_eq!(
        s(&rows[0], "req_body"),
        Some(payload.as_str()),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        s(&rows[0], "resp_body"),
        Some(payload.as_str()),
        "{:?}",
        rows[0]
    );
    assert!(
        i(&rows[0], "req_bytes").is_some_and(|n| n >= payload.len() as i64),
        "req_bytes: {:?}",
        rows[0]
    );

    let rows = calls_of(&db, head.pid);
    assert_calls(
        &rows,
        head.pid,
        h,
        srv.port,
        true,
        &[("HEAD", "/hello", 200), ("GET", "/status/202", 202)],
    );

    no_server_side(&db, &[srv.pid()]);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&db)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "database file mode is {mode:o}");
    Ok(())
}

#[test]
fn python_urllib_tls_and_plain_http() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let tls = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let plain = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;

    let py = python(PY_URLLIB_GET, &[&tls.url("/hello"), &env.ca()], &[])?.ok();
    assert_eq!(py.stdout_str(), "hello world\n");
    let py_plain = python(PY_URLLIB_GET, &[&plain.url("/status/203"), ""], &[]);
    // urllib raises on non-2xx? 203 is 2xx, so this must succeed.
    let py_plain = py_plain?.ok();
    let c = curl(&[&plain.url("/chunked")])?.ok();
    stop(qmon);

    let rows = calls_of(&db, py.pid);
    assert_calls(
        &rows,
        py.pid,
        "127.0.0.1",
        tls.port,
        true,
        &[("GET", "/hello", 200)],
    );
    assert_eq!(s(&rows[0], "resp_body"), Some("hello world\n"));
    let rows = calls_of(&db, py_plain.pid);
    assert_calls(
        &rows,
        py_plain.pid,
        "127.0.0.1",
        plain.port,
        false,
        &[("GET", "/status/203", 203)],
    );
    let rows = calls_of(&db, c.pid);
    assert_calls(
        &rows,
        c.pid,
        "127.0.0.1",
        plain.port,
        false,
        &[("GET", "/chunked", 200)],
    );
    assert_eq!(
        s(&rows[0], "resp_body"),
        Some("chunk-one;chunk-two;chunk-three\n")
    );
    no_server_side(&db, &[tls.pid(), plain.pid()]);
    Ok(())
}

#[test]
fn pipelined_requests_on_one_connection() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let port = srv.port.to_string();
    let client = python(
        PY_PIPELINE,
        &["127.0.0.1", &port, "/hello", "/chunked", "/status/202"],
        &[],
    )?
    .ok();
    assert_eq!(client.stdout_str().matches("HTTP/1.1 ").count(), 3);
    stop(qmon);
    let rows = calls_of(&db, client.pid);
    assert_calls(
        &rows,
        client.pid,
        "127.0.0.1",
        srv.port,
        false,
        &[
            ("GET", "/hello", 200),
            ("GET", "/chunked", 200),
            ("GET", "/status/202", 202),
        ],
    );
    no_server_side(&db, &[srv.pid()]);
    Ok(())
}

#[test]
fn nginx_tls_server_side_is_not_recorded() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let nginx = Nginx::start(&env.path().join("nginx"), &env.certs)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let ca = env.ca();
    let client = curl(&[
        "--http1.1",
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        &nginx.url("/nginx-hello"),
        "-o",
        "/dev/null",
        &nginx.url("/status/x"),
    ])?
    .ok();
    stop(qmon);
    let rows = calls_of(&db, client.pid);
    assert_calls(
        &rows,
        client.pid,
        "127.0.0.1",
        nginx.port,
        true,
        &[("GET", "/nginx-hello", 200), ("GET", "/status/x", 201)],
    );
    no_server_side(&db, &[nginx.pid()]);
    assert_eq!(
        count(&db, "path = '/nginx-hello'"),
        1,
        "the request should be recorded once (client side only)"
    );
    Ok(())
}

#[test]
fn kill_9_loses_at_most_the_last_second() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let ca = env.ca();
    let mut pids = Vec::new();
    for p in ["/hello", "/status/201", "/chunked"] {
        pids.push((
            curl(&["--http1.1", "--cacert", &ca, "-o", "/dev/null", &srv.url(p)])?
                .ok()
                .pid,
            p,
        ));
    }
    std::thread::sleep(Duration::from_secs(2));
    let out = qmon.kill9();
    assert!(
        !out.status.success(),
        "kill -9 should not look like a clean exit"
    );

    let rows = query(&db, "PRAGMA integrity_check")?;
    assert_eq!(rows.len(), 1, "integrity_check: {rows:?}");
    assert!(
        rows[0].values().any(|v| v == "ok"),
        "integrity_check after kill -9: {rows:?}"
    );
    for (pid, path) in pids {
        let rows = calls_of(&db, pid);
        assert_eq!(
            rows.len(),
            1,
            "call {path} of pid {pid} lost after kill -9: {rows:?}"
        );
        assert_eq!(s(&rows[0], "path"), Some(path));
    }
    Ok(())
}

/// Records one curl GET carrying `Authorization: Bearer secret123` (on the
/// command line when `on_argv`, else from a `curl -K` config file so that
/// argv stays clean) and checks that the secret is nowhere: not in any
/// column `qmon query` returns, not in the database files on disk.
fn bearer_secret_not_stored(on_argv: bool) -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let cfg = env.path().join("curl.cfg");
    std::fs::write(&cfg, "header = \"Authorization: Bearer secret123\"\n")?;
    let cfg_s = cfg.display().to_string();
    let url = srv.url("/hello");
    let ca = env.ca();
    let mut args = vec!["--http1.1", "--cacert", &ca, "-o", "/dev/null"];
    if on_argv {
        args.extend(["-H", "Authorization: Bearer secret123"]);
    } else {
        args.extend(["-K", &cfg_s]);
    }
    args.push(&url);
    let client = curl(&args)?.ok();
    // SIGTERM must flush just like SIGINT.
    let out = qmon.terminate();
    out.assert_clean_exit();

    let rows = calls_of(&db, client.pid);
    assert_calls(
        &rows,
        client.pid,
        "127.0.0.1",
        srv.port,
        true,
        &[("GET", "/hello", 200)],
    );
    let req_headers = s(&rows[0], "req_headers").unwrap_or_default();
    assert!(
        req_headers.contains("Bearer [REDACTED:9]"),
        "Authorization not stored as `Bearer [REDACTED:9]`: {req_headers}"
    );
    let all = query(&db, "SELECT * FROM calls")?;
    for row in &all {
        for (col, v) in row {
            assert!(
                !v.to_string().contains("secret123"),
                "secret visible through qmon query in column {col}: {v}"
            );
        }
    }
    // Nor anywhere in the files on disk (main DB, WAL, journal).
    for suffix in ["", "-wal", "-journal", "-shm"] {
        let f = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(
                qmon_e2e::events::find(&bytes, b"secret123").is_none(),
                "secret123 found in {f}"
            );
        }
    }
    Ok(())
}

#[test]
fn authorization_header_is_redacted_everywhere() -> anyhow::Result<()> {
    bearer_secret_not_stored(false)
}

/// The usual way to send a token: `curl -H "Authorization: Bearer $T"`.
/// The header is redacted, so the same secret must not survive in the
/// recorded process command line either.
#[test]
fn bearer_token_on_client_command_line_is_not_stored() -> anyhow::Result<()> {
    bearer_secret_not_stored(true)
}

#[test]
fn query_is_read_only() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let client = curl(&["-o", "/dev/null", &srv.url("/hello")])?.ok();
    stop(qmon);
    let before = count(&db, "1 = 1");
    assert!(before >= 1, "no calls recorded");
    assert_eq!(calls_of(&db, client.pid).len(), 1);
    let digest_before = std::fs::read(&db)?;
    for sql in [
        "DELETE FROM calls",
        "DROP VIEW calls",
        "CREATE TABLE evil (x)",
    ] {
        let out = query_raw(&db, &["--format", "json"], sql)?;
        assert!(
            !out.status.success(),
            "`qmon query {sql:?}` succeeded; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        count(&db, "1 = 1"),
        before,
        "rows changed through qmon query"
    );
    assert_eq!(calls_of(&db, client.pid).len(), 1);
    assert!(
        std::fs::read(&db)? == digest_before,
        "database file changed through a read-only query"
    );
    Ok(())
}

#[test]
fn query_output_formats() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    let client = curl(&["-o", "/dev/null", &srv.url("/status/202")])?.ok();
    stop(qmon);
    let sql = format!(
        "SELECT method, path, status FROM calls WHERE pid = {}",
        client.pid
    );
    for fmt in ["jsonl", "csv", "table"] {
        let out = query_raw(&db, &["--format", fmt], &sql)?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "--format {fmt} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.trim().lines().collect();
        let ok = match fmt {
            "jsonl" => {
                lines.len() == 1
                    && serde_json::from_str::<Row>(lines[0]).is_ok_and(|r| {
                        s(&r, "path") == Some("/status/202") && i(&r, "status") == Some(202)
                    })
            }
            "csv" => {
                lines.len() == 2 && lines[0].contains("method") && lines[1].contains("/status/202")
            }
            _ => text.contains("method") && text.contains("/status/202"),
        };
        assert!(ok, "--format {fmt} output not as expected:\n{text}");
    }
    Ok(())
}

#[test]
fn recorder_reports_lost_events() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &["--ring-size", "16384"])?;
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
    std::thread::sleep(Duration::from_secs(2));
    let out = qmon.stop();
    out.assert_clean_exit();
    assert!(
        out.stderr.to_lowercase().contains("lost"),
        "a 16 KiB ring under a 200×16 KiB burst: recorder did not log lost events:\n{}",
        out.stderr_tail()
    );
    // Whatever it kept is still a valid database.
    let rows = query(&db, "PRAGMA integrity_check")?;
    assert!(
        rows.len() == 1 && rows[0].values().any(|v| v == "ok"),
        "{rows:?}"
    );
    no_server_side(&db, &[srv.pid()]);
    Ok(())
}

/// A client that peeks (curl checks a connection with a one-byte
/// `MSG_PEEK` recv before reusing it) reads the same bytes again: they are
/// recorded once. Found in the kernel matrix, where curl's peek at the
/// server's SETTINGS ACK shifted an h2c stream by one byte.
const PY_PEEK: &str = r#"
import select, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=30)
def exchange(path, peek):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path.encode(), host.encode(), port))
    select.select([s], [], [], 30)
    if peek == "recv":
        assert s.recv(1, socket.MSG_PEEK) == b"H"
    elif peek == "recvmsg":
        assert s.recvmsg(5, 0, socket.MSG_PEEK)[0] == b"HTTP/"
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(1 if peek else 4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        body += s.recv(n - len(body))
    print(head.split(b"\r\n")[0].decode(), body.decode().strip())
exchange("/hello?tag=peek1", "recv")
exchange("/hello?tag=peek2", "recvmsg")
exchange("/hello?tag=plain", None)
"#;

#[test]
fn peeked_bytes_are_recorded_once() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let port = srv.port.to_string();
    let client = python(PY_PEEK, &["127.0.0.1", &port], &[])?.ok();
    assert_eq!(
        client.stdout_str(),
        "HTTP/1.1 200 OK hello peek1\nHTTP/1.1 200 OK hello peek2\nHTTP/1.1 200 OK hello plain\n"
    );
    stop(qmon);
    let rows = calls_of(&db, client.pid);
    assert_calls(
        &rows,
        client.pid,
        "127.0.0.1",
        srv.port,
        false,
        &[
            ("GET", "/hello?tag=peek1", 200),
            ("GET", "/hello?tag=peek2", 200),
            ("GET", "/hello?tag=plain", 200),
        ],
    );
    let bodies: Vec<_> = rows.iter().map(|r| s(r, "resp_body")).collect();
    assert_eq!(
        bodies,
        [
            Some("hello peek1\n"),
            Some("hello peek2\n"),
            Some("hello plain\n")
        ]
    );
    Ok(())
}

/// Threads blocked in a hooked syscall each hold a kretprobe instance for
/// as long as they block. With the kernel's default pool (10 on a 2-CPU
/// guest) 64 idle readers made the kernel skip syscall returns, and the
/// skipped calls' bytes were lost. In kprobe mode (the 6.1/6.12 guests)
/// qmon sizes the pool itself; with tracepoints (this host) nothing can be
/// skipped. Either way every call is complete and nothing is reported lost.
const PY_BLOCKED_READERS: &str = r#"
import http.client, socket, sys, threading, time
pairs = [socket.socketpair() for _ in range(64)]
for a, _ in pairs:
    threading.Thread(target=a.recv, args=(1,), daemon=True).start()
time.sleep(1)
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
for i in range(30):
    c.request("GET", "/hello?tag=r%d" % i)
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
"#;

#[test]
fn many_blocked_readers_lose_no_syscall_returns() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, BODY_LIMIT)?;
    let port = srv.port.to_string();
    let client = python(PY_BLOCKED_READERS, &["127.0.0.1", &port], &[])?.ok();
    let want: String = (0..30).map(|i| format!("200 hello r{i}\n")).collect();
    assert_eq!(client.stdout_str(), want);
    let out = qmon.stop();
    out.assert_clean_exit();
    assert!(
        !out.stderr.contains("kernel dropped syscall-return probes"),
        "returns were dropped: {}",
        out.stderr_tail()
    );
    let rows = calls_of(&db, client.pid);
    let want: Vec<(String, &str, i64)> = (0..30)
        .map(|i| (format!("/hello?tag=r{i}"), "GET", 200))
        .collect();
    let want: Vec<(&str, &str, i64)> = want.iter().map(|(p, m, s)| (*m, p.as_str(), *s)).collect();
    assert_calls(&rows, client.pid, "127.0.0.1", srv.port, false, &want);
    for (n, r) in rows.iter().enumerate() {
        assert_eq!(
            s(r, "resp_body"),
            Some(format!("hello r{n}\n").as_str()),
            "{r:?}"
        );
    }
    Ok(())
}

/// Python snippet: keep-alive GETs of argv[1] (a path) on ONE TLS
/// connection to 127.0.0.1:argv[2], trusting CA argv[3], until file argv[4]
/// exists (60 s at most); prints how many it made.
const PY_KEEPALIVE_LOOP: &str = r#"
import http.client, os, ssl, sys, time
path, port, ca, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
n, end = 0, time.monotonic() + 60
while time.monotonic() < end and not os.path.exists(stop):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    n += 1
print(n, flush=True)
"#;

/// A keep-alive client already downloading when qmon starts: qmon's first
/// bytes on its connection are the middle of a 256 KiB response body.
/// That connection used to be muted as not HTTP, so none of its later
/// calls were recorded; now its next request decides, and every call after
/// the interrupted one is whole.
#[test]
fn keepalive_client_caught_mid_response_is_recorded() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let stop_file = env.path().join("stop");
    let client = std::process::Command::new(qmon_e2e::python_bin())
        .arg("-c")
        .arg(PY_KEEPALIVE_LOOP)
        .args(["/big?n=262144", &srv.port.to_string(), &env.ca()])
        .arg(&stop_file)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = client.id();
    // Let it get going, so qmon starts in the middle of its loop (most of
    // which is spent receiving bodies).
    std::thread::sleep(Duration::from_millis(1000));
    let db = env.path().join("q.db");
    let qmon = Qmon::record(&db, &[])?;
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&stop_file, b"")?;
    let out = client.wait_with_output()?;
    assert!(out.status.success(), "client failed: {out:?}");
    stop(qmon);

    let rows = calls_of(&db, pid);
    let whole: Vec<&Row> = rows
        .iter()
        .filter(|r| i(r, "status") == Some(200) && r.get("error") == Some(&Value::Null))
        .collect();
    // The call qmon joined halfway may be marked; nothing after it.
    assert!(
        whole.len() >= 3 && whole.len() + 1 >= rows.len(),
        "{} calls, {} whole; client made {}: {:#?}",
        rows.len(),
        whole.len(),
        String::from_utf8_lossy(&out.stdout).trim(),
        rows.iter()
            .map(|r| (s(r, "path"), i(r, "status"), s(r, "error")))
            .collect::<Vec<_>>()
    );
    for r in whole {
        assert_eq!(s(r, "path"), Some("/big?n=262144"), "id {:?}", r.get("id"));
        assert_eq!(i(r, "resp_bytes"), Some(262_144), "id {:?}", r.get("id"));
    }
    Ok(())
}
