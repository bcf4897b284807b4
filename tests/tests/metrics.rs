//! Prometheus exporter, end to end: `qmon record --metrics-addr` serves
//! `/metrics` (which `promtool check metrics` accepts), `/healthz` and
//! `/readyz`; a real Prometheus (Debian package, started here on loopback
//! with its own config and TSDB dir) scrapes it every second while real
//! HTTPS calls (curl, python urllib; 200, 404 and 500 responses) flow, and
//! every PromQL expression of every panel of every dashboard returns data.

use anyhow::{bail, Context, Result};
use qmon_e2e::clients::PY_URLLIB_GET;
use qmon_e2e::dashboards::{exprs, load_all, substitute};
use qmon_e2e::servers::free_port;
use qmon_e2e::{curl, python, serial, wait_until, Env, Qmon, TestServer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `GET path` on 127.0.0.1:port over plain HTTP/1.0: (status, body).
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {buf:?}"))?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// A Prometheus server of our own: temp config, temp TSDB, loopback port.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target_port: u16) -> Result<Prometheus> {
        let bin = ["/usr/bin/prometheus", "/usr/sbin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .context("prometheus not installed (Debian package `prometheus`)")?;
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: qmon\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )?;
        let port = free_port()?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.join("prometheus.log"),
            )?))
            .spawn()
            .context("spawn prometheus")?;
        let mut p = Prometheus { child, port };
        if !wait_until(Duration::from_secs(30), || {
            matches!(http_get(port, "/-/ready"), Ok((200, _)))
        }) {
            let _ = p.child.kill();
            bail!(
                "prometheus not ready on 127.0.0.1:{port}; log:\n{}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
        }
        Ok(p)
    }

    /// Instant query through the HTTP API; the `data.result` array.
    fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let run = curl(&["--data-urlencode", &format!("query={expr}"), &url])?;
        let v: Value = serde_json::from_slice(&run.stdout)
            .with_context(|| format!("prometheus answer {:?}", run.stdout_str()))?;
        if v["status"] != "success" {
            bail!("query {expr} failed: {v}");
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if !wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn metrics_endpoint_promtool_and_every_dashboard_query_against_prometheus() {
    let _g = serial();
    let env = Env::new().unwrap();
    let server = TestServer::start("127.0.0.1", Some(&env.certs)).unwrap();
    let mport = free_port().unwrap();
    let maddr = format!("127.0.0.1:{mport}");
    let db = env.path().join("qmon.db");
    let qmon = Qmon::record(&db, &["--metrics-addr", &maddr, "--metrics-route-label"]).unwrap();

    assert_eq!(
        http_get(mport, "/readyz").unwrap().0,
        200,
        "readyz after ready"
    );
    assert_eq!(http_get(mport, "/healthz").unwrap().0, 200, "healthz");
    assert_eq!(http_get(mport, "/nope").unwrap().0, 404);

    let prom = Prometheus::start(&env.path().join("prom"), mport).unwrap();

    // Real HTTPS traffic, with errors, until the queries are done.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let ca = env.ca();
        let urls = [
            server.url("/hello"),
            server.url("/status/500"),
            server.url("/status/404"),
        ];
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    let _ = curl(&["--cacert", &ca, "-o", "/dev/null", u]);
                }
                if n % 3 == 0 {
                    let _ = python(PY_URLLIB_GET, &[&urls[0], &ca], &[]);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Calls reach the exporter with the OTel labels.
    assert!(
        wait_until(Duration::from_secs(30), || {
            http_get(mport, "/metrics").is_ok_and(|(_, b)| {
                b.contains("error_type=\"500\"") && b.contains("process_executable_name=\"curl\"")
            })
        }),
        "no 500 calls from curl in /metrics:\n{}",
        http_get(mport, "/metrics").map(|r| r.1).unwrap_or_default()
    );

    // promtool accepts a real scrape.
    let (_, body) = http_get(mport, "/metrics").unwrap();
    for want in [
        "http_client_request_duration_seconds_bucket{",
        "http_client_request_body_size_bytes_bucket{",
        "http_client_response_body_size_bytes_bucket{",
        "network_protocol_version=\"1.1\"",
        "url_template=\"/hello\"",
        "qmon_events_total ",
        "qmon_tls_libraries_attached ",
        "qmon_ready 1",
    ] {
        assert!(body.contains(want), "missing {want:?} in /metrics:\n{body}");
    }
    assert!(!body.contains("pid=\""), "no pid label: {body}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed: {}{}\n--- scrape:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes it (OpenMetrics negotiated) and has the calls.
    assert!(
        wait_until(Duration::from_secs(30), || {
            prom.query("up{job=\"qmon\"} == 1")
                .is_ok_and(|r| !r.is_empty())
                && prom
                    .query("increase(http_client_request_duration_seconds_count{error_type=\"500\"}[30s]) > 0")
                    .is_ok_and(|r| !r.is_empty())
        }),
        "prometheus never saw qmon's 500 calls"
    );

    // Every panel query of every dashboard returns data.
    let mut empty = Vec::new();
    let mut total = 0;
    for (path, d) in load_all().unwrap() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (title, e) in exprs(&d) {
            total += 1;
            let q = substitute(&e);
            let mut last = None;
            let ok = wait_until(Duration::from_secs(20), || match prom.query(&q) {
                Ok(r) if !r.is_empty() => true,
                other => {
                    last = Some(format!("{other:?}"));
                    false
                }
            });
            if !ok {
                empty.push(format!(
                    "{name} / {title}: {q} -> {}",
                    last.unwrap_or_default()
                ));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(total >= 20, "only {total} dashboard queries found");
    assert!(
        empty.is_empty(),
        "{} of {total} dashboard queries returned no data:\n{}",
        empty.len(),
        empty.join("\n")
    );

    drop(prom);
    let out = qmon.stop();
    out.assert_clean_exit();
}

#[test]
fn metrics_addr_none_and_bad_values() {
    let _g = serial();
    let env = Env::new().unwrap();
    let bin = qmon_e2e::qmon_bin().unwrap();
    let db = env.path().join("bad.db");
    let out = Command::new(&bin)
        .args(["record", "--metrics-addr", "not-an-address", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("--metrics-addr") && last.contains("not-an-address"),
        "error line should name the flag and value: {err}"
    );

    // `none`: no listener, recording still works.
    let port = free_port().unwrap();
    let qmon = Qmon::record(&env.path().join("none.db"), &["--metrics-addr", "none"]).unwrap();
    assert!(http_get(port, "/metrics").is_err());
    let out = qmon.stop();
    out.assert_clean_exit();
    assert!(
        !out.stderr.contains("metrics: serving"),
        "{}",
        out.stderr_tail()
    );
}
