//! Windowed aggregation of recent calls, in bounded memory.
//!
//! The model keeps a ring of at most [`Limits::max_calls`] calls (oldest
//! dropped first). Every view (grouping × window × filter × pid) is computed
//! from the ring on demand, so switching grouping or window is instant and
//! needs no per-grouping state. While computing, each group keeps at most
//! [`Limits::recent_per_group`] recent calls (for the drill-down) and at most
//! [`Limits::latency_sample`] latencies (for the percentiles).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::calls::{Call, Protocol};

/// What the view keeps of one call: only what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSample {
    /// First request byte, unix ns.
    pub started_ns: u64,
    pub pid: u32,
    pub comm: String,
    pub host: String,
    pub port: Option<u16>,
    pub http2: bool,
    pub tls: bool,
    pub method: Option<String>,
    /// Path as sent, secrets redacted.
    pub path: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    /// The `error` column (`incomplete`, `reset:8`, …).
    pub error: Option<String>,
    /// Last response byte − first request byte.
    pub duration_ns: Option<u64>,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl CallSample {
    /// The view's copy of a call (already redacted by the pipeline).
    pub fn from_call(call: &Call) -> CallSample {
        let ex = &call.exchange;
        let duration_ns = ex
            .timing
            .resp_last_ns
            .map(|last| last.saturating_sub(ex.timing.req_first_ns));
        CallSample {
            started_ns: ex.timing.req_first_ns,
            pid: call.process.pid,
            comm: call.process.comm.clone(),
            host: call.host.clone(),
            port: call.port,
            http2: ex.protocol == Protocol::Http2,
            tls: call.conn.tls,
            method: ex.method.clone(),
            path: ex.path.clone(),
            route: call.route.clone(),
            status: ex.status,
            error: ex.error.as_ref().map(|e| e.as_text()),
            duration_ns,
            bytes_out: ex.req_body.total,
            bytes_in: ex.resp_body.total,
        }
    }

    /// 4xx, 5xx or a transport/capture error.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status.is_some_and(|s| s >= 400)
    }

    /// `h1`, `h1s`, `h2`, `h2s`.
    pub fn proto_label(&self) -> &'static str {
        match (self.http2, self.tls) {
            (false, false) => "h1",
            (false, true) => "h1s",
            (true, false) => "h2",
            (true, true) => "h2s",
        }
    }

    /// `comm[pid]`.
    pub fn process_label(&self) -> String {
        format!("{}[{}]", self.comm, self.pid)
    }

    /// `host:port` (IPv6 literals bracketed).
    pub fn host_label(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

/// How calls are grouped into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Grouping {
    Process,
    #[default]
    Host,
    HostRoute,
    ProcessHostRoute,
}

impl Grouping {
    pub const ALL: [Grouping; 4] = [
        Grouping::Process,
        Grouping::Host,
        Grouping::HostRoute,
        Grouping::ProcessHostRoute,
    ];

    pub fn next(self) -> Grouping {
        match self {
            Grouping::Process => Grouping::Host,
            Grouping::Host => Grouping::HostRoute,
            Grouping::HostRoute => Grouping::ProcessHostRoute,
            Grouping::ProcessHostRoute => Grouping::Process,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Grouping::Process => "process",
            Grouping::Host => "host",
            Grouping::HostRoute => "host+route",
            Grouping::ProcessHostRoute => "process+host+route",
        }
    }

    pub fn has_process(self) -> bool {
        matches!(self, Grouping::Process | Grouping::ProcessHostRoute)
    }

    pub fn has_host(self) -> bool {
        !matches!(self, Grouping::Process)
    }

    pub fn has_route(self) -> bool {
        matches!(self, Grouping::HostRoute | Grouping::ProcessHostRoute)
    }

    fn key(self, c: &CallSample) -> GroupKey {
        GroupKey {
            pid: self.has_process().then_some(c.pid),
            comm: self.has_process().then(|| c.comm.clone()),
            host: self.has_host().then(|| (c.host.clone(), c.port)),
            route: self
                .has_route()
                .then(|| c.route.clone().unwrap_or_else(|| "-".into())),
        }
    }
}

