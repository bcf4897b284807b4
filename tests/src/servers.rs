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
}

pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("nginx")
}

impl Nginx {
    pub fn start(prefix: &Path, certs: &Certs) -> Result<Nginx> {
        for d in ["logs", "tmp"] {
            std::fs::create_dir_all(prefix.join(d))?;
        }
        let port = free_port()?;
        let p = prefix.display();
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
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
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
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // nginx: SIGQUIT is graceful shutdown, SIGTERM fast; either is fine.
        stop_child(&mut self.child);
    }
}
