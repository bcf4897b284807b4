//! Local servers: the committed Python test server and a throwaway nginx.

use crate::{python_bin, server_script, wait_until, Certs};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn stop_child(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    if !wait_until(Duration::from_secs(5), || {
        matches!(child.try_wait(), Ok(Some(_)))
    }) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `tests/servers/https_server.py`, running.
pub struct TestServer {
    child: Child,
    pub port: u16,
    /// Bind address, e.g. `127.0.0.1` or `::1`.
    pub bind: String,
    pub tls: bool,
}

impl TestServer {
    /// Starts the server on `bind` (IPv4 or IPv6 literal), port chosen by
    /// the kernel, with TLS when `certs` is given.
    pub fn start(bind: &str, certs: Option<&Certs>) -> Result<TestServer> {
        let mut cmd = Command::new(python_bin());
        cmd.arg(server_script())
            .args(["--bind", bind, "--port", "0"]);
        if let Some(c) = certs {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("spawn test server")?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!("test server did not print its port within 20 s");
            }
        };
        let port: u16 = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("test server printed {line:?} instead of a port");
            }
        };
        Ok(TestServer {
            child,
            port,
            bind: bind.to_string(),
            tls: certs.is_some(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` as it appears in a URL (`[::1]:port` for IPv6).
    pub fn authority(&self) -> String {
        if self.bind.contains(':') {
            format!("[{}]:{}", self.bind, self.port)
        } else {
            format!("{}:{}", self.bind, self.port)
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// nginx (Debian `nginx-light`) serving TLS on 127.0.0.1, from a generated
/// config in a temp dir: foreground, single process (so its one pid is the
/// pid doing server-side SSL_read/SSL_write), pid file in the temp dir.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub prefix: PathBuf,
    pub tls: bool,
}

pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("nginx")
}

/// What an [`Nginx`] listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxMode {
    /// HTTPS, HTTP/1.1 only.
    Tls,
    /// HTTPS with HTTP/2 negotiated by ALPN (`listen … ssl http2`).
    H2Tls,
    /// Cleartext HTTP/2 with prior knowledge (`listen … http2`, no ssl).
    /// nginx does not implement `Upgrade: h2c`.
    H2c,
}

/// Body of `/h2-big` on an HTTP/2 nginx (nginx caps a config string at 4 KiB).
pub const NGINX_BIG_LEN: usize = 4000;

impl Nginx {
    pub fn start(prefix: &Path, certs: &Certs) -> Result<Nginx> {
        Nginx::start_mode(prefix, certs, NginxMode::Tls)
    }

    /// Like [`Nginx::start`], for any [`NginxMode`]. HTTP/2 modes also serve
    /// `/h2-big` ([`NGINX_BIG_LEN`] bytes) and echo the URI (`"$uri\n"`)
    /// under `/burst/` and `/ll/`, and allow 256 concurrent streams.
    pub fn start_mode(prefix: &Path, certs: &Certs, mode: NginxMode) -> Result<Nginx> {
        for d in ["logs", "tmp"] {
            std::fs::create_dir_all(prefix.join(d))?;
        }
        let port = free_port()?;
        let p = prefix.display();
        let listen = match mode {
            NginxMode::Tls => "ssl",
            NginxMode::H2Tls => "ssl http2",
            NginxMode::H2c => "http2",
        };
        let h2_extra = if mode == NginxMode::Tls {
            String::new()
        } else {
            format!(
                r#"http2_max_concurrent_streams 256;
        location = /h2-big {{ return 200 "{big}"; }}
        location /burst/ {{ return 200 "$uri\n"; }}
        location /ll/ {{ return 200 "$uri\n"; }}"#,
                big = "x".repeat(NGINX_BIG_LEN)
            )
        };
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/logs/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port} {listen};
        server_name localhost;
        {h2_extra}
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /nginx-hello {{ return 200 "hello from nginx\n"; }}
        location /status/ {{ return 201 "created\n"; }}
        location / {{ return 404 "nope\n"; }}
    }}
}}
"#,
            cert = certs.cert.display(),
            key = certs.key.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut child = Command::new(nginx_bin())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn nginx (is nginx-light installed?)")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = wait_until(Duration::from_secs(15), || {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
            bail!("nginx exited early ({st}): {log}");
        }
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            bail!("nginx did not listen on {addr} within 15 s");
        }
        Ok(Nginx {
            child,
            port,
            prefix: prefix.to_path_buf(),
            tls: mode != NginxMode::H2c,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // nginx: SIGQUIT is graceful shutdown, SIGTERM fast; either is fine.
        stop_child(&mut self.child);
    }
}

/// A Python server script from the repository, run with [`python_bin`]:
/// either told its port (`port_arg`: the port is appended to `args` and
/// the server is up once it accepts a connection) or printing the port it
/// bound as its first stdout line.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    pub fn start(script: &Path, args: &[&str], port_arg: bool) -> Result<PyServer> {
        let mut cmd = Command::new(python_bin());
        cmd.arg(script).args(args);
        let fixed = if port_arg {
            let p = free_port()?;
            cmd.arg(p.to_string());
            Some(p)
        } else {
            None
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", script.display()))?;
        let stdout = child.stdout.take().unwrap();
        let port = match fixed {
            Some(p) => {
                let addr: SocketAddr = format!("127.0.0.1:{p}").parse().unwrap();
                let up = wait_until(Duration::from_secs(20), || {
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                });
                if !up {
                    stop_child(&mut child);
                    bail!("{} did not listen on {addr} within 20 s", script.display());
                }
                p
            }
            None => {
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(stdout).read_line(&mut line);
                    let _ = tx.send(line);
                });
                let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
                match line.trim().parse() {
                    Ok(p) => p,
                    Err(_) => {
                        stop_child(&mut child);
                        bail!("{} printed {line:?} instead of a port", script.display());
                    }
                }
            }
        };
        Ok(PyServer { child, port })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}