/// The time window rows cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    S10,
    #[default]
    M1,
    M5,
    M15,
    /// Everything still in the ring.
    All,
}

impl Window {
    pub fn next(self) -> Window {
        match self {
            Window::S10 => Window::M1,
            Window::M1 => Window::M5,
            Window::M5 => Window::M15,
            Window::M15 => Window::All,
            Window::All => Window::S10,
        }
    }

    pub fn duration(self) -> Option<Duration> {
        match self {
            Window::S10 => Some(Duration::from_secs(10)),
            Window::M1 => Some(Duration::from_secs(60)),
            Window::M5 => Some(Duration::from_secs(300)),
            Window::M15 => Some(Duration::from_secs(900)),
            Window::All => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::S10 => "10s",
            Window::M1 => "1m",
            Window::M5 => "5m",
            Window::M15 => "15m",
            Window::All => "all",
        }
    }

    /// `all`, or a time (`crate::units::parse_duration`) equal to one of
    /// the windows: `10s`, `1m` (`60s`), `5m`, `15m`.
    pub fn parse(s: &str) -> Option<Window> {
        const ALL: [Window; 5] = [
            Window::S10,
            Window::M1,
            Window::M5,
            Window::M15,
            Window::All,
        ];
        if s.trim().eq_ignore_ascii_case("all") {
            return Some(Window::All);
        }
        let d = crate::units::parse_duration(s).ok()?;
        ALL.into_iter().find(|w| w.duration() == Some(d))
    }
}

/// Table columns, in display order; also the sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Column {
    Process,
    Host,
    Proto,
    #[default]
    Requests,
    Rps,
    ErrorPct,
    P50,
    P95,
    P99,
    BytesOut,
    BytesIn,
}

impl Column {
    pub const ALL: [Column; 11] = [
        Column::Process,
        Column::Host,
        Column::Proto,
        Column::Requests,
        Column::Rps,
        Column::ErrorPct,
        Column::P50,
        Column::P95,
        Column::P99,
        Column::BytesOut,
        Column::BytesIn,
    ];

    /// Column `n`, counting from 1 (the `1`–`9` keys).
    pub fn nth(n: usize) -> Option<Column> {
        n.checked_sub(1).and_then(|i| Column::ALL.get(i)).copied()
    }

    pub fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Column::Process => "PROCESS",
            Column::Host => "HOST:PORT",
            Column::Proto => "PROTO",
            Column::Requests => "REQS",
            Column::Rps => "RPS",
            Column::ErrorPct => "ERR%",
            Column::P50 => "P50",
            Column::P95 => "P95",
            Column::P99 => "P99",
            Column::BytesOut => "OUT",
            Column::BytesIn => "IN",
        }
    }

    /// Name accepted by `--sort`.
    pub fn name(self) -> &'static str {
        match self {
            Column::Process => "process",
            Column::Host => "host",
            Column::Proto => "proto",
            Column::Requests => "reqs",
            Column::Rps => "rps",
            Column::ErrorPct => "err",
            Column::P50 => "p50",
            Column::P95 => "p95",
            Column::P99 => "p99",
            Column::BytesOut => "out",
            Column::BytesIn => "in",
        }
    }

    pub fn parse(s: &str) -> Option<Column> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "requests" | "count" | "calls" => "reqs",
            "error" | "errors" | "err%" => "err",
            "bytes_out" | "bytes-out" => "out",
            "bytes_in" | "bytes-in" => "in",
            "protocol" => "proto",
            other => other,
        };
        Column::ALL.into_iter().find(|c| c.name() == alias)
    }

    /// Numbers sort largest first, text A→Z, unless inverted.
    pub fn default_desc(self) -> bool {
        !matches!(self, Column::Process | Column::Host | Column::Proto)
    }
}

/// Identity of a row. Fields the grouping does not use are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub host: Option<(String, Option<u16>)>,
    pub route: Option<String>,
}

