//! Capture: load the BPF programs, attach them, and stream decoded events.
//!
//! One thread owns the BPF object. It polls the ring buffer, decodes records
//! into [`CaptureEvent`]s for the next stage, attaches the TLS stacks'
//! uprobes (the table in [`tls`]) to new copies as processes exec or open
//! them, and publishes the kernel-side loss counters in [`CaptureStats`].

mod bench_toggle;
pub mod bufpool;
pub mod events;
pub mod kernel;
pub mod pause;
pub mod replay;
mod retprobe;
pub mod tls;
pub mod trace_format;

use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle};
use qmon_bpf::types::{
    qmon_conn_flags, qmon_conn_key, qmon_conn_state, qmon_const, qmon_stat, qmon_stream,
};
use qmon_bpf::QmonSkelBuilder;

pub use bench_toggle::BenchToggle;
pub use bufpool::BufPool;
pub use events::{CaptureEvent, Role, Source};
pub use kernel::{AttachMode, Features};
use tls::{FileId, FileVersion, Inspection, TlsLib, TlsStack};

/// Largest payload carried by one data event (from qmon.h).
pub const CHUNK_MAX: u32 = qmon_const::QMON_CHUNK_MAX.0;
/// Largest number of chunks a single call may be split into (from qmon.h).
pub const CHUNKS_HARD_MAX: u32 = qmon_const::QMON_CHUNKS_HARD_MAX.0;
/// Set in a TLS session pointer to key the stream of data whose fd (and so
/// conn_id) is unknown (from qmon.h).
pub const UNKNOWN_FD_STREAM_BIT: u64 = 1 << qmon_stream::QMON_UNKNOWN_FD_KEY_BIT.0;

#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Ring buffer bytes: a power of two, at least one page.
    pub ring_size: u32,
    /// Chunks of CHUNK_MAX bytes copied per call at most.
    pub max_chunks: u32,
    /// Force an attach mode instead of probing.
    pub mode: Option<AttachMode>,
    /// How often the ring buffer is drained when nothing woke us.
    pub poll_interval: Duration,
    /// Also emit data of accepted (server-side) sockets.
    pub capture_server: bool,
    /// Benchmarks only: every BPF program returns at once (sets
    /// `qmon_bench_noop`), so only the bare cost of the probes remains.
    pub bench_noop: bool,
    /// Benchmarks only: alternate between recording and the floor.
    pub bench_toggle: Option<BenchToggle>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            ring_size: 16 * 1024 * 1024,
            max_chunks: 4,
            mode: None,
            poll_interval: Duration::from_millis(50),
            capture_server: false,
            bench_noop: false,
            bench_toggle: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Unsupported(String),
    #[error("--ring-size must be a power of two between 4096 and 1073741824 bytes, got {0}")]
    RingSize(u32),
    #[error("--max-chunks must be between 1 and {max}, got {got}", max = CHUNKS_HARD_MAX)]
    MaxChunks { got: u32 },
    #[error("loading the BPF programs failed: {0}")]
    Load(String),
    #[error("attaching the {what} hooks failed: {err}")]
    Attach { what: &'static str, err: String },
    #[error("the capture thread stopped unexpectedly")]
    ThreadGone,
}

/// Counters shared with the rest of the daemon; updated about once a second.
#[derive(Debug, Default)]
pub struct CaptureStats {
    pub events: AtomicU64,
    pub decode_errors: AtomicU64,
    pub lost_events: AtomicU64,
    pub lost_bytes: AtomicU64,
    pub truncated_bytes: AtomicU64,
    pub muted_calls: AtomicU64,
    pub args_dropped: AtomicU64,
    /// Syscall returns the kernel did not report because it had no free
    /// kretprobe instance (kprobe mode only): that call's data is lost.
    pub probe_missed: AtomicU64,
    pub ring_size: AtomicU64,
    /// Bytes waiting in the ring buffer at the last stats read.
    pub ring_used: AtomicU64,
    pub libs_attached: AtomicU64,
}

