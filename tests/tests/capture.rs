//! Capture (`qmon trace`): real BPF, real clients, plaintext recovered from
//! OpenSSL for TLS and from syscalls for cleartext, attributed to the client
//! process and connection, in order, without gaps and without ciphertext.

use qmon_e2e::clients::{PY_URLLIB_GET, PY_URLLIB_GET_SHOW_LIBSSL};
use qmon_e2e::events::{find, has_tls_record_header, ConnEvent, Payload};
use qmon_e2e::{
    copy_libssl, curl, python, serial, unique_tag, Capture, ClientRun, Dir, Env, Qmon, QmonOutput,
    Source, TestServer,
};
use std::process::Command;
use std::time::Duration;

const EVENT_WAIT: Duration = Duration::from_secs(15);

/// What one client exchange looked like in the capture.
struct Exchange {
    conn_id: u64,
    conn: ConnEvent,
    egress: qmon_e2e::Stream,
    ingress: qmon_e2e::Stream,
}

fn context(out: &QmonOutput, cap: &Capture) -> String {
    format!(
        "capture: {}\nlast stats: {:?}\nqmon stderr tail:\n{}",
        cap.summary(),
        cap.stats().last(),
        out.stderr_tail()
    )
}

/// Finds the connection whose `source` egress stream carries `request_line`
/// and checks everything the capture contract promises about it: the
/// client's pid, the server's port, role client, complete in-order streams
/// in both directions, the response body in the ingress stream, and no
/// ciphertext anywhere on the connection.
fn check_exchange(
    cap: &Capture,
    out: &QmonOutput,
    client: &ClientRun,
    server_port: u16,
    source: Source,
    request_line: &str,
    response_body: &[u8],
) -> Exchange {
    let pid_data: Vec<String> = cap
        .data()
        .filter(|d| d.pid == client.pid)
        .map(|d| {
            format!(
                "conn {} {:?} {:?} pos {:?} len {}",
                d.conn_id, d.source, d.dir, d.pos, d.len
            )
        })
        .collect();
    let pid_conns: Vec<&ConnEvent> = cap.conns().filter(|c| c.pid == client.pid).collect();
    let ctx = format!(
        "{}\nclient pid {} conns: {pid_conns:?}\nclient pid data events: {pid_data:#?}",
        context(out, cap),
        client.pid
    );
    let ids = cap.conns_containing(source, Dir::Egress, request_line.as_bytes());
    assert_eq!(
        ids.len(),
        1,
        "expected exactly one connection whose {source:?} egress carries {request_line:?}, got {ids:?}\n{ctx}"
    );
    let conn_id = ids[0];
    let conn = cap
        .conn(conn_id)
        .unwrap_or_else(|| panic!("no conn event for conn_id {conn_id}\n{ctx}"))
        .clone();
    assert_eq!(
        conn.pid, client.pid,
        "connection attributed to pid {} ({:?}), client was pid {}\n{ctx}",
        conn.pid, conn.comm, client.pid
    );
    assert_eq!(
        conn.role, "client",
        "role of the client's connection: {conn:?}"
    );
    assert_eq!(
        conn.remote_port(),
        Some(server_port),
        "remote of the client's connection: {conn:?}"
    );
    for d in cap.data_of(conn_id) {
        assert_eq!(
            d.pid, client.pid,
            "data event on the client's connection from another pid: {d:?}"
        );
        assert!(
            !has_tls_record_header(&d.data()),
            "TLS record header (ciphertext) in captured data of conn {conn_id}: {d:?}"
        );
    }
    let egress = cap.stream(conn_id, source, Dir::Egress);
    let ingress = cap.stream(conn_id, source, Dir::Ingress);
    assert!(egress.is_complete(), "egress not complete: {egress}\n{ctx}");
    assert!(
        ingress.is_complete(),
        "ingress not complete: {ingress}\n{ctx}"
    );
    assert!(
        egress.bytes.starts_with(request_line.as_bytes()),
        "egress should start with the request line {request_line:?}: {egress}"
    );
    assert!(
        egress.contains(b"\r\n\r\n"),
        "egress lacks the end of the request head: {egress}"
    );
    assert!(
        ingress.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "ingress should start with the status line: {ingress}"
    );
    let head_end = find(&ingress.bytes, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of response head: {ingress}"));
    assert_eq!(
        &ingress.bytes[head_end + 4..],
        response_body,
        "response body in ingress stream: {ingress}"
    );
    Exchange {
        conn_id,
        conn,
        egress,
        ingress,
    }
}

fn stop(qmon: Qmon) -> (QmonOutput, Capture) {
    let out = qmon.stop();
    out.assert_clean_exit();
    let cap = out
        .capture()
        .expect("qmon trace stdout is valid JSON Lines");
    // Contract: SIGINT ends with one final stats line.
    assert!(
        matches!(cap.events.last(), Some(qmon_e2e::events::Event::Stats(_))),
        "last line of qmon trace after SIGINT is not a stats line: {:?}",
        out.stdout.last()
    );
    (out, cap)
}

/// Waits until the capture has `needle` in some `source` ingress stream of
/// pid's connections, so stopping qmon does not race its ring buffer reader.
fn wait_ingress(qmon: &Qmon, source: Source, needle: &[u8]) -> bool {
    qmon.wait_for(EVENT_WAIT, |c| {
        !c.conns_containing(source, Dir::Ingress, needle).is_empty()
    })
}

#[test]
fn curl_https_plaintext_from_ssl_read_write() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("curltls");
    let path = format!("/hello?tag={tag}");
    let client = curl(&["--http1.1", "--cacert", &env.ca(), &srv.url(&path)])?.ok();
    let body = format!("hello {tag}\n");
    assert_eq!(client.stdout_str(), body);
    wait_ingress(&qmon, Source::OpenSsl, body.as_bytes());
    let (out, cap) = stop(qmon);

    let ex = check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::OpenSsl,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    assert_eq!(ex.conn.comm.as_deref(), Some("curl"), "{:?}", ex.conn);
    // TLS conn: the bytes on the socket are ciphertext and must not be
    // reported as data.
    assert!(
        !cap.has_source(ex.conn_id, Source::Syscall),
        "syscall-source data on a TLS connection: {:?}",
        cap.data_of(ex.conn_id)
            .iter()
            .filter(|d| d.source == Source::Syscall)
            .collect::<Vec<_>>()
    );
    assert!(ex
        .egress
        .contains(format!("Host: 127.0.0.1:{}", srv.port).as_bytes()));
    assert!(ex.ingress.pids.contains(&client.pid));
    Ok(())
}

