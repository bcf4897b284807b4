//! Windowed aggregation of recent calls, in bounded memory.
//!
//! The model keeps a ring of at most [`Limits::max_calls`] calls (oldest
//! dropped first). Every view (grouping × window × filter × pid) is computed
//! from the ring on demand, so switching grouping or window is instant and
//! needs no per-grouping state. While computing, each group keeps at most
//! [`Limits::recent_per_group`] recent calls (for the drill-down) and at most
//! [`Limits::latency_sample`] latencies (for the percentiles).
//!
//! Beside the ring, [`Trends`] keeps per-series time buckets (at most
//! [`Limits::trend_series`] series; see [`super::trends`] for the bound):
//! the charts and each row's recent p95 come from them, so they reach back
//! further than the ring when calls are many.
//!
//! A "process" row is a program: one executable name (`comm`), or, where
//! two executables share a name in the view, one executable path. With
//! [`ViewSpec::by_pid`] it is one pid instead.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::trends::{lat_bin_high, Bucket, Chart, Trends};
use crate::calls::{Call, Protocol};

/// What the view keeps of one call: only what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSample {
    /// First request byte, unix ns.
    pub started_ns: u64,
    pub pid: u32,
    pub comm: String,
    /// Executable path, when known.
    pub exe: Option<String>,
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
            exe: call.process.exe.clone(),
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
        host_label(&self.host, self.port)
    }
}

/// `host:port` (IPv6 literals bracketed).
pub fn host_label(host: &str, port: Option<u16>) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The fields rows are grouped and filtered by, shared by a call and a
/// [`super::trends::SeriesKey`], so both land in the same row.
pub trait Ident {
    fn pid(&self) -> u32;
    fn comm(&self) -> &str;
    fn exe(&self) -> Option<&str>;
    fn host(&self) -> &str;
    fn port(&self) -> Option<u16>;
    fn route(&self) -> Option<&str>;
}

impl<T: Ident> Ident for Arc<T> {
    fn pid(&self) -> u32 {
        self.as_ref().pid()
    }
    fn comm(&self) -> &str {
        self.as_ref().comm()
    }
    fn exe(&self) -> Option<&str> {
        self.as_ref().exe()
    }
    fn host(&self) -> &str {
        self.as_ref().host()
    }
    fn port(&self) -> Option<u16> {
        self.as_ref().port()
    }
    fn route(&self) -> Option<&str> {
        self.as_ref().route()
    }
}

impl Ident for CallSample {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn comm(&self) -> &str {
        &self.comm
    }
    fn exe(&self) -> Option<&str> {
        self.exe.as_deref()
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn port(&self) -> Option<u16> {
        self.port
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
}

/// How calls are grouped into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Grouping {
    /// By program (or by pid, with [`ViewSpec::by_pid`]).
    #[default]
    Process,
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

/// Table columns, in display order; also the sort keys. PIDS comes last so
/// that the columns `--once` printed before it keep their places.
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
    Pids,
}

impl Column {
    pub const ALL: [Column; 12] = [
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
        Column::Pids,
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
            Column::Pids => "PIDS",
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
            Column::Pids => "pids",
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
            "pid" | "processes" => "pids",
            other => other,
        };
        Column::ALL.into_iter().find(|c| c.name() == alias)
    }

    /// Numbers sort largest first, text A→Z, unless inverted.
    pub fn default_desc(self) -> bool {
        !matches!(self, Column::Process | Column::Host | Column::Proto)
    }
}

/// The program of a row: its executable name, or, where two executables
/// share that name, its executable path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    Comm(String),
    Exe { comm: String, exe: String },
}

/// Identity of a row. Fields the grouping does not use are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Groupings with a process: the program (by pid: the pid's name).
    pub program: Option<Program>,
    /// Grouping by pid.
    pub pid: Option<u32>,
    pub host: Option<(String, Option<u16>)>,
    pub route: Option<String>,
}

