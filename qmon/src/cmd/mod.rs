//! One module per subcommand.

pub mod doctor;
pub mod trace;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use qmon::capture::{AttachMode, CaptureOptions};

use crate::cli::{AttachModeArg, CaptureArgs};

/// Set on SIGINT or SIGTERM.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

pub fn capture_options(a: &CaptureArgs) -> CaptureOptions {
    CaptureOptions {
        ring_size: a.ring_size,
        max_chunks: a.max_chunks,
        mode: a.attach_mode.map(|m| match m {
            AttachModeArg::Kprobe => AttachMode::Kprobe,
            AttachModeArg::Tracepoint => AttachMode::Tracepoint,
        }),
        ..CaptureOptions::default()
    }
}

/// Printed on stderr once capture is attached; scripts and tests wait for it.
pub fn announce_ready() {
    eprintln!("qmon: ready");
}
