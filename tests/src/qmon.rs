//! Running the `qmon` binary: the `Qmon` guard and `qmon query`.

use crate::{qmon_bin, Capture};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `qmon` may take to print `qmon: ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `qmon` may take to flush and exit after SIGINT.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

type Lines = Arc<Mutex<Vec<String>>>;

/// A running `qmon trace` / `qmon record`. Stopped with SIGINT on drop.
pub struct Qmon {
    child: Option<Child>,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
    /// The `--db` given to `record`, if any.
    pub db: Option<PathBuf>,
}

/// What a stopped `qmon` left behind.
#[derive(Debug)]
pub struct QmonOutput {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
    /// True when it ignored SIGINT for [`STOP_TIMEOUT`] and was SIGKILLed.
    pub hung: bool,
}

impl QmonOutput {
    pub fn capture(&self) -> Result<Capture> {
        Capture::from_lines(&self.stdout)
    }

    /// Last lines of stderr, for assertion messages.
    pub fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Asserts a clean shutdown: exit 0 after SIGINT, within the timeout.
    pub fn assert_clean_exit(&self) {
        assert!(
            !self.hung,
            "qmon did not exit within {STOP_TIMEOUT:?} of SIGINT; stderr:\n{}",
            self.stderr_tail()
        );
        assert!(
            self.status.success(),
            "qmon exited with {} after SIGINT; stderr:\n{}",
            self.status,
            self.stderr_tail()
        );
    }
}

fn reader<R: std::io::Read + Send + 'static>(
    r: R,
    sink: Lines,
    ready: Option<mpsc::Sender<bool>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if let Some(tx) = &ready {
                        if line.contains("qmon: ready") {
                            let _ = tx.send(true);
                        }
                    }
                    sink.lock().unwrap().push(line);
                }
            }
        }
        if let Some(tx) = &ready {
            let _ = tx.send(false);
        }
    })
}

impl Qmon {
    /// Spawns `qmon SUBCMD ARGS...` and waits for `qmon: ready` on stderr.
    pub fn start(subcmd: &str, args: &[&str]) -> Result<Qmon> {
        let bin = qmon_bin()?;
        let mut child = Command::new(&bin)
            .arg(subcmd)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {} {subcmd}", bin.display()))?;
        let stdout: Lines = Default::default();
        let stderr: Lines = Default::default();
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            reader(child.stdout.take().unwrap(), stdout.clone(), None),
            reader(child.stderr.take().unwrap(), stderr.clone(), Some(tx)),
        ];
        let mut q = Qmon {
            child: Some(child),
            stdout,
            stderr,
            readers,
            db: None,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(true) => Ok(q),
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let out = q.stop_with(libc::SIGKILL);
                bail!(
                    "qmon {subcmd} {args:?} exited before `qmon: ready` ({}); stderr:\n{}",
                    out.status,
                    out.stderr_tail()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let out = q.stop_with(libc::SIGKILL);
                bail!(
                    "qmon {subcmd} {args:?} not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                    out.stderr_tail()
                )
            }
        }
    }

    /// `qmon trace ARGS...`
    pub fn trace(args: &[&str]) -> Result<Qmon> {
        Qmon::start("trace", args)
    }

    /// `qmon record --db DB ARGS...`. Unless ARGS choose a
    /// `--metrics-addr`, the exporter listens on a kernel-chosen loopback
    /// port, so tests never depend on 9464 being free.
    pub fn record(db: &Path, args: &[&str]) -> Result<Qmon> {
        let dbs = db.to_str().context("db path not UTF-8")?;
        let mut all = vec!["--db", dbs];
        if !args.contains(&"--metrics-addr") {
            all.extend_from_slice(&["--metrics-addr", "127.0.0.1:0"]);
        }
        all.extend_from_slice(args);
        let mut q = Qmon::start("record", &all)?;
        q.db = Some(db.to_path_buf());
        Ok(q)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Still running (has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Snapshot of stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Snapshot of stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Parses stdout so far. Lines still being written are not included
    /// (the reader only stores complete lines).
    pub fn capture_so_far(&self) -> Result<Capture> {
        Capture::from_lines(&self.stdout_lines())
    }

    /// Waits until `pred` holds on the events so far (true) or `timeout`
    /// passes (false).
    pub fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&Capture) -> bool) -> bool {
        crate::wait_until(timeout, || {
            self.capture_so_far().map(|c| pred(&c)).unwrap_or(false)
        })
    }

    /// SIGINT, wait for exit (SIGKILL after [`STOP_TIMEOUT`]), collect output.
    pub fn stop(mut self) -> QmonOutput {
        self.stop_with(libc::SIGINT)
    }

    /// SIGTERM variant of [`Qmon::stop`].
    pub fn terminate(mut self) -> QmonOutput {
        self.stop_with(libc::SIGTERM)
    }

    /// `kill -9`: no chance to flush.
    pub fn kill9(mut self) -> QmonOutput {
        self.stop_with(libc::SIGKILL)
    }

    fn stop_with(&mut self, sig: i32) -> QmonOutput {
        let mut child = self.child.take().expect("qmon already stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut hung = false;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if Instant::now() >= deadline {
                hung = true;
                let _ = child.kill();
                break child.wait().expect("wait qmon");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        QmonOutput {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: self.stderr.lock().unwrap().join("\n"),
            hung,
        }
    }
}

impl Drop for Qmon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_with(libc::SIGINT);
        }
    }
}

/// One row of `qmon query --format json`.
pub type Row = serde_json::Map<String, Value>;

/// Runs `qmon query --db DB EXTRA... SQL` and returns its raw output.
pub fn query_raw(db: &Path, extra: &[&str], sql: &str) -> Result<std::process::Output> {
    let bin = qmon_bin()?;
    Command::new(&bin)
        .arg("query")
        .arg("--db")
        .arg(db)
        .args(extra)
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} query", bin.display()))
}

/// Runs `qmon query --format json SQL` and deserializes the rows. Accepts a
/// JSON array of objects (or, leniently in layout only, one object a line).
pub fn query(db: &Path, sql: &str) -> Result<Vec<Row>> {
    let out = query_raw(db, &["--format", "json"], sql)?;
    if !out.status.success() {
        bail!(
            "qmon query {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("query output not UTF-8")?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(rows) = serde_json::from_str::<Vec<Row>>(trimmed) {
        return Ok(rows);
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Row>(l)
                .with_context(|| format!("query output is neither a JSON array nor JSONL: {l}"))
        })
        .collect()
}
