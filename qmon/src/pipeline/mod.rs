//! The pipeline: capture events in, calls out to sinks. One [`Pipeline`]
//! serves `qmon record`, `qmon top` and `qmon replay`; the commands only
//! parse flags and choose sinks.
//!
//! ```text
//! CaptureEvent ─► scope (at open) ─► ConnTable ─► Effect::Exchange ─► CallBuilder
//!                                         │                              │
//!                  ConnControl ◄─ Mute/Forget        scope ─► redaction ─► sinks
//! ```
//!
//! The pipeline owns the capture scope, the redaction policy and every
//! counter ([`Status`]). It runs on one thread; sinks must not block it
//! (see [`Sink`]).

mod sink;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::calls::build::CallBuilder;
use crate::calls::redact::{CallRedactor, Redactor};
use crate::calls::scope::Scope;
use crate::calls::{Call, CallError};
use crate::capture::{BufPool, CaptureEvent, CaptureStats, ConnControl, Mute, Role};
use crate::connections::{ConnStats, ConnTable, Effect};
use qmon_protocols::ParserLimits;
use qmon_vocab::now_ns;

pub use crate::capture::CaptureCounters;
pub use sink::Sink;
pub use status::Status;

/// What is recorded, and how it is cleaned: set at start, replaced on reload.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub scope: Scope,
    pub redactor: Redactor,
}

/// Where the table's kernel effects go: [`ConnControl`] when capturing
/// live, nowhere in replays.
pub trait KernelControl: Send {
    /// Stop the kernel sending this connection's bytes.
    fn mute(&self, tgid: u32, fd: i32, how: Mute);
    /// Drop the kernel's state for these sockets of an exited process.
    fn forget(&self, tgid: u32, fds: &[i32]);
}

impl KernelControl for ConnControl {
    fn mute(&self, tgid: u32, fd: i32, how: Mute) {
        ConnControl::mute(self, tgid, fd, how);
    }
    fn forget(&self, tgid: u32, fds: &[i32]) {
        ConnControl::forget(self, tgid, fds);
    }
}

/// Events handled before finished calls are handed on, at most.
const BATCH_EVENTS: usize = 256;
/// How often [`Pipeline::tick`] runs from [`Pipeline::run`].
const TICK: Duration = Duration::from_secs(1);

pub struct Pipeline {
    table: ConnTable,
    builder: CallBuilder,
    scope: Scope,
    redaction: CallRedactor,
    /// The kernel side, when capturing live: mutes go there, counters come
    /// from there.
    control: Option<Box<dyn KernelControl>>,
    capture: Option<Arc<CaptureStats>>,
    sinks: Vec<Box<dyn Sink>>,
    calls: u64,
    out_of_scope_conns: u64,
    out_of_scope_calls: u64,
    parse_errors: u64,
    /// Scratch: the table's effects, and the calls not yet handed on.
    fx: Vec<Effect>,
    batch: Vec<Arc<Call>>,
}