impl GroupKey {
    pub fn matches(&self, c: &impl Ident) -> bool {
        self.program.as_ref().is_none_or(|p| match p {
            Program::Comm(comm) => comm == c.comm(),
            Program::Exe { comm, exe } => comm == c.comm() && Some(exe.as_str()) == c.exe(),
        }) && self.pid.is_none_or(|p| p == c.pid())
            && self
                .host
                .as_ref()
                .is_none_or(|(h, p)| h == c.host() && *p == c.port())
            && self
                .route
                .as_ref()
                .is_none_or(|r| r.as_str() == c.route().unwrap_or("-"))
    }
}

/// One process of a row (the drill-down lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    pub pid: u32,
    pub comm: String,
    pub requests: u64,
    pub errors: u64,
    /// Start of its latest call (unix ns).
    pub last_ns: u64,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: GroupKey,
    /// Grouped by program: its name (or executable path); by pid:
    /// `comm[pid]`; otherwise the names of the row's processes with how
    /// many of each: `curl ×20`, `curl, python3`, `curl, python3 +3` (see
    /// [`process_label`]).
    pub process: String,
    /// Distinct pids that made the row's calls.
    pub pids: u64,
    /// The busiest of them (most calls first), at most
    /// [`Limits::recent_per_group`].
    pub pid_list: Vec<PidStat>,
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
    /// The row's p95 over the last 16 minutes, from its time buckets: the
    /// top of the histogram bin it falls in, so a latency above it is
    /// slower than the row's recent 95th percentile.
    pub recent_p95_ns: Option<u64>,
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
    /// A process is a pid rather than a program (`p`, `--group pid`).
    pub by_pid: bool,
    pub window: Window,
    pub sort: Column,
    pub desc: bool,
    /// Case-insensitive substring of process, executable, host:port or
    /// route.
    pub filter: String,
    pub pid: Option<u32>,
}

impl ViewSpec {
    /// The grouping as the header shows it: `process`, `pid`, `host`, …
    pub fn group_label(&self) -> &'static str {
        match (self.grouping, self.by_pid) {
            (Grouping::Process, true) => "pid",
            (Grouping::ProcessHostRoute, true) => "pid+host+route",
            (g, _) => g.label(),
        }
    }

    /// The row `c` belongs to. `collide`: names that two executables share
    /// in this view (their rows are per executable path).
    pub fn key(&self, c: &impl Ident, collide: &HashSet<String>) -> GroupKey {
        let g = self.grouping;
        let program = g.has_process().then(|| match c.exe() {
            Some(exe) if !self.by_pid && collide.contains(c.comm()) => Program::Exe {
                comm: c.comm().to_string(),
                exe: exe.to_string(),
            },
            _ => Program::Comm(c.comm().to_string()),
        });
        GroupKey {
            program,
            pid: (g.has_process() && self.by_pid).then(|| c.pid()),
            host: g.has_host().then(|| (c.host().to_string(), c.port())),
            route: g.has_route().then(|| c.route().unwrap_or("-").to_string()),
        }
    }

    /// Whether `c` passes the filter (`filter` lowercased) and `--pid`.
    fn admits(&self, c: &impl Ident, filter: &str) -> bool {
        self.pid.is_none_or(|p| p == c.pid()) && (filter.is_empty() || ident_matches(c, filter))
    }
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
    /// Names two executables share in this view: their rows are per path.
    pub collide: HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls kept overall (oldest dropped first).
    pub max_calls: usize,
    /// Recent calls (and pids) kept per row for the drill-down.
    pub recent_per_group: usize,
    /// Latencies per row the percentiles are computed from (the latest).
    pub latency_sample: usize,
    /// Series of time buckets kept for the charts (least recently updated
    /// dropped first); see [`super::trends`] for the bytes this bounds.
    pub trend_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls: 50_000,
            recent_per_group: 100,
            latency_sample: 2048,
            trend_series: 256,
        }
    }
}