/// The kernel side's counters, as last read by the capture thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Ring buffer events received.
    pub events: u64,
    pub decode_errors: u64,
    /// Events the kernel could not deliver (ring buffer full).
    pub lost_events: u64,
    /// Payload bytes in those events.
    pub lost_bytes: u64,
    /// Bytes past the per-call copy limit, never copied.
    pub truncated_bytes: u64,
    /// Syscall returns the kernel could not report (kprobe mode).
    pub probe_missed: u64,
    /// Data calls skipped in the kernel because their connection is muted.
    pub muted_calls: u64,
    pub ring_size: u64,
    pub ring_used: u64,
    pub libs_attached: u64,
}

impl CaptureStats {
    /// Every counter, now.
    pub fn snapshot(&self) -> CaptureCounters {
        let s = self;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CaptureCounters {
            events: g(&s.events),
            decode_errors: g(&s.decode_errors),
            lost_events: g(&s.lost_events),
            lost_bytes: g(&s.lost_bytes),
            truncated_bytes: g(&s.truncated_bytes),
            probe_missed: g(&s.probe_missed),
            muted_calls: g(&s.muted_calls),
            ring_size: g(&s.ring_size),
            ring_used: g(&s.ring_used),
            libs_attached: g(&s.libs_attached),
        }
    }
}

/// A copy of a TLS stack qmon attached to, or decided not to.
#[derive(Debug, Clone)]
pub struct LibStatus {
    /// The stack's name ("openssl").
    pub stack: &'static str,
    pub path: String,
    pub pid: u32,
    pub inode: u64,
    pub attached: Vec<&'static str>,
    pub skipped: Option<String>,
}

/// Switches connections off in the kernel once the daemon knows they are
/// not interesting: after that their data costs one map lookup.
#[derive(Clone)]
pub struct ConnControl {
    conns: Arc<MapHandle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mute {
    /// Stop syscall-level data (not HTTP in plaintext); TLS data continues.
    Syscall,
    /// Stop all data for the connection.
    All,
}

impl ConnControl {
    pub fn mute(&self, tgid: u32, fd: i32, how: Mute) {
        let key = qmon_conn_key { tgid, fd };
        // SAFETY: POD key type generated from qmon.h.
        let kb = unsafe { as_bytes(&key) };
        let Ok(Some(mut val)) = self.conns.lookup(kb, MapFlags::ANY) else {
            return;
        };
        if val.len() < std::mem::size_of::<qmon_conn_state>() {
            return;
        }
        let mut st: qmon_conn_state =
            // SAFETY: length checked; POD type.
            unsafe { std::ptr::read_unaligned(val.as_ptr() as *const qmon_conn_state) };
        st.flags |= match how {
            Mute::Syscall => qmon_conn_flags::QMON_CONN_MUTE_SYSCALL.0,
            Mute::All => qmon_conn_flags::QMON_CONN_MUTE_ALL.0,
        };
        // SAFETY: POD value type.
        val.copy_from_slice(unsafe { as_bytes(&st) });
        // Only if it still exists: never resurrect a closed connection.
        let _ = self.conns.update(kb, &val, MapFlags::EXIST);
    }

    /// Forget every connection of an exited process (the kernel closed its
    /// fds without close() calls we could see).
    pub fn forget(&self, tgid: u32, fds: &[i32]) {
        for &fd in fds {
            let key = qmon_conn_key { tgid, fd };
            // SAFETY: POD key.
            let _ = self.conns.delete(unsafe { as_bytes(&key) });
        }
    }
}

/// View a plain-old-data value as bytes.
///
/// # Safety
/// `T` must have no padding that is uninitialised in a way the reader cares
/// about; used only for the #[repr(C)] types generated from qmon.h.
unsafe fn as_bytes<T>(v: &T) -> &[u8] {
    std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>())
}