#[test]
fn python_urllib_https_plaintext_from_ssl_ex_calls() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("urllib");
    let path = format!("/hello?tag={tag}");
    let client = python(PY_URLLIB_GET, &[&srv.url(&path), &env.ca()], &[])?.ok();
    let body = format!("hello {tag}\n");
    assert_eq!(client.stdout_str(), body);
    wait_ingress(&qmon, Source::OpenSsl, body.as_bytes());
    let (out, cap) = stop(qmon);

    let ex = check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::OpenSsl,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    assert!(!cap.has_source(ex.conn_id, Source::Syscall));
    assert!(
        ex.egress.contains(b"User-Agent: Python-urllib/"),
        "{}",
        ex.egress
    );

    // The server side of the same exchange (Python ssl, SSL_read_ex /
    // SSL_write_ex in the server process) is never a client connection.
    for c in cap.conns().filter(|c| c.pid == srv.pid()) {
        assert_ne!(
            c.role, "client",
            "server-side connection reported as client: {c:?}"
        );
    }
    Ok(())
}

#[test]
fn curl_plain_http_from_syscalls() -> anyhow::Result<()> {
    let _g = serial();
    let srv = TestServer::start("127.0.0.1", None)?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("plain");
    let path = format!("/hello?tag={tag}");
    let client = curl(&[&srv.url(&path)])?.ok();
    let body = format!("hello {tag}\n");
    wait_ingress(&qmon, Source::Syscall, body.as_bytes());
    let (out, cap) = stop(qmon);
    let ex = check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::Syscall,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    assert!(
        !cap.has_source(ex.conn_id, Source::OpenSsl),
        "openssl data on a cleartext connection"
    );
    Ok(())
}

#[test]
fn ipv6_loopback_connection() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("::1", Some(&env.certs))?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("v6");
    let path = format!("/hello?tag={tag}");
    let client = curl(&["--cacert", &env.ca(), "--http1.1", &srv.url(&path)])?.ok();
    let body = format!("hello {tag}\n");
    wait_ingress(&qmon, Source::OpenSsl, body.as_bytes());
    let (out, cap) = stop(qmon);
    let ex = check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::OpenSsl,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    assert_eq!(
        ex.conn.remote_ip(),
        Some("::1".parse().unwrap()),
        "remote of an IPv6 loopback connection: {:?}",
        ex.conn
    );
    Ok(())
}