/// The ring of recent calls, and their time buckets.
#[derive(Debug)]
pub struct Model {
    limits: Limits,
    ring: VecDeque<Arc<CallSample>>,
    trends: Trends,
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
                trend_series: limits.trend_series.max(1),
            },
            ring: VecDeque::new(),
            trends: Trends::new(limits.trend_series),
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

    pub fn trends(&self) -> &Trends {
        &self.trends
    }

    /// Add a call, as of the wall clock.
    pub fn push(&mut self, c: CallSample) {
        self.push_at(c, qmon_vocab::now_ns());
    }

    /// Add a call; `now_ns` is the wall clock (calls stamped far past it
    /// are kept in the ring but not in the time buckets).
    pub fn push_at(&mut self, c: CallSample, now_ns: u64) {
        if self.ring.len() >= self.limits.max_calls {
            if let Some(old) = self.ring.pop_front() {
                self.evicted += 1;
                self.evicted_upto_ns = self.evicted_upto_ns.max(old.started_ns);
            }
        }
        self.seen += 1;
        self.trends.add(&c, now_ns);
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
        // Newest first, so the per-group bounded lists keep the latest.
        let calls: Vec<&Arc<CallSample>> = self
            .ring
            .iter()
            .take(n)
            .rev()
            .filter(|c| c.started_ns >= from_ns && c.started_ns <= now_ns)
            .filter(|c| spec.admits(c.as_ref(), &filter))
            .collect();
        let collide = if spec.grouping.has_process() && !spec.by_pid {
            shared_names(calls.iter().map(|c| c.as_ref()))
        } else {
            HashSet::new()
        };

        let mut groups: HashMap<GroupKey, Acc> = HashMap::new();
        for c in calls {
            let acc = groups.entry(spec.key(c.as_ref(), &collide)).or_default();
            acc.add(c, &self.limits);
        }

        let mut totals = Totals::default();
        let mut rows: Vec<Row> = groups
            .into_iter()
            .map(|(key, acc)| {
                let row = acc.into_row(key, spec, span_secs, &self.limits);
                totals.requests += row.requests;
                totals.errors += row.errors;
                totals.bytes_out += row.bytes_out;
                totals.bytes_in += row.bytes_in;
                row
            })
            .collect();
        totals.rps = totals.requests as f64 / span_secs;
        self.set_recent_p95(&mut rows, spec, &filter, &collide, now_ns);
        sort_rows(&mut rows, spec.sort, spec.desc);
        View {
            rows,
            totals,
            span_secs,
            truncated,
            collide,
        }
    }

    /// Each row's p95 over its recent time buckets.
    fn set_recent_p95(
        &self,
        rows: &mut [Row],
        spec: &ViewSpec,
        filter: &str,
        collide: &HashSet<String>,
        now_ns: u64,
    ) {
        let index: HashMap<&GroupKey, usize> =
            rows.iter().enumerate().map(|(i, r)| (&r.key, i)).collect();
        let mut recent: Vec<Bucket> = vec![Bucket::default(); rows.len()];
        for (key, series) in self.trends.series() {
            if !spec.admits(key, filter) {
                continue;
            }
            if let Some(i) = index.get(&spec.key(key, collide)) {
                Trends::recent(series, now_ns, &mut recent[*i]);
            }
        }
        for (row, b) in rows.iter_mut().zip(&recent) {
            row.recent_p95_ns = b.percentile_bin(95.0).map(lat_bin_high);
        }
    }

    /// The chart of the row `key` in `view` (computed for `spec` at
    /// `now_ns`): its time buckets over the window.
    pub fn chart(&self, spec: &ViewSpec, view: &View, key: &GroupKey, now_ns: u64) -> Chart {
        let filter = spec.filter.to_lowercase();
        self.trends.chart(
            |s| spec.admits(s, &filter) && spec.key(s, &view.collide) == *key,
            spec.window.duration().map(|d| d.as_secs()),
            now_ns,
            self.observed_since_ns,
        )
    }
}