/// Can capture run here? Mounts tracefs if it is missing and allowed, then
/// returns the first problem as one actionable line. Commands call this
/// before touching anything else, so a refusal has no side effects.
pub fn preflight() -> Result<Features, CaptureError> {
    kernel::ensure_tracefs();
    let features = Features::probe();
    match features.problems().into_iter().next() {
        Some(first) => Err(CaptureError::Unsupported(first)),
        None => Ok(features),
    }
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<CaptureStats>,
    pub control: ConnControl,
    pub mode: AttachMode,
    pub libs: Arc<Mutex<Vec<LibStatus>>>,
    /// Give data events back here once processed: their payload buffers
    /// are refilled with later records instead of freshly allocated.
    pub pool: BufPool,
}

impl Capture {
    /// Load, attach and start streaming events into `sink`. Returns once
    /// everything that exists at start-up is attached.
    pub fn start(
        opts: CaptureOptions,
        sink: SyncSender<CaptureEvent>,
    ) -> Result<Capture, CaptureError> {
        if !opts.ring_size.is_power_of_two() || !(4096..=1 << 30).contains(&opts.ring_size) {
            return Err(CaptureError::RingSize(opts.ring_size));
        }
        if opts.max_chunks == 0 || opts.max_chunks > CHUNKS_HARD_MAX {
            return Err(CaptureError::MaxChunks {
                got: opts.max_chunks,
            });
        }
        // libbpf writes verifier logs and warnings to stderr; keep them for
        // QMON_LOG=debug and give users one clear error line instead.
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, libbpf_log)));
        let features = preflight()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CaptureStats::default());
        let libs = Arc::new(Mutex::new(Vec::new()));
        let pool = BufPool::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let shared = Shared {
                stop: stop.clone(),
                stats: stats.clone(),
                libs: libs.clone(),
                pool: pool.clone(),
            };
            std::thread::Builder::new()
                .name("qmon-capture".into())
                .spawn(move || run(opts, features, sink, shared, ready_tx))
                .map_err(|e| CaptureError::Load(e.to_string()))?
        };
        let (mode, conns) = match ready_rx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(CaptureError::ThreadGone),
        };
        Ok(Capture {
            stop,
            thread: Some(thread),
            stats,
            control: ConnControl {
                conns: Arc::new(conns),
            },
            mode,
            libs,
            pool,
        })
    }

    /// Detach everything and drain what is left in the ring buffer.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn libbpf_log(level: libbpf_rs::PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        libbpf_rs::PrintLevel::Warn => tracing::debug!(target: "libbpf", "{msg}"),
        _ => tracing::trace!(target: "libbpf", "{msg}"),
    }
}

type Ready = Result<(AttachMode, MapHandle), CaptureError>;

