//! End-to-end harness for qmon.
//!
//! Everything here is real: the `qmon` binary loads its BPF programs into the
//! running kernel, clients are real `curl` and `python3` processes, servers
//! are a real Python `http.server` (optionally TLS) and a real nginx, and the
//! store is a real SQLite file read back through `qmon query`.
//!
//! Tests that load BPF must not overlap (they all see every process on the
//! machine, and ring-buffer pressure from one would disturb another), so each
//! takes [`serial()`], a cross-process `flock`, first. That works both under
//! `cargo test` (threads) and `cargo nextest` (processes).

pub mod certs;
pub mod clients;
pub mod dashboards;
pub mod events;
pub mod qmon;
pub mod servers;

pub use certs::Certs;
pub use clients::{curl, python, python_bin, ClientRun};
pub use events::{Capture, Dir, Source, Stream};
pub use qmon::{query, query_raw, Qmon, QmonOutput, Row};
pub use servers::{Nginx, NginxMode, PyServer, TestServer};

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Root of the cargo workspace (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of the committed Python test server.
pub fn server_script() -> PathBuf {
    workspace_root().join("tests/servers/https_server.py")
}

/// Locates the `qmon` binary under test.
///
/// `QMON_BIN` wins. Otherwise the binary next to this test executable's
/// profile directory (`<target>/<profile>/qmon`), which honours
/// `CARGO_TARGET_DIR` and the profile the tests were built with, then
/// `<workspace>/target/debug/qmon`.
pub fn qmon_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("QMON_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("QMON_BIN={} does not exist", p.display());
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/<test-binary>
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("qmon"));
        }
    }
    candidates.push(workspace_root().join("target/debug/qmon"));
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "qmon binary not found (looked at {:?}); run `cargo build -p qmon` first or set QMON_BIN",
        candidates
    )
}

/// Fails (never skips) when not root: these tests load BPF programs.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "qmon end-to-end tests load BPF programs and must run as root"
    );
}

/// Cross-process exclusive lock held for the duration of one e2e test.
pub struct SerialGuard {
    _file: File,
}

/// Takes the e2e lock (blocking). Also checks for root.
pub fn serial() -> SerialGuard {
    require_root();
    let path = std::env::temp_dir().join("qmon-e2e.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: valid fd owned by `file` for the guard's lifetime.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    SerialGuard { _file: file }
}

/// A per-test scratch directory with a freshly generated CA and server cert.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub certs: Certs,
}

impl Env {
    pub fn new() -> Result<Env> {
        let dir = tempfile::Builder::new()
            .prefix("qmon-e2e-")
            .tempdir()
            .context("create temp dir")?;
        let certs = Certs::generate(&dir.path().join("pki"))?;
        Ok(Env { dir, certs })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The CA file as a string, for `--cacert` and Python `cafile=`.
    pub fn ca(&self) -> String {
        self.certs.ca.display().to_string()
    }
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies `libssl.so.3` and `libcrypto.so.3` from the system into `dir`,
/// giving a libssl with a fresh inode at a non-standard path. Returns the
/// canonical path of the copied libssl.
pub fn copy_libssl(dir: &Path) -> Result<PathBuf> {
    copy_libssl_with_pause(dir, Duration::ZERO)
}

/// Like [`copy_libssl`], but each file is created empty and only filled
/// after `pause`, the way an unpacker or package upgrade writes it: anyone
/// inspecting the file when it is opened sees an empty, non-ELF file.
pub fn copy_libssl_with_pause(dir: &Path, pause: Duration) -> Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let src_dir = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib64",
    ]
    .iter()
    .map(Path::new)
    .find(|d| d.join("libssl.so.3").exists())
    .context("no system libssl.so.3 found")?;
    for lib in ["libssl.so.3", "libcrypto.so.3"] {
        // Resolve symlinks so we copy the real object, not a link to it.
        let src = std::fs::canonicalize(src_dir.join(lib))?;
        let bytes = std::fs::read(&src).with_context(|| format!("read {}", src.display()))?;
        let dst = dir.join(lib);
        let mut f = File::create(&dst).with_context(|| format!("create {}", dst.display()))?;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::set_permissions(&dst, std::fs::metadata(&src)?.permissions())?;
    }
    Ok(std::fs::canonicalize(dir.join("libssl.so.3"))?)
}

/// Short unique tag for request paths and bodies, so a test can tell its own
/// traffic from anything else on the machine.
pub fn unique_tag(prefix: &str) -> String {
    let nanos = qmon_vocab::now_ns();
    format!("{prefix}{}x{}", std::process::id(), nanos % 1_000_000_000)
}