/// Names (`comm`) that more than one executable path has among `calls`.
fn shared_names<'a>(calls: impl Iterator<Item = &'a CallSample>) -> HashSet<String> {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut shared = HashSet::new();
    for c in calls {
        let Some(exe) = c.exe.as_deref() else {
            continue;
        };
        let seen = *first.entry(c.comm.as_str()).or_insert(exe);
        if seen != exe {
            shared.insert(c.comm.clone());
        }
    }
    shared
}

/// Case-insensitive substring over process (`comm[pid]`), executable,
/// host:port and route. `filter` is already lowercase.
fn ident_matches(c: &impl Ident, filter: &str) -> bool {
    format!("{}[{}]", c.comm(), c.pid())
        .to_lowercase()
        .contains(filter)
        || c.exe().is_some_and(|e| e.to_lowercase().contains(filter))
        || host_label(c.host(), c.port())
            .to_lowercase()
            .contains(filter)
        || c.route().is_some_and(|r| r.to_lowercase().contains(filter))
}

#[derive(Default)]
struct PidAcc {
    comm: String,
    requests: u64,
    errors: u64,
    last_ns: u64,
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
    /// Every process of the row, by pid. Bounded by the model's ring.
    pids: HashMap<u32, PidAcc>,
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
        let error = c.is_error();
        if error {
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
        let p = self.pids.entry(c.pid).or_insert_with(|| PidAcc {
            comm: c.comm.clone(),
            ..PidAcc::default()
        });
        p.requests += 1;
        p.errors += u64::from(error);
        p.last_ns = p.last_ns.max(c.started_ns);
        add_distinct(&mut self.hosts, c.host_label(), &mut overflow);
        add_distinct(&mut self.protos, c.proto_label(), &mut overflow);
    }

    fn into_row(mut self, key: GroupKey, spec: &ViewSpec, span_secs: f64, limits: &Limits) -> Row {
        self.latencies.sort_unstable();
        // Insert order is completion order; show by start time.
        self.recent.sort_by_key(|c| std::cmp::Reverse(c.started_ns));
        let process = match (&key.program, key.pid) {
            (Some(_), Some(pid)) => {
                let comm = self.pids.get(&pid).map_or("", |p| p.comm.as_str());
                format!("{comm}[{pid}]")
            }
            (Some(Program::Comm(comm)), None) => comm.clone(),
            (Some(Program::Exe { exe, .. }), None) => exe_label(exe),
            (None, _) => process_label(&self.procs),
        };
        let host = match self.hosts.as_slice() {
            [h] => h.clone(),
            many => format!("{} hosts", many.len()),
        };
        self.protos.sort_unstable();
        let mut pid_list: Vec<PidStat> = self
            .pids
            .into_iter()
            .map(|(pid, p)| PidStat {
                pid,
                comm: p.comm,
                requests: p.requests,
                errors: p.errors,
                last_ns: p.last_ns,
            })
            .collect();
        let pids = pid_list.len() as u64;
        pid_list.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.pid.cmp(&b.pid)));
        pid_list.truncate(limits.recent_per_group);
        Row {
            process,
            pids,
            pid_list,
            host,
            route: spec
                .grouping
                .has_route()
                .then(|| key.route.clone())
                .flatten(),
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
            recent_p95_ns: None,
            recent: self.recent,
            key,
        }
    }
}

/// Widest process label (terminal columns) before it is cut.
pub const PROCESS_LABEL_MAX: usize = 40;

/// An executable path as a row label: its end, where paths differ, when
/// it is too wide (`…/venv/bin/python3`).
pub fn exe_label(exe: &str) -> String {
    if crate::table::width(exe) <= PROCESS_LABEL_MAX {
        return exe.to_string();
    }
    let mut tail: Vec<char> = Vec::new();
    let mut w = 1; // the ellipsis
    for ch in exe.chars().rev() {
        let cw = crate::table::width(ch.encode_utf8(&mut [0; 4]));
        if w + cw > PROCESS_LABEL_MAX {
            break;
        }
        w += cw;
        tail.push(ch);
    }
    std::iter::once('…').chain(tail.into_iter().rev()).collect()
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
            Column::Pids => a.pids.cmp(&b.pids),
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