/// Uprobe attachments, one set per (TLS stack, file).
struct Uprobes<'a, 'o> {
    skel: &'a qmon_bpf::QmonSkel<'o>,
    attached: HashMap<(&'static TlsStack, FileId), Vec<Link>>,
    /// File versions inspected and found unusable, so they are not re-read.
    rejected: HashSet<(&'static TlsStack, FileVersion)>,
    libs: Arc<Mutex<Vec<LibStatus>>>,
    stats: Arc<CaptureStats>,
}

impl Uprobes<'_, '_> {
    /// Attached already, or this version found unusable.
    fn known(&self, lib: &TlsLib) -> bool {
        self.attached.contains_key(&(lib.stack, lib.id.clone()))
            || self.rejected.contains(&(lib.stack, lib.version.clone()))
    }

    /// One of the BPF object's programs, by the name the table gives.
    fn program(&self, name: &str) -> Option<libbpf_rs::ProgramMut<'_>> {
        self.skel
            .object()
            .progs_mut()
            .find(|p| p.name() == std::ffi::OsStr::new(name))
    }

    fn attach(&mut self, lib: &TlsLib) -> Option<LibStatus> {
        if self.known(lib) {
            return None;
        }
        let stack = lib.stack;
        let mut status = LibStatus {
            stack: stack.name,
            path: lib.path.clone(),
            pid: lib.pid,
            inode: lib.id.ino,
            attached: Vec::new(),
            skipped: None,
        };
        // Keep the file open and attach through /proc/self/fd: the process
        // that revealed the library may exit (taking /proc/PID/root with it)
        // before every probe is attached.
        let file = match std::fs::File::open(&lib.host_path) {
            Ok(f) => f,
            Err(e) => {
                status.skipped = Some(format!("cannot open: {e}"));
                self.record(status.clone());
                return Some(status);
            }
        };
        let symbols = match tls::inspect_file(&file, stack) {
            Inspection::Usable { symbols } => symbols,
            Inspection::Skip { reason } => {
                tracing::warn!(path = %lib.path, pid = lib.pid, stack = stack.name, "not attaching to TLS library: {reason}");
                self.rejected.insert((stack, lib.version.clone()));
                status.skipped = Some(reason);
                self.record(status.clone());
                return Some(status);
            }
        };
        let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        let mut links = Vec::new();
        let mut failures = Vec::new();
        for (probe, offset) in &symbols {
            // The table's entry program, and its return program if it has one.
            let one = |prog: &str, retprobe: bool| -> Result<Link, String> {
                let p = self
                    .program(prog)
                    .ok_or_else(|| format!("no BPF program {prog}"))?;
                p.attach_uprobe(retprobe, -1, &fd_path, *offset as usize)
                    .map_err(|e| e.to_string())
            };
            match one(probe.entry, false) {
                Ok(l) => links.push(l),
                Err(e) => {
                    failures.push(format!("{}: {e}", probe.symbol));
                    continue;
                }
            }
            if let Some(ret) = probe.ret {
                match one(ret, true) {
                    Ok(l) => links.push(l),
                    Err(e) => failures.push(format!("{} (return): {e}", probe.symbol)),
                }
            }
            status.attached.push(probe.symbol);
        }
        if !failures.is_empty() {
            // Logged once per library; capture goes on without it.
            tracing::warn!(path = %lib.path, "some {} probes failed to attach: {}", stack.title, failures.join("; "));
        }
        if links.is_empty() {
            self.rejected.insert((stack, lib.version.clone()));
            status.skipped = Some(failures.join("; "));
        } else {
            tracing::info!(path = %lib.path, pid = lib.pid, inode = lib.id.ino, stack = stack.name, functions = ?status.attached, "attached to TLS library");
            self.attached.insert((stack, lib.id.clone()), links);
            self.stats
                .libs_attached
                .store(self.attached.len() as u64, Ordering::Relaxed);
        }
        self.record(status.clone());
        Some(status)
    }

    fn record(&self, status: LibStatus) {
        if let Ok(mut l) = self.libs.lock() {
            l.push(status);
        }
    }
}

/// What the capture thread shares with its [`Capture`] handle.
struct Shared {
    stop: Arc<AtomicBool>,
    stats: Arc<CaptureStats>,
    libs: Arc<Mutex<Vec<LibStatus>>>,
    pool: BufPool,
}

fn run(
    opts: CaptureOptions,
    features: Features,
    sink: SyncSender<CaptureEvent>,
    shared: Shared,
    ready: mpsc::Sender<Ready>,
) {
    let Shared {
        stop,
        stats,
        libs,
        pool,
    } = shared;
    // Attaching to a library a process just opened races that process's
    // first SSL_write: run ahead of ordinary work so a busy host does not
    // delay it. Best effort; the thread does little else.
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10);
    }
    let mut storage = MaybeUninit::uninit();
    let skel = match load(&opts, &mut storage) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let conns = match MapHandle::try_from(&skel.maps.conns) {
        Ok(h) => h,
        Err(e) => {
            let _ = ready.send(Err(CaptureError::Load(e.to_string())));
            return;
        }
    };
    let (mode, socket_hooks) = match attach_socket_hooks(&skel, &features, opts.mode) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut proc_links = Vec::new();
    for prog in [&skel.progs.proc_exec, &skel.progs.proc_exit] {
        match prog.attach() {
            Ok(l) => proc_links.push(l),
            Err(e) => {
                let _ = ready.send(Err(CaptureError::Attach {
                    what: "process",
                    err: e.to_string(),
                }));
                return;
            }
        }
    }
    for prog in [&skel.progs.lib_openat_enter, &skel.progs.lib_openat_exit] {
        match prog.attach() {
            Ok(l) => proc_links.push(l),
            Err(e) => tracing::warn!(
                "cannot watch library opens ({e}); libraries loaded after start-up are found only at exec"
            ),
        }
    }

    let mut uprobes = Uprobes {
        skel: &skel,
        attached: HashMap::new(),
        rejected: HashSet::new(),
        libs,
        stats: stats.clone(),
    };
    for lib in tls::scan_all() {
        uprobes.attach(&lib);
    }

    let decoder = events::Decoder {
        mono_to_unix_ns: kernel::monotonic_to_unix_offset_ns(),
        pool,
    };
    let mut seen_exes: HashSet<FileVersion> = HashSet::new();
    let mut builder = libbpf_rs::RingBufferBuilder::new();
    let added = builder.add(&skel.maps.events, |rec: &[u8]| {
        stats.events.fetch_add(1, Ordering::Relaxed);
        match decoder.decode(rec) {
            Ok(ev) => {
                // Attach right here, in event order: a process that just
                // opened a new libssl copy may call SSL_write within
                // milliseconds (and likewise for every TLS stack).
                match &ev {
                    CaptureEvent::LibOpen { origin, path } => {
                        attach_new(&mut uprobes, &mut seen_exes, origin, path)
                    }
                    CaptureEvent::Exec { origin, .. } => attach_new(
                        &mut uprobes,
                        &mut seen_exes,
                        origin,
                        &format!("/proc/{}/exe", origin.tgid),
                    ),
                    _ => {}
                }
                // Blocking: if the pipeline falls behind, the ring buffer
                // fills and the kernel counts what it drops.
                if sink.send(ev).is_err() {
                    return -1;
                }
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("undecodable ring buffer record: {e}");
            }
        }
        0
    });
    let ring = match added.map(|_| ()).and_then(|()| builder.build()) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(CaptureError::Load(e.to_string())));
            return;
        }
    };
    tracing::info!(
        mode = mode.as_str(),
        kernel = %features.kernel_release,
        ring_size = opts.ring_size,
        "capturing: socket hooks attached with {}",
        if mode == AttachMode::Kprobe { "kprobes" } else { "syscall tracepoints" }
    );
    stats
        .ring_size
        .store(opts.ring_size as u64, Ordering::Relaxed);
    let mut toggler = match &opts.bench_toggle {
        None => None,
        Some(cfg) => {
            let started = MapHandle::try_from(&skel.maps.bss)
                .map_err(std::io::Error::other)
                .and_then(|bss| bench_toggle::Toggler::start(cfg, bss));
            match started {
                Ok(t) => Some(t),
                Err(e) => {
                    let _ = ready.send(Err(CaptureError::Load(format!(
                        "--bench-toggle-ms: cannot start the toggle: {e}"
                    ))));
                    return;
                }
            }
        }
    };
    if ready.send(Ok((mode, conns))).is_err() {
        return;
    }

    let mut last_stats = Instant::now();
    loop {
        if let Some(t) = toggler.as_mut() {
            t.tick();
        }
        let stopping = stop.load(Ordering::SeqCst);
        // poll() returns on wake-up or timeout; consume() drains records that
        // were submitted without a wake-up.
        let _ = ring.poll(opts.poll_interval);
        let _ = ring.consume();
        if stopping || last_stats.elapsed() >= Duration::from_millis(500) {
            read_stats(&skel, &stats);
            stats
                .probe_missed
                .store(probe_missed(&socket_hooks), Ordering::Relaxed);
            stats.ring_used.store(ring_used(&ring), Ordering::Relaxed);
            last_stats = Instant::now();
        }
        if stopping {
            break;
        }
    }
    drop(ring);
    tracing::info!("capture stopped; probes detached");
}

