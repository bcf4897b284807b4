//! Benchmarks only: alternate one running daemon between recording and the
//! floor (every BPF program returning at once).
//!
//! Comparing two processes started one after the other leaves seconds of
//! host drift between them; flipping a BPF global every second or two
//! compares the two conditions a second apart, many times over, so drift
//! cancels (`bench/toggle.sh`). Each flip is logged as
//! `<CLOCK_MONOTONIC ns>\t<noop|record>`, the clock Python's
//! `time.monotonic_ns()` reads, so the client's requests can be assigned to
//! phases.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags, MapHandle};

#[derive(Debug, Clone)]
pub struct BenchToggle {
    /// How long each phase lasts.
    pub period: Duration,
    /// Where flips are logged.
    pub log: PathBuf,
}

/// The running toggle: owns a handle on the `.bss` map and the log.
pub(crate) struct Toggler {
    bss: MapHandle,
    log: File,
    period: Duration,
    next: Instant,
    off: bool,
}

impl Toggler {
    /// Starts in the floor phase.
    pub(crate) fn start(cfg: &BenchToggle, bss: MapHandle) -> std::io::Result<Self> {
        let mut t = Self {
            bss,
            log: File::create(&cfg.log)?,
            period: cfg.period,
            next: Instant::now(),
            off: false,
        };
        t.flip()?;
        Ok(t)
    }

    /// Flip if the phase is over; called from the capture loop.
    pub(crate) fn tick(&mut self) {
        if Instant::now() >= self.next {
            if let Err(e) = self.flip() {
                tracing::warn!("bench toggle: {e}");
            }
        }
    }

    fn flip(&mut self) -> std::io::Result<()> {
        let off = !self.off;
        // `.bss` also holds the BPF side's never-written type anchors:
        // rewrite the whole value with just the flag changed.
        let key = 0u32.to_ne_bytes();
        let mut bss = self
            .bss
            .lookup(&key, MapFlags::ANY)
            .map_err(std::io::Error::other)?
            .unwrap_or_default();
        let at = std::mem::offset_of!(qmon_bpf::types::bss, qmon_bench_off);
        let Some(flag) = bss.get_mut(at..at + 4) else {
            return Err(std::io::Error::other(".bss is smaller than expected"));
        };
        flag.copy_from_slice(&u32::from(off).to_ne_bytes());
        self.bss
            .update(&key, &bss, MapFlags::ANY)
            .map_err(std::io::Error::other)?;
        self.off = off;
        self.next = Instant::now() + self.period;
        writeln!(
            self.log,
            "{}\t{}",
            monotonic_ns(),
            if off { "noop" } else { "record" }
        )
    }
}

fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
