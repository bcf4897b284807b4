//! The loop that moves events through the stages: capture events in,
//! connections and protocols in the middle, calls out to a sink. Shared by
//! `qmon record` and the stand-alone `qmon top`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use qmon_vocab::now_ns;

use crate::calls::Call;
use crate::capture::{BufPool, CaptureEvent};
use crate::connections::ConnTable;

/// Run until `stop` is set or the capture side hangs up. `on_calls` gets
/// every batch of finished calls; `tick` runs about once a second. Events
/// go back to `pool` once the table has seen them.
pub fn run(
    rx: &Receiver<CaptureEvent>,
    pool: &BufPool,
    table: &mut ConnTable,
    stop: &AtomicBool,
    mut on_calls: impl FnMut(&mut Vec<Call>),
    mut tick: impl FnMut(&mut ConnTable),
) {
    let mut calls = Vec::new();
    let mut spent = Vec::new();
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                table.on_event(&ev, &mut calls);
                keep_payload(ev, &mut spent);
                // Drain what is already queued before handing calls on.
                while let Ok(ev) = rx.try_recv() {
                    table.on_event(&ev, &mut calls);
                    keep_payload(ev, &mut spent);
                    if calls.len() >= 256 || spent.len() >= 256 {
                        break;
                    }
                }
                pool.put_all(&mut spent);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            table.sweep(now_ns(), &mut calls);
            tick(table);
            last_tick = Instant::now();
        }
        if !calls.is_empty() {
            on_calls(&mut calls);
            calls.clear();
        }
    }
}

fn keep_payload(ev: CaptureEvent, spent: &mut Vec<Vec<u8>>) {
    if let CaptureEvent::Data { bytes, .. } = ev {
        spent.push(bytes);
    }
}

/// After capture stopped: process what is still queued, then flush every
/// connection (pending requests become incomplete calls).
pub fn drain(
    rx: &Receiver<CaptureEvent>,
    table: &mut ConnTable,
    mut on_calls: impl FnMut(&mut Vec<Call>),
) {
    let mut calls = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        table.on_event(&ev, &mut calls);
    }
    table.flush_all(now_ns(), &mut calls);
    if !calls.is_empty() {
        on_calls(&mut calls);
    }
}