impl GroupKey {
    pub fn matches(&self, c: &CallSample) -> bool {
        self.pid.is_none_or(|p| p == c.pid)
            && self.comm.as_ref().is_none_or(|x| *x == c.comm)
            && self
                .host
                .as_ref()
                .is_none_or(|(h, p)| *h == c.host && *p == c.port)
            && self
                .route
                .as_ref()
                .is_none_or(|r| r.as_str() == c.route.as_deref().unwrap_or("-"))
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: GroupKey,
    /// `comm[pid]`; for several processes, their names with how many of
    /// each: `curl ×20`, `curl, python3`, `curl, python3 +3` (see
    /// [`process_label`]).
    pub process: String,
    /// `host:port`, or `N hosts`.
    pub host: String,
    /// Route (grouping with route only).
    pub route: Option<String>,
    /// `h1s`, or the labels seen joined with `,`.
    pub proto: String,
    pub requests: u64,
    pub rps: f64,
    pub errors: u64,
    pub error_pct: f64,
    pub p50_ns: Option<u64>,
    pub p95_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Latest first, at most [`Limits::recent_per_group`].
    pub recent: Vec<Arc<CallSample>>,
}

/// Totals over all rows shown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub rps: f64,
    pub errors: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// What to show: the parameters of [`Model::view`].
#[derive(Debug, Clone, Default)]
pub struct ViewSpec {
    pub grouping: Grouping,
    pub window: Window,
    pub sort: Column,
    pub desc: bool,
    /// Case-insensitive substring of process, host:port or route.
    pub filter: String,
    pub pid: Option<u32>,
}

/// A computed frame.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub rows: Vec<Row>,
    pub totals: Totals,
    /// Seconds the rates are computed over.
    pub span_secs: f64,
    /// The ring dropped calls that would be in this window.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls kept overall (oldest dropped first).
    pub max_calls: usize,
    /// Recent calls kept per row for the drill-down.
    pub recent_per_group: usize,
    /// Latencies per row the percentiles are computed from (the latest).
    pub latency_sample: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls: 50_000,
            recent_per_group: 100,
            latency_sample: 2048,
        }
    }
}

/// The ring of recent calls.
#[derive(Debug)]
pub struct Model {
    limits: Limits,
    ring: VecDeque<Arc<CallSample>>,
    /// Calls ever added.
    pub seen: u64,
    /// Calls dropped from the ring to bound memory.
    pub evicted: u64,
    /// Start time of the newest call evicted (ns), for `View::truncated`.
    evicted_upto_ns: u64,
    /// Since when calls have been observed (unix ns).
    observed_since_ns: u64,
}

