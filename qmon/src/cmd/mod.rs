//! One module per subcommand.

pub mod doctor;
pub mod query;
pub mod record;
pub mod top;
pub mod trace;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use qmon::capture::{AttachMode, CaptureOptions};

use anyhow::Context;
use qmon::calls::redact::Redactor;
use qmon::sinks::store::{limits, Retention, StoreOptions};

use crate::cli::{AttachModeArg, CaptureArgs, StoreArgs};

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

pub fn store_options(a: &StoreArgs) -> anyhow::Result<StoreOptions> {
    let mut retention = Retention::default();
    if let Some(age) = &a.retain {
        retention.max_age = Some(limits::parse_age(age).context("--retain")?);
    }
    if let Some(size) = &a.max_db_size {
        retention.max_db_size = Some(limits::parse_size(size).context("--max-db-size")?);
    }
    let redactor = if a.no_redact {
        Redactor::disabled()
    } else {
        Redactor::with_extra_names(a.redact.iter().cloned())
    };
    Ok(StoreOptions {
        redactor,
        body_limit: if a.no_bodies { 0 } else { a.body_limit },
        retention,
        ..StoreOptions::default()
    })
}
