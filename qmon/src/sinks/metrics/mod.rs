//! Prometheus metrics: every call becomes OpenTelemetry HTTP client metrics
//! (as Prometheus names them), plus qmon's own health counters.
//!
//! * [`CallMetrics`] turns [`Call`]s into `http_client_*` histograms. Label
//!   values are bounded: never a pid or raw path; the route label is opt-in
//!   and capped per host; distinct `(server_address, server_port)` pairs and
//!   executable names are capped overall. Past a cap the value is
//!   [`OTHER`], and `qmon_metrics_label_overflow_total{label}` counts it.
//! * [`health`] exports capture, connection and store counters at scrape
//!   time, and holds the liveness/readiness state.
//! * [`server`] serves `/metrics`, `/healthz` and `/readyz` with hyper.

pub mod health;
pub mod server;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::calls::{Call, CallError, ProcessInfo, Protocol};

/// The overflow value of a capped label, and of a nonstandard method.
pub const OTHER: &str = "_OTHER";

/// OpenTelemetry's recommended buckets for `http.client.request.duration`.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Body size buckets: 0, then powers of four from 64 B to 16 MiB.
pub const SIZE_BUCKETS: [f64; 11] = [
    0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Methods OpenTelemetry knows; anything else is [`OTHER`].
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// Label caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Add the `url_template` label (qmon's route).
    pub route_label: bool,
    /// Distinct routes per server address before `url_template="_OTHER"`.
    pub routes_per_host: usize,
    /// Distinct (server_address, server_port) pairs before both are `_OTHER`.
    pub max_servers: usize,
    /// Distinct executable names before `process_executable_name="_OTHER"`.
    pub max_executables: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            route_label: false,
            routes_per_host: 50,
            max_servers: 500,
            max_executables: 200,
        }
    }
}

/// A label set: fixed names, in a fixed order.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn size_histogram() -> Histogram {
    Histogram::new(SIZE_BUCKETS)
}

/// `http.request.method`: the method if OpenTelemetry knows it, else `_OTHER`.
pub fn method_label(method: Option<&str>) -> &'static str {
    method
        .and_then(|m| KNOWN_METHODS.iter().find(|k| **k == m))
        .copied()
        .unwrap_or(OTHER)
}

/// `network.protocol.version`.
pub fn protocol_version(p: Protocol) -> &'static str {
    match p {
        Protocol::Http10 => "1.0",
        Protocol::Http11 => "1.1",
        Protocol::Http2 => "2",
    }
}

/// The kind of a call error, without its code: `reset`, `malformed`, …
pub fn error_kind(e: &CallError) -> &'static str {
    match e {
        CallError::Incomplete => "incomplete",
        CallError::DataLost => "data_lost",
        CallError::Reset(_) => "reset",
        CallError::GoAway(_) => "goaway",
        CallError::Degraded => "degraded",
        CallError::Malformed(_) => "malformed",
    }
}

/// `error.type` as OpenTelemetry defines it for HTTP clients: the status
/// code when it is 400 or more, else the transport/parse error kind, else
/// empty (Prometheus treats an empty label as absent).
pub fn error_type(status: Option<u16>, error: Option<&CallError>) -> String {
    match (status, error) {
        (Some(s), _) if s >= 400 => s.to_string(),
        (_, Some(e)) => error_kind(e).to_string(),
        _ => String::new(),
    }
}

/// `process.executable.name`: the executable's file name, else `comm`.
pub fn executable_name(p: &ProcessInfo) -> String {
    p.exe
        .as_deref()
        .and_then(|e| e.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(&p.comm)
        .to_string()
}

/// Maps calls to bounded label sets; remembers which values it admitted.
#[derive(Debug, Default)]
pub struct CallLabeler {
    opts: MetricsOptions,
    servers: HashSet<(String, String)>,
    routes: HashMap<String, HashSet<String>>,
    exes: HashSet<String>,
}

/// Which label a value overflowed, for `qmon_metrics_label_overflow_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Server,
    Route,
    Executable,
}