impl Model {
    pub fn new(limits: Limits, observed_since_ns: u64) -> Model {
        Model {
            limits: Limits {
                max_calls: limits.max_calls.max(1),
                recent_per_group: limits.recent_per_group.max(1),
                latency_sample: limits.latency_sample.max(1),
            },
            ring: VecDeque::new(),
            seen: 0,
            evicted: 0,
            evicted_upto_ns: 0,
            observed_since_ns,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn push(&mut self, c: CallSample) {
        if self.ring.len() >= self.limits.max_calls {
            if let Some(old) = self.ring.pop_front() {
                self.evicted += 1;
                self.evicted_upto_ns = self.evicted_upto_ns.max(old.started_ns);
            }
        }
        self.seen += 1;
        self.ring.push_back(Arc::new(c));
    }

    /// Compute the rows for `spec` as of `now_ns`, considering only the
    /// first `upto` calls ever added (`None`: all; a paused view passes the
    /// count at pause time).
    pub fn view(&self, spec: &ViewSpec, now_ns: u64, upto: Option<u64>) -> View {
        let from_ns = spec
            .window
            .duration()
            .map_or(0, |d| now_ns.saturating_sub(d.as_nanos() as u64));
        // Rates: over the window, or as much of it as was observed.
        let observed_from = from_ns.max(self.observed_since_ns);
        let oldest = self.ring.front().map_or(now_ns, |c| c.started_ns);
        let span_from = if spec.window == Window::All {
            self.observed_since_ns.min(oldest)
        } else {
            observed_from
        };
        let span_secs = (now_ns.saturating_sub(span_from) as f64 / 1e9).max(1.0);
        let truncated = self.evicted > 0 && self.evicted_upto_ns >= from_ns;

        let filter = spec.filter.to_lowercase();
        // Calls past `upto` are the newest `seen - upto`; skip them.
        let skip_newest = upto.map_or(0, |u| self.seen.saturating_sub(u)) as usize;
        let n = self.ring.len().saturating_sub(skip_newest);

        let mut groups: HashMap<GroupKey, Acc> = HashMap::new();
        // Newest first, so the per-group bounded lists keep the latest.
        for c in self.ring.iter().take(n).rev() {
            if c.started_ns < from_ns || c.started_ns > now_ns {
                continue;
            }
            if spec.pid.is_some_and(|p| p != c.pid) {
                continue;
            }
            if !filter.is_empty() && !sample_matches(c, &filter) {
                continue;
            }
            let acc = groups.entry(spec.grouping.key(c)).or_default();
            acc.add(c, &self.limits);
        }

        let mut totals = Totals::default();
        let mut rows: Vec<Row> = groups
            .into_iter()
            .map(|(key, acc)| {
                let row = acc.into_row(key, spec.grouping, span_secs);
                totals.requests += row.requests;
                totals.errors += row.errors;
                totals.bytes_out += row.bytes_out;
                totals.bytes_in += row.bytes_in;
                row
            })
            .collect();
        totals.rps = totals.requests as f64 / span_secs;
        sort_rows(&mut rows, spec.sort, spec.desc);
        View {
            rows,
            totals,
            span_secs,
            truncated,
        }
    }
}

/// Case-insensitive substring over process (`comm[pid]`), host:port and
/// route. `filter` is already lowercase.
fn sample_matches(c: &CallSample, filter: &str) -> bool {
    c.process_label().to_lowercase().contains(filter)
        || c.host_label().to_lowercase().contains(filter)
        || c.route
            .as_deref()
            .is_some_and(|r| r.to_lowercase().contains(filter))
}

#[derive(Default)]
struct Acc {
    requests: u64,
    errors: u64,
    bytes_out: u64,
    bytes_in: u64,
    /// Latest first, bounded.
    latencies: Vec<u64>,
    recent: Vec<Arc<CallSample>>,
    /// Every process of the row, by name. Bounded by the model's ring.
    procs: HashMap<String, HashSet<u32>>,
    hosts: Vec<String>,
    protos: Vec<&'static str>,
}

/// Distinct labels kept per row; more are shown as a count.
const LABELS_MAX: usize = 8;

fn add_distinct<T: PartialEq>(v: &mut Vec<T>, x: T, overflow: &mut bool) {
    if !v.contains(&x) {
        if v.len() < LABELS_MAX {
            v.push(x);
        } else {
            *overflow = true;
        }
    }
}

impl Acc {
    fn add(&mut self, c: &Arc<CallSample>, limits: &Limits) {
        self.requests += 1;
        if c.is_error() {
            self.errors += 1;
        }
        self.bytes_out += c.bytes_out;
        self.bytes_in += c.bytes_in;
        if let Some(d) = c.duration_ns {
            if self.latencies.len() < limits.latency_sample {
                self.latencies.push(d);
            }
        }
        if self.recent.len() < limits.recent_per_group {
            self.recent.push(c.clone());
        }
        let mut overflow = false;
        match self.procs.get_mut(&c.comm) {
            Some(pids) => {
                pids.insert(c.pid);
            }
            None => {
                self.procs.insert(c.comm.clone(), HashSet::from([c.pid]));
            }
        }
        add_distinct(&mut self.hosts, c.host_label(), &mut overflow);
        add_distinct(&mut self.protos, c.proto_label(), &mut overflow);
    }

    fn into_row(mut self, key: GroupKey, grouping: Grouping, span_secs: f64) -> Row {
        self.latencies.sort_unstable();
        // Insert order is completion order; show by start time.
        self.recent.sort_by_key(|c| std::cmp::Reverse(c.started_ns));
        let process = process_label(&self.procs);
        let host = match self.hosts.as_slice() {
            [h] => h.clone(),
            many => format!("{} hosts", many.len()),
        };
        self.protos.sort_unstable();
        Row {
            process,
            host,
            route: grouping.has_route().then(|| key.route.clone()).flatten(),
            proto: self.protos.join(","),
            requests: self.requests,
            rps: self.requests as f64 / span_secs,
            errors: self.errors,
            error_pct: if self.requests == 0 {
                0.0
            } else {
                100.0 * self.errors as f64 / self.requests as f64
            },
            p50_ns: percentile(&self.latencies, 50.0),
            p95_ns: percentile(&self.latencies, 95.0),
            p99_ns: percentile(&self.latencies, 99.0),
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            recent: self.recent,
            key,
        }
    }
}

/// Names shown before the rest are counted as `+N`.
const NAMES_SHOWN: usize = 2;

/// The process column of a row: `comm[pid]` for one process; else the
/// names, busiest (most pids) first, each with `×N` when it covers several
/// pids, and how many more names: `curl ×20`, `curl ×20, python3`,
/// `curl, python3 +3`.
pub fn process_label(procs: &HashMap<String, HashSet<u32>>) -> String {
    let mut names: Vec<(&String, usize)> = procs.iter().map(|(n, p)| (n, p.len())).collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    match names.as_slice() {
        [] => String::new(),
        [(name, 1)] => {
            let pid = procs[*name].iter().next().copied().unwrap_or_default();
            format!("{name}[{pid}]")
        }
        [(name, n)] => format!("{name} \u{d7}{n}"),
        many => {
            let shown: Vec<String> = many
                .iter()
                .take(NAMES_SHOWN)
                .map(|(name, n)| match n {
                    1 => name.to_string(),
                    n => format!("{name} \u{d7}{n}"),
                })
                .collect();
            let mut label = shown.join(", ");
            if many.len() > NAMES_SHOWN {
                label.push_str(&format!(" +{}", many.len() - NAMES_SHOWN));
            }
            label
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied()
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Sort by `col` (descending when `desc`); ties by group key, always A→Z,
/// so equal rows never swap places between frames.
pub fn sort_rows(rows: &mut [Row], col: Column, desc: bool) {
    rows.sort_by(|a, b| {
        let o = match col {
            Column::Process => a.process.cmp(&b.process),
            Column::Host => a.host.cmp(&b.host),
            Column::Proto => a.proto.cmp(&b.proto),
            Column::Requests => a.requests.cmp(&b.requests),
            Column::Rps => cmp_f64(a.rps, b.rps),
            Column::ErrorPct => cmp_f64(a.error_pct, b.error_pct),
            Column::P50 => a.p50_ns.cmp(&b.p50_ns),
            Column::P95 => a.p95_ns.cmp(&b.p95_ns),
            Column::P99 => a.p99_ns.cmp(&b.p99_ns),
            Column::BytesOut => a.bytes_out.cmp(&b.bytes_out),
            Column::BytesIn => a.bytes_in.cmp(&b.bytes_in),
        };
        let o = if desc { o.reverse() } else { o };
        o.then_with(|| a.key.cmp(&b.key))
    });
}

/// `850µs`, `12.3ms`, `1.24s`, `-`.
pub fn fmt_latency(ns: Option<u64>) -> String {
    let Some(ns) = ns else {
        return "-".into();
    };
    let us = ns as f64 / 1e3;
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 100_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else if us < 1e6 {
        format!("{:.0}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// `512B`, `1.5K`, `12M` (1024-based).
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}")
    } else if r < 100.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

#[cfg(test)]
pub(crate) mod tests;