impl Pipeline {
    pub fn new(limits: ParserLimits, policy: Policy) -> Self {
        Self {
            table: ConnTable::new(limits),
            builder: CallBuilder::default(),
            scope: policy.scope,
            redaction: CallRedactor::new(policy.redactor),
            control: None,
            capture: None,
            sinks: Vec::new(),
            calls: 0,
            out_of_scope_conns: 0,
            out_of_scope_calls: 0,
            parse_errors: 0,
            fx: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// Capturing live: carry out mutes through `control`, and report the
    /// kernel's counters from `stats`.
    pub fn with_capture(
        mut self,
        control: impl KernelControl + 'static,
        stats: Arc<CaptureStats>,
    ) -> Self {
        self.control = Some(Box::new(control));
        self.capture = Some(stats);
        self
    }

    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        tracing::debug!(sink = sink.name(), "sink added");
        self.sinks.push(sink);
    }

    /// A new scope and redaction policy, for calls finished from now on.
    pub fn set_policy(&mut self, policy: Policy) {
        self.scope = policy.scope;
        self.redaction = CallRedactor::new(policy.redactor);
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn conn_stats(&self) -> &ConnStats {
        &self.table.stats
    }

    /// The connection table, for tests and benchmarks that look inside.
    pub fn table_mut(&mut self) -> &mut ConnTable {
        &mut self.table
    }

    /// Every counter, now.
    pub fn status(&self) -> Status {
        Status {
            capture: self
                .capture
                .as_deref()
                .map(CaptureStats::snapshot)
                .unwrap_or_default(),
            conns: self.table.stats.clone(),
            calls: self.calls,
            out_of_scope_conns: self.out_of_scope_conns,
            out_of_scope_calls: self.out_of_scope_calls,
            parse_errors: self.parse_errors,
            queue_dropped: self.sinks.iter().map(|s| s.dropped()).sum(),
        }
    }

    /// Take one capture event through every stage. Finished calls wait in
    /// a batch until [`Pipeline::deliver`].
    pub fn feed(&mut self, ev: &CaptureEvent) {
        match ev {
            // Out of scope by process or destination: switched off in the
            // kernel before a byte is sent. Calls are checked in full (host,
            // container) once built.
            CaptureEvent::ConnOpen {
                origin,
                role,
                remote,
                comm,
                ..
            } if *role != Role::Server
                && (!self.scope.allows_process(origin.tgid, comm)
                    || !self.scope.allows_remote(*remote)) =>
            {
                self.out_of_scope_conns += 1;
                self.fx.push(Effect::Mute {
                    tgid: origin.tgid,
                    fd: origin.fd,
                    how: Mute::All,
                });
                self.apply();
                return;
            }
            CaptureEvent::Exec { origin, comm, .. } => self.builder.exec(origin.tgid, comm),
            _ => {}
        }
        self.table.on_event(ev, &mut self.fx);
        self.apply();
        if let CaptureEvent::ProcExit { origin } = ev {
            // After its last calls were built with its metadata.
            self.builder.exit(origin.tgid);
        }
    }

    /// Carry out the table's effects: build, scope and redact calls; mute
    /// and forget in the kernel.
    fn apply(&mut self) {
        for effect in self.fx.drain(..) {
            match effect {
                Effect::Exchange { conn, exchange } => {
                    let mut call = self.builder.build(&conn, exchange);
                    if !self.scope.allows(&call) {
                        self.out_of_scope_calls += 1;
                        continue;
                    }
                    if matches!(
                        call.exchange.error,
                        Some(CallError::Malformed(_) | CallError::Degraded)
                    ) {
                        self.parse_errors += 1;
                    }
                    self.redaction.redact(&mut call);
                    self.calls += 1;
                    self.batch.push(Arc::new(call));
                }
                Effect::Mute { tgid, fd, how } => {
                    if let Some(ctl) = &self.control {
                        ctl.mute(tgid, fd, how);
                    }
                }
                Effect::Forget { tgid, fds } => {
                    if let Some(ctl) = &self.control {
                        ctl.forget(tgid, &fds);
                    }
                }
            }
        }
    }

    /// Hand the calls finished so far to every sink.
    pub fn deliver(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        for sink in &mut self.sinks {
            sink.calls(&self.batch);
        }
        self.batch.clear();
    }

    /// Housekeeping, about once a second: close idle connections, hand on
    /// their calls, and give every sink the counters.
    pub fn tick(&mut self, now_ns: u64) {
        self.table.sweep(now_ns, &mut self.fx);
        self.apply();
        self.deliver();
        let status = self.status();
        for sink in &mut self.sinks {
            sink.tick(&status);
        }
    }

    /// Run until `stop` is set or the capture side hangs up. Events go back
    /// to `pool` once seen. `on_tick` runs after each [`Pipeline::tick`]
    /// (reloads, liveness).
    pub fn run(
        &mut self,
        rx: &Receiver<CaptureEvent>,
        pool: &BufPool,
        stop: &AtomicBool,
        mut on_tick: impl FnMut(&mut Pipeline),
    ) {
        let mut spent = Vec::new();
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) => {
                    self.feed(&ev);
                    keep_payload(ev, &mut spent);
                    // Drain what is already queued before handing calls on.
                    while let Ok(ev) = rx.try_recv() {
                        self.feed(&ev);
                        keep_payload(ev, &mut spent);
                        if self.batch.len() >= BATCH_EVENTS || spent.len() >= BATCH_EVENTS {
                            break;
                        }
                    }
                    pool.put_all(&mut spent);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= TICK {
                self.tick(now_ns());
                on_tick(self);
                last_tick = Instant::now();
            }
            self.deliver();
        }
    }

    /// After capture stopped: take what is still queued in `rx`, flush every
    /// connection (pending requests become incomplete calls), hand the
    /// calls on, and let every sink finish with the final counters.
    pub fn finish(mut self, rx: Option<&Receiver<CaptureEvent>>) -> Status {
        if let Some(rx) = rx {
            while let Ok(ev) = rx.try_recv() {
                self.feed(&ev);
            }
        }
        self.table.flush_all(now_ns(), &mut self.fx);
        self.apply();
        self.deliver();
        let status = self.status();
        for sink in &mut self.sinks {
            sink.finish(&status);
        }
        // Drops during the sinks' own flush count too.
        self.status()
    }
}

fn keep_payload(ev: CaptureEvent, spent: &mut Vec<Vec<u8>>) {
    if let CaptureEvent::Data { bytes, .. } = ev {
        spent.push(bytes);
    }
}

#[cfg(test)]
mod tests;