impl Overflow {
    pub fn label(self) -> &'static str {
        match self {
            Overflow::Server => "server_address",
            Overflow::Route => "url_template",
            Overflow::Executable => "process_executable_name",
        }
    }
}

/// Admit `value` into `set` unless it is full; `None` when it overflowed.
fn admit(set: &mut HashSet<String>, value: String, cap: usize) -> Option<String> {
    if set.contains(&value) || set.len() < cap {
        set.insert(value.clone());
        Some(value)
    } else {
        None
    }
}

impl CallLabeler {
    pub fn new(opts: MetricsOptions) -> Self {
        Self {
            opts,
            ..Self::default()
        }
    }

    /// The label set for `call`, and any caps it ran into.
    pub fn labels(&mut self, call: &Call) -> (Labels, Vec<Overflow>) {
        let ex = &call.exchange;
        let mut overflow = Vec::new();
        let port = call.port.map(|p| p.to_string()).unwrap_or_default();
        let key = (call.host.clone(), port);
        let (address, port) =
            if self.servers.contains(&key) || self.servers.len() < self.opts.max_servers {
                self.servers.insert(key.clone());
                key
            } else {
                overflow.push(Overflow::Server);
                (OTHER.to_string(), OTHER.to_string())
            };
        let exe = match admit(
            &mut self.exes,
            executable_name(&call.process),
            self.opts.max_executables,
        ) {
            Some(e) => e,
            None => {
                overflow.push(Overflow::Executable);
                OTHER.to_string()
            }
        };
        let mut labels: Labels = vec![
            (
                "http_request_method",
                method_label(ex.method.as_deref()).to_string(),
            ),
            (
                "http_response_status_code",
                ex.status.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("server_address", address.clone()),
            ("server_port", port),
            (
                "network_protocol_version",
                protocol_version(ex.protocol).to_string(),
            ),
            ("error_type", error_type(ex.status, ex.error.as_ref())),
            ("process_executable_name", exe),
        ];
        if self.opts.route_label {
            let route = match &call.route {
                // An overflowed server has no per-host route budget.
                Some(_) if address == OTHER => OTHER.to_string(),
                Some(r) => {
                    let set = self.routes.entry(address).or_default();
                    match admit(set, r.clone(), self.opts.routes_per_host) {
                        Some(r) => r,
                        None => {
                            overflow.push(Overflow::Route);
                            OTHER.to_string()
                        }
                    }
                }
                None => String::new(),
            };
            labels.push(("url_template", route));
        }
        (labels, overflow)
    }
}

/// Calls → `http_client_*` histograms and `qmon_calls_total`,
/// `qmon_parse_errors_total`.
#[derive(Debug)]
pub struct CallMetrics {
    labeler: CallLabeler,
    duration: HistogramFamily,
    req_size: HistogramFamily,
    resp_size: HistogramFamily,
    calls: Counter,
    parse_errors: Family<Vec<(&'static str, &'static str)>, Counter>,
    overflow: Family<Vec<(&'static str, &'static str)>, Counter>,
    parse_error_count: Arc<AtomicU64>,
}

impl CallMetrics {
    /// Registers the call metrics in `registry`.
    pub fn register(registry: &mut Registry, opts: MetricsOptions) -> Self {
        let duration = HistogramFamily::new_with_constructor(duration_histogram as fn() -> _);
        let req_size = HistogramFamily::new_with_constructor(size_histogram as fn() -> _);
        let resp_size = HistogramFamily::new_with_constructor(size_histogram as fn() -> _);
        let calls = Counter::default();
        let parse_errors = Family::default();
        let overflow = Family::default();
        registry.register_with_unit(
            "http_client_request_duration",
            "Duration of HTTP client requests (first request byte to last response byte)",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "http_client_request_body_size",
            "Size of HTTP client request bodies on the wire",
            Unit::Bytes,
            req_size.clone(),
        );
        registry.register_with_unit(
            "http_client_response_body_size",
            "Size of HTTP client response bodies on the wire",
            Unit::Bytes,
            resp_size.clone(),
        );
        registry.register(
            "qmon_calls",
            "Calls recorded (rebuilt request/response exchanges)",
            calls.clone(),
        );
        registry.register(
            "qmon_parse_errors",
            "Calls whose bytes were malformed or degraded, by protocol",
            parse_errors.clone(),
        );
        registry.register(
            "qmon_metrics_label_overflow",
            "Calls whose label value was replaced by _OTHER because a cap was reached",
            overflow.clone(),
        );
        Self {
            labeler: CallLabeler::new(opts),
            duration,
            req_size,
            resp_size,
            calls,
            parse_errors,
            overflow,
            parse_error_count: Arc::default(),
        }
    }

