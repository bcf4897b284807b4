//! `/metrics`, `/healthz`, `/readyz` over HTTP/1.1 (hyper), served from a
//! current-thread tokio runtime on its own thread so the capture pipeline
//! never waits for a scrape.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

use super::health::Health;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROM_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The io error is in the message, not the chain: one clear line.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("cannot start the metrics server: {0}")]
    Start(std::io::Error),
}

/// A running metrics server. The thread lives until the process exits.
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
}

struct State {
    registry: Registry,
    health: Arc<Health>,
}

impl MetricsServer {
    /// Binds `addr` (errors surface here, before capture starts) and serves.
    pub fn start(
        addr: SocketAddr,
        registry: Registry,
        health: Arc<Health>,
    ) -> Result<MetricsServer, ServerError> {
        let listener = TcpListener::bind(addr).map_err(|err| ServerError::Bind { addr, err })?;
        listener.set_nonblocking(true).map_err(ServerError::Start)?;
        let bound = listener.local_addr().map_err(ServerError::Start)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ServerError::Start)?;
        let state = Arc::new(State { registry, health });
        std::thread::Builder::new()
            .name("qmon-metrics".into())
            .spawn(move || rt.block_on(serve(listener, state)))
            .map_err(ServerError::Start)?;
        tracing::debug!(addr = %bound, "metrics: listening");
        Ok(MetricsServer { addr: bound })
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics server stopped: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics: accept failed: {e}");
                continue;
            }
        };
        let state = state.clone();
        tokio::task::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&req, &state)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("metrics: connection error: {e}");
            }
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn handle(req: &Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/openmetrics-text"));
            match render(&state.registry, openmetrics) {
                Ok(body) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(if openmetrics { OPENMETRICS } else { PROM_TEXT }),
                    );
                    r
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        "/healthz" if state.health.is_alive() => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(StatusCode::SERVICE_UNAVAILABLE, "pipeline stalled\n"),
        "/readyz" if state.health.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found; try /metrics\n"),
    }
}

/// The registry as OpenMetrics, or as Prometheus text 0.0.4 for clients
/// that did not ask for OpenMetrics (curl, `promtool check metrics`).
pub fn render(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(if openmetrics {
        out
    } else {
        openmetrics_to_text(&out)
    })
}

/// OpenMetrics → Prometheus text 0.0.4: counter families are named with
/// their `_total` sample name, `# UNIT` and `# EOF` are dropped.
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        if let Some((prefix, rest)) = meta {
            let name = rest.split(' ').next().unwrap_or("");
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