/// Attach to a library a process opened, or to its executable if it links
/// a TLS stack statically. The thread that revealed it is held still
/// meanwhile.
fn attach_new(
    uprobes: &mut Uprobes,
    seen_exes: &mut HashSet<FileVersion>,
    origin: &events::Origin,
    path: &str,
) {
    let pid = origin.tgid;
    let libs: Vec<TlsLib> = if path.starts_with("/proc/") && path.ends_with("/exe") {
        let stacks: Vec<&'static TlsStack> = tls::STACKS
            .iter()
            .copied()
            .filter(|s| s.files.executables)
            .collect();
        let Some(&first) = stacks.first() else {
            return;
        };
        let Ok(target) = std::fs::read_link(path) else {
            return;
        };
        let Some(exe) = tls::resolve(first, pid, &target.to_string_lossy()) else {
            return;
        };
        // Most executables link no TLS stack: inspect each file once,
        // quietly, for every stack at once.
        if !seen_exes.insert(exe.version.clone()) {
            return;
        }
        let Ok(file) = std::fs::File::open(&exe.host_path) else {
            return;
        };
        tls::inspect_stacks(&file, &stacks)
            .into_iter()
            .zip(stacks)
            .filter(|(i, _)| matches!(i, Inspection::Usable { .. }))
            .map(|(_, stack)| exe.as_stack(stack))
            .collect()
    } else {
        let Some(stack) = tls::stack_of_opened(path) else {
            return;
        };
        match tls::resolve(stack, pid, path) {
            Some(lib) => vec![lib],
            None => return,
        }
    };
    let libs: Vec<TlsLib> = libs.into_iter().filter(|l| !uprobes.known(l)).collect();
    if libs.is_empty() {
        return;
    }
    let paused = pause::pause(origin.tid);
    for lib in &libs {
        if uprobes.attach(lib).is_none() {
            continue;
        }
        let now = qmon_vocab::now_ns();
        tracing::debug!(
            pid,
            stack = lib.stack.name,
            paused = paused.is_some(),
            since_open_us = now.saturating_sub(origin.ts_ns) / 1000,
            "attached a library first seen at run time"
        );
    }
    drop(paused);
}