    /// Records one call.
    pub fn observe(&mut self, call: &Call) {
        let ex = &call.exchange;
        let (labels, overflow) = self.labeler.labels(call);
        for o in overflow {
            self.overflow
                .get_or_create(&vec![("label", o.label())])
                .inc();
        }
        let t = ex.timing;
        let end = t.resp_last_ns.or(t.resp_first_ns).unwrap_or(t.req_last_ns);
        let secs = end.saturating_sub(t.req_first_ns) as f64 / 1e9;
        self.duration.get_or_create(&labels).observe(secs);
        self.req_size
            .get_or_create(&labels)
            .observe(ex.req_body.total as f64);
        self.resp_size
            .get_or_create(&labels)
            .observe(ex.resp_body.total as f64);
        self.calls.inc();
        if matches!(
            ex.error,
            Some(CallError::Malformed(_) | CallError::Degraded)
        ) {
            self.parse_errors
                .get_or_create(&vec![("protocol", ex.protocol.as_str())])
                .inc();
            self.parse_error_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls counted as parse errors so far (for `recorder_status`),
    /// readable from another closure or thread.
    pub fn parse_error_count(&self) -> Arc<AtomicU64> {
        self.parse_error_count.clone()
    }
}

/// The whole exporter: call metrics for the pipeline, health state, and
/// the HTTP server (already listening).
#[derive(Debug)]
pub struct Exporter {
    pub calls: CallMetrics,
    pub health: Arc<health::Health>,
    pub server: server::MetricsServer,
}

impl Exporter {
    /// Builds the registry and starts serving on `addr`.
    pub fn start(addr: SocketAddr, opts: MetricsOptions) -> Result<Exporter, server::ServerError> {
        let mut registry = Registry::default();
        let calls = CallMetrics::register(&mut registry, opts);
        // Zero series from the start, so "no parse errors" and "no
        // overflow" read as 0 rather than as no data.
        for p in [Protocol::Http10, Protocol::Http11, Protocol::Http2] {
            calls
                .parse_errors
                .get_or_create(&vec![("protocol", p.as_str())])
                .inc_by(0);
        }
        for o in [Overflow::Server, Overflow::Route, Overflow::Executable] {
            calls
                .overflow
                .get_or_create(&vec![("label", o.label())])
                .inc_by(0);
        }
        let health = health::Health::new();
        registry.register_collector(Box::new(health::HealthCollector(health.clone())));
        let server = server::MetricsServer::start(addr, registry, health.clone())?;
        Ok(Exporter {
            calls,
            health,
            server,
        })
    }
}

/// The exporter as a pipeline sink: every call into the histograms, every
/// tick's counters into the health collector.
pub struct MetricsSink {
    calls: CallMetrics,
    health: Arc<health::Health>,
}

impl MetricsSink {
    pub fn new(exporter: Exporter) -> (Self, server::MetricsServer) {
        (
            Self {
                calls: exporter.calls,
                health: exporter.health,
            },
            exporter.server,
        )
    }
}

impl crate::pipeline::Sink for MetricsSink {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn calls(&mut self, calls: &[Arc<Call>]) {
        for c in calls {
            self.calls.observe(c);
        }
    }

    fn tick(&mut self, status: &crate::pipeline::Status) {
        self.health.beat();
        self.health.set_status(status);
    }

    fn finish(&mut self, status: &crate::pipeline::Status) {
        self.health.set_status(status);
    }
}

#[cfg(test)]
mod tests;
