//! Real client processes: curl, python3 (urllib and raw sockets).

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One finished client process.
#[derive(Debug)]
pub struct ClientRun {
    /// The pid the client ran as: what qmon must attribute its traffic to.
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl ClientRun {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with the client's stderr unless it exited 0.
    pub fn ok(self) -> ClientRun {
        assert!(
            self.status.success(),
            "client pid {} failed ({}): stdout={:?} stderr={}",
            self.pid,
            self.status,
            self.stdout_str(),
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion (killed after `timeout`), capturing output.
pub fn run(mut cmd: Command, timeout: Duration) -> Result<ClientRun> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let pid = child.id();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("client {cmd:?} (pid {pid}) timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Ok(ClientRun {
        pid,
        status,
        stdout,
        stderr,
    })
}

/// Runs `curl -sS ARGS...` (60 s timeout).
pub fn curl(args: &[&str]) -> Result<ClientRun> {
    let mut c = Command::new("curl");
    c.arg("-sS").args(args);
    run(c, Duration::from_secs(60))
}

/// The Python interpreter for clients and servers: `QMON_PYTHON`, else the
/// distribution's `/usr/bin/python3` (linked against the system libssl),
/// else `python3` from `PATH`.
pub fn python_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("QMON_PYTHON") {
        return PathBuf::from(p);
    }
    let sys = PathBuf::from("/usr/bin/python3");
    if sys.is_file() {
        return sys;
    }
    PathBuf::from("python3")
}

/// Runs `python3 -c CODE ARGS...` with extra environment (60 s timeout).
pub fn python(code: &str, args: &[&str], env: &[(&str, &str)]) -> Result<ClientRun> {
    let mut c = Command::new(python_bin());
    c.arg("-c").arg(code).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c, Duration::from_secs(60))
}

/// Python snippet: GET argv[1] with urllib over TLS trusting CA argv[2]
/// (urllib → ssl module → SSL_read_ex/SSL_write_ex). Extra headers come as
/// argv[3:] in `Name: value` form. Prints the body to stdout.
pub const PY_URLLIB_GET: &str = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None
req = urllib.request.Request(sys.argv[1])
for h in sys.argv[3:]:
    k, v = h.split(": ", 1)
    req.add_header(k, v)
with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
    sys.stdout.buffer.write(r.read())
"#;

/// Python snippet: like [`PY_URLLIB_GET`] but first prints (to stderr) the
/// libssl path mapped into this process, so a test can check which copy of
/// libssl actually served the request.
pub const PY_URLLIB_GET_SHOW_LIBSSL: &str = r#"
import ssl, sys, urllib.request
maps = open("/proc/self/maps").read().splitlines()
libs = sorted({l.split()[-1] for l in maps if "libssl.so" in l})
sys.stderr.write("LIBSSL " + " ".join(libs) + "\n")
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(sys.argv[1], context=ctx, timeout=30) as r:
    sys.stdout.buffer.write(r.read())
"#;

/// Python snippet: raw socket to argv[1]:argv[2], sends every request in
/// argv[3:] (paths) pipelined in ONE write, then reads until it has seen that
/// many complete responses (Content-Length or chunked bodies). Prints the raw
/// responses.
pub const PY_PIPELINE: &str = r#"
import socket, sys
host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.create_connection((host, port), timeout=30)
reqs = b"".join(
    b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: qmon-pipeline\r\n\r\n"
    % (p.encode(), host.encode(), port) for p in paths)
s.sendall(reqs)
buf = b""
def complete(buf, n):
    i = 0
    for _ in range(n):
        h = buf.find(b"\r\n\r\n", i)
        if h < 0:
            return False
        head = buf[i:h].decode("latin-1").lower()
        i = h + 4
        if "transfer-encoding: chunked" in head:
            while True:
                e = buf.find(b"\r\n", i)
                if e < 0:
                    return False
                size = int(buf[i:e].split(b";")[0], 16)
                i = e + 2 + size + 2
                if i > len(buf):
                    return False
                if size == 0:
                    break
        else:
            cl = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    cl = int(line.split(":", 1)[1])
            i += cl
            if i > len(buf):
                return False
    return True
while not complete(buf, len(paths)):
    d = s.recv(65536)
    if not d:
        break
    buf += d
s.close()
sys.stdout.buffer.write(buf)
"#;