fn load<'o>(
    opts: &CaptureOptions,
    storage: &'o mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<qmon_bpf::QmonSkel<'o>, CaptureError> {
    let err = |e: libbpf_rs::Error| CaptureError::Load(e.to_string());
    let mut open = QmonSkelBuilder::default().open(storage).map_err(err)?;
    if let Some(ro) = open.maps.rodata_data.as_mut() {
        ro.qmon_tgid = std::process::id();
        ro.max_chunks = opts.max_chunks;
        // Wake the daemon when an eighth of the ring is used; otherwise it
        // drains on its poll interval.
        ro.wakeup_bytes = (opts.ring_size / 8) as u64;
        ro.capture_server = opts.capture_server;
        ro.qmon_bench_noop = opts.bench_noop || opts.bench_toggle.is_some();
        ro.qmon_bench_toggle = opts.bench_toggle.is_some();
        // Which library opens the BPF side reports: the table's prefixes.
        ro.tls_lib_prefixes = tls::lib_prefix_slots().map_err(CaptureError::Load)?;
    }
    open.maps
        .events
        .set_max_entries(opts.ring_size)
        .map_err(err)?;
    open.load().map_err(err)
}

/// The attached socket hooks; detached on drop.
struct SocketHooks {
    links: Vec<Link>,
    retprobes: Vec<retprobe::TracefsRetprobe>,
}

impl SocketHooks {
    fn links(&self) -> impl Iterator<Item = &Link> {
        self.links
            .iter()
            .chain(self.retprobes.iter().filter_map(|r| r.link()))
    }
}