/// Runs the urllib client against `srv` with `libdir` first on the library
/// path, checks it really loaded `libssl` from there, and that qmon attached
/// to that copy and captured the exchange.
fn urllib_with_libssl_copy(
    env: &Env,
    srv: &TestServer,
    qmon: Qmon,
    libdir: &std::path::Path,
    libssl: &std::path::Path,
) -> anyhow::Result<()> {
    let tag = unique_tag("late");
    let path = format!("/hello?tag={tag}");
    let ld = libdir.display().to_string();
    let client = python(
        PY_URLLIB_GET_SHOW_LIBSSL,
        &[&srv.url(&path), &env.ca()],
        &[("LD_LIBRARY_PATH", &ld)],
    )?
    .ok();
    assert!(
        client.stderr.contains(&libssl.display().to_string()),
        "the client did not load the copied libssl: {}",
        client.stderr
    );
    let body = format!("hello {tag}\n");
    wait_ingress(&qmon, Source::OpenSsl, body.as_bytes());
    let (out, cap) = stop(qmon);
    check_attach(&cap, &out, libssl);
    check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::OpenSsl,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    Ok(())
}

#[test]
fn client_started_after_qmon_with_fresh_libssl_is_attached_at_exec() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    // A libssl copy with its own inode that no process maps when qmon
    // starts: only exec/mmap-time attach can catch the client using it.
    let libdir = env.path().join("late-libssl");
    let libssl = copy_libssl(&libdir)?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let qmon = Qmon::trace(&[])?;
    urllib_with_libssl_copy(&env, &srv, qmon, &libdir, &libssl)
}

#[test]
fn libssl_written_while_qmon_runs_is_attached_when_loaded() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let qmon = Qmon::trace(&[])?;
    // Written after qmon is ready, as an upgrade or unpacker would: the
    // file is empty when first opened. A failed look at it then must not
    // stop qmon from attaching once a process actually maps it.
    let libdir = env.path().join("unpacked-libssl");
    let libssl = qmon_e2e::copy_libssl_with_pause(&libdir, Duration::from_millis(300))?;
    urllib_with_libssl_copy(&env, &srv, qmon, &libdir, &libssl)
}

fn check_attach(cap: &Capture, out: &QmonOutput, libssl: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(libssl).unwrap().ino();
    let want = libssl.display().to_string();
    let attaches: Vec<_> = cap.attaches().collect();
    let hit = attaches.iter().find(|a| a.path == want);
    let hit = hit.unwrap_or_else(|| {
        panic!(
            "no attach event for {want}; attaches: {attaches:?}\n{}",
            context(out, cap)
        )
    });
    assert_eq!(hit.inode, ino, "attach event inode for {want}");
}

#[test]
fn curl_with_libssl_in_nonstandard_path() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let libdir = env.path().join("opt/vendored/lib");
    let libssl = copy_libssl(&libdir)?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("vendored");
    let path = format!("/hello?tag={tag}");
    let mut cmd = Command::new("curl");
    cmd.env("LD_LIBRARY_PATH", &libdir).args([
        "-sS",
        "--http1.1",
        "--cacert",
        &env.ca(),
        &srv.url(&path),
    ]);
    let client = qmon_e2e::clients::run(cmd, Duration::from_secs(60))?.ok();
    let body = format!("hello {tag}\n");
    assert_eq!(client.stdout_str(), body);
    wait_ingress(&qmon, Source::OpenSsl, body.as_bytes());
    let (out, cap) = stop(qmon);
    check_attach(&cap, &out, &libssl);
    check_exchange(
        &cap,
        &out,
        &client,
        srv.port,
        Source::OpenSsl,
        &format!("GET {path} HTTP/1.1\r\n"),
        body.as_bytes(),
    );
    Ok(())
}

#[test]
fn tiny_ring_buffer_overflow_is_counted_and_reported() -> anyhow::Result<()> {
    let _g = serial();
    let srv = TestServer::start("127.0.0.1", None)?;
    let qmon = Qmon::trace(&["--ring-size", "16384"])?;
    // 200 parallel POSTs of 16 KiB echoed back: 6.4 MiB through a 16 KiB
    // ring at once, far more than user space can drain in time.
    let payload_file = tempfile::NamedTempFile::new()?;
    std::fs::write(payload_file.path(), "x".repeat(16384))?;
    let data_arg = format!("@{}", payload_file.path().display());
    let echo = srv.url("/echo");
    let mut args: Vec<&str> = vec!["-sS", "--parallel", "--parallel-max", "200"];
    for i in 0..200 {
        if i > 0 {
            args.push("--next");
        }
        args.extend(["--data-binary", &data_arg, &echo]);
    }
    let mut cmd = Command::new("curl");
    cmd.args(&args);
    qmon_e2e::clients::run(cmd, Duration::from_secs(120))?.ok();
    // Stats come every second; give it a few.
    qmon.wait_for(Duration::from_secs(5), |c| c.max_lost_events() > 0);
    let (out, cap) = stop(qmon);
    let stats: Vec<_> = cap.stats().collect();
    assert!(!stats.is_empty(), "no stats lines\n{}", context(&out, &cap));
    assert!(
        cap.max_lost_events() > 0,
        "a 16 KiB ring under a 200×16 KiB burst reported no lost events: {stats:?}"
    );
    assert!(
        out.stderr.to_lowercase().contains("lost"),
        "qmon did not report the loss on stderr:\n{}",
        out.stderr_tail()
    );
    Ok(())
}

#[test]
fn server_side_traffic_is_never_a_client_connection() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let tls = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let plain = TestServer::start("127.0.0.1", None)?;
    let qmon = Qmon::trace(&[])?;
    let tag = unique_tag("srvside");
    let tls_client = curl(&[
        "--cacert",
        &env.ca(),
        "--http1.1",
        "--data-binary",
        &tag,
        &tls.url("/echo"),
    ])?
    .ok();
    let plain_client = curl(&["--data-binary", &tag, &plain.url("/echo")])?.ok();
    assert_eq!(tls_client.stdout_str(), tag);
    assert_eq!(plain_client.stdout_str(), tag);
    qmon.wait_for(EVENT_WAIT, |c| {
        c.conns_containing(Source::OpenSsl, Dir::Ingress, tag.as_bytes())
            .iter()
            .chain(&c.conns_containing(Source::Syscall, Dir::Ingress, tag.as_bytes()))
            .count()
            >= 2
    });
    let (out, cap) = stop(qmon);
    let ctx = context(&out, &cap);
    for srv in [&tls, &plain] {
        for c in cap.conns().filter(|c| c.pid == srv.pid()) {
            assert_ne!(c.role, "client", "server-side conn as client: {c:?}\n{ctx}");
        }
    }
    // Any connection carrying the tag as egress from the server process
    // would be the server side being recorded as an outbound call.
    for source in [Source::OpenSsl, Source::Syscall] {
        for id in cap.conns_containing(source, Dir::Egress, tag.as_bytes()) {
            let c = cap.conn(id);
            assert!(
                c.is_some_and(
                    |c| (c.pid != tls.pid() && c.pid != plain.pid()) || c.role != "client"
                ),
                "server's echo captured as client egress: {c:?}\n{ctx}"
            );
        }
    }
    // And the clients' side was seen.
    for (client, source) in [
        (&tls_client, Source::OpenSsl),
        (&plain_client, Source::Syscall),
    ] {
        let ids = cap.conns_containing(source, Dir::Egress, tag.as_bytes());
        assert!(
            ids.iter()
                .any(|&id| cap.conn(id).is_some_and(|c| c.pid == client.pid)),
            "client pid {} POST with the tag not captured from {source:?}\n{ctx}",
            client.pid
        );
    }
    Ok(())
}

#[test]
fn sigterm_ends_trace_with_final_stats_and_exit_0() -> anyhow::Result<()> {
    let _g = serial();
    let qmon = Qmon::trace(&[])?;
    std::thread::sleep(Duration::from_millis(1500));
    let out = qmon.terminate();
    out.assert_clean_exit();
    let cap = out.capture()?;
    assert!(
        matches!(cap.events.last(), Some(qmon_e2e::events::Event::Stats(_))),
        "last line after SIGTERM is not a stats line: {:?}",
        out.stdout.last()
    );
    Ok(())
}