fn attach_socket_hooks(
    skel: &qmon_bpf::QmonSkel,
    features: &Features,
    forced: Option<AttachMode>,
) -> Result<(AttachMode, SocketHooks), CaptureError> {
    let preferred = forced.unwrap_or_else(|| features.preferred_mode());
    let try_mode = |mode: AttachMode| -> Result<SocketHooks, String> {
        let prefix = match mode {
            AttachMode::Kprobe => {
                retprobe::remove_stale();
                "kp_"
            }
            AttachMode::Tracepoint => "tp_",
        };
        let mut hooks = SocketHooks {
            links: Vec::new(),
            retprobes: Vec::new(),
        };
        let mut warned = false;
        let maxactive = retprobe::maxactive();
        for prog in skel.object().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) {
                continue;
            }
            let section = prog.section().to_string_lossy().into_owned();
            if let (Some(syscall), Some(maxactive)) =
                (section.strip_prefix("kretsyscall/"), maxactive)
            {
                let func = retprobe::syscall_function(syscall);
                match retprobe::attach(&prog, &func, &name, maxactive) {
                    Ok(r) => {
                        hooks.retprobes.push(r);
                        continue;
                    }
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!(
                            "cannot size the syscall-return probes' instance pool ({e}); \
                             using the kernel default, which drops returns when many \
                             threads block in reads (counted as probe_missed)"
                        );
                    }
                    Err(_) => {}
                }
            }
            hooks
                .links
                .push(prog.attach().map_err(|e| format!("{name}: {e}"))?);
        }
        if !hooks.retprobes.is_empty() {
            tracing::info!(
                "syscall-return probes: {} defined in tracefs, {} instances each",
                hooks.retprobes.len(),
                maxactive.unwrap_or(0)
            );
        }
        Ok(hooks)
    };
    match try_mode(preferred) {
        Ok(hooks) => Ok((preferred, hooks)),
        Err(e) if forced.is_none() && preferred == AttachMode::Kprobe => {
            tracing::warn!("kprobes failed to attach ({e}); falling back to syscall tracepoints");
            try_mode(AttachMode::Tracepoint)
                .map(|h| (AttachMode::Tracepoint, h))
                .map_err(|err| CaptureError::Attach {
                    what: "socket",
                    err,
                })
        }
        Err(err) => Err(CaptureError::Attach {
            what: "socket",
            err,
        }),
    }
}

fn read_stats(skel: &qmon_bpf::QmonSkel, stats: &CaptureStats) {
    let sum = |idx: qmon_stat| -> u64 {
        let key = idx.0.to_ne_bytes();
        match skel.maps.stats.lookup_percpu(&key, MapFlags::ANY) {
            Ok(Some(per_cpu)) => per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum(),
            _ => 0,
        }
    };
    let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
    set(&stats.lost_events, sum(qmon_stat::QMON_STAT_LOST_EVENTS));
    set(&stats.lost_bytes, sum(qmon_stat::QMON_STAT_LOST_BYTES));
    set(
        &stats.truncated_bytes,
        sum(qmon_stat::QMON_STAT_TRUNCATED_BYTES),
    );
    set(&stats.muted_calls, sum(qmon_stat::QMON_STAT_MUTED_CALLS));
    set(&stats.args_dropped, sum(qmon_stat::QMON_STAT_ARGS_DROPPED));
}

/// Probe hits the kernel dropped, summed over the kprobe links (the kernel
/// reports it since 6.7; older kernels read as 0).
fn probe_missed(hooks: &SocketHooks) -> u64 {
    hooks
        .links()
        .filter_map(|l| l.info().ok())
        .map(|i| match i.info {
            libbpf_rs::query::LinkTypeInfo::PerfEvent(p) => match p.event_type {
                libbpf_rs::query::PerfEventType::Kprobe { missed, .. } => missed,
                _ => 0,
            },
            _ => 0,
        })
        .sum()
}

/// Bytes produced but not yet consumed in the (single) ring buffer.
fn ring_used(ring: &libbpf_rs::RingBuffer<'_>) -> u64 {
    use libbpf_rs::AsRawLibbpf;
    let rb = ring.as_libbpf_object();
    // SAFETY: `rb` is the live ring_buffer owned by `ring`; libbpf returns
    // NULL for an index out of range, and the ring it returns lives as long
    // as `rb`.
    unsafe {
        let r = libbpf_sys::ring_buffer__ring(rb.as_ptr(), 0);
        if r.is_null() {
            0
        } else {
            libbpf_sys::ring__avail_data_size(r) as u64
        }
    }
}

/// A receiver paired with the capture, for callers that just want events.
pub fn channel(bound: usize) -> (SyncSender<CaptureEvent>, Receiver<CaptureEvent>) {
    mpsc::sync_channel(bound)
}
