use prometheus_client::registry::Registry;

use super::health::{Health, HealthCollector};
use super::server::{openmetrics_to_text, render};
use super::*;
use crate::calls::{Body, ConnInfo, Exchange, Timing};

fn call(method: &str, host: &str, route: &str, status: Option<u16>) -> Call {
    let mut ex = Exchange::new(Protocol::Http11);
    ex.method = Some(method.into());
    ex.status = status;
    ex.path = Some(format!("{route}?user=7"));
    let mut b = Body::default();
    b.push(b"hello", 4096);
    ex.resp_body = b;
    ex.timing = Timing {
        req_first_ns: 1_000_000_000,
        req_last_ns: 1_000_000_100,
        resp_first_ns: Some(1_010_000_000),
        resp_last_ns: Some(1_030_000_000),
    };
    Call {
        process: ProcessInfo {
            pid: 4242,
            comm: "curl".into(),
            exe: Some("/usr/bin/curl".into()),
            args: Vec::new(),
            container_id: None,
        }
        .into(),
        conn: ConnInfo {
            conn_id: 1,
            remote: None,
            tls: true,
            tls_lib: None,
        },
        exchange: ex,
        host: host.into(),
        port: Some(443),
        route: Some(route.into()),
    }
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no label {name} in {labels:?}"))
}

#[test]
fn labels_follow_otel_names_and_never_carry_pid_or_path() {
    let mut l = CallLabeler::new(MetricsOptions::default());
    let (labels, overflow) = l.labels(&call("GET", "api.example.com", "/v1/items/{id}", Some(200)));
    assert!(overflow.is_empty());
    assert_eq!(get(&labels, "http_request_method"), "GET");
    assert_eq!(get(&labels, "http_response_status_code"), "200");
    assert_eq!(get(&labels, "server_address"), "api.example.com");
    assert_eq!(get(&labels, "server_port"), "443");
    assert_eq!(get(&labels, "network_protocol_version"), "1.1");
    assert_eq!(get(&labels, "error_type"), "");
    assert_eq!(get(&labels, "process_executable_name"), "curl");
    let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
    assert!(!names.contains(&"url_template"), "route label is opt-in");
    for (_, v) in &labels {
        assert!(!v.contains("4242") && !v.contains('?'), "{labels:?}");
    }
}

#[test]
fn unknown_methods_are_other() {
    assert_eq!(method_label(Some("GET")), "GET");
    assert_eq!(method_label(Some("PATCH")), "PATCH");
    assert_eq!(method_label(Some("get")), OTHER);
    assert_eq!(method_label(Some("PROPFIND")), OTHER);
    assert_eq!(method_label(Some("X\u{0}")), OTHER);
    assert_eq!(method_label(None), OTHER);
}

#[test]
fn protocol_versions() {
    assert_eq!(protocol_version(Protocol::Http10), "1.0");
    assert_eq!(protocol_version(Protocol::Http11), "1.1");
    assert_eq!(protocol_version(Protocol::Http2), "2");
}

#[test]
fn error_type_is_status_then_error_kind_then_empty() {
    assert_eq!(error_type(Some(500), None), "500");
    assert_eq!(error_type(Some(404), Some(&CallError::Incomplete)), "404");
    assert_eq!(error_type(Some(399), None), "");
    assert_eq!(
        error_type(Some(200), Some(&CallError::DataLost)),
        "data_lost"
    );
    assert_eq!(error_type(None, Some(&CallError::Incomplete)), "incomplete");
    assert_eq!(error_type(None, Some(&CallError::Reset(8))), "reset");
    assert_eq!(error_type(None, Some(&CallError::GoAway(0))), "goaway");
    assert_eq!(
        error_type(None, Some(&CallError::Malformed("x"))),
        "malformed"
    );
    assert_eq!(error_type(None, Some(&CallError::Degraded)), "degraded");
    assert_eq!(error_type(None, None), "");
}

#[test]
fn executable_name_is_basename_else_comm() {
    let mut p = ProcessInfo {
        comm: "python3".into(),
        exe: Some("/usr/bin/python3.11".into()),
        ..ProcessInfo::default()
    };
    assert_eq!(executable_name(&p), "python3.11");
    p.exe = None;
    assert_eq!(executable_name(&p), "python3");
}

#[test]
fn routes_are_capped_per_host() {
    let mut l = CallLabeler::new(MetricsOptions {
        route_label: true,
        routes_per_host: 2,
        ..MetricsOptions::default()
    });
    let route = |l: &mut CallLabeler, host: &str, r: &str| {
        let (labels, o) = l.labels(&call("GET", host, r, Some(200)));
        (get(&labels, "url_template").to_string(), o)
    };
    assert_eq!(route(&mut l, "a", "/x").0, "/x");
    assert_eq!(route(&mut l, "a", "/y").0, "/y");
    assert_eq!(
        route(&mut l, "a", "/z"),
        (OTHER.into(), vec![Overflow::Route])
    );
    // Already admitted values keep their label; other hosts have their own budget.
    assert_eq!(route(&mut l, "a", "/x").0, "/x");
    assert_eq!(route(&mut l, "b", "/z").0, "/z");
}

#[test]
fn servers_and_executables_are_capped_with_overflow() {
    let mut l = CallLabeler::new(MetricsOptions {
        max_servers: 3,
        max_executables: 1,
        route_label: true,
        ..MetricsOptions::default()
    });
    for i in 0..3 {
        let (labels, o) = l.labels(&call("GET", &format!("h{i}"), "/", Some(200)));
        assert_eq!(get(&labels, "server_address"), format!("h{i}"));
        assert!(o.is_empty());
    }
    let (labels, o) = l.labels(&call("GET", "random-scan-host", "/", Some(200)));
    assert_eq!(get(&labels, "server_address"), OTHER);
    assert_eq!(get(&labels, "server_port"), OTHER);
    assert_eq!(get(&labels, "url_template"), OTHER);
    assert_eq!(o, vec![Overflow::Server]);
    // A second executable overflows too.
    let mut c = call("GET", "h0", "/", Some(200));
    std::sync::Arc::make_mut(&mut c.process).exe = Some("/usr/bin/wget".into());
    let (labels, o) = l.labels(&c);
    assert_eq!(get(&labels, "process_executable_name"), OTHER);
    assert_eq!(o, vec![Overflow::Executable]);
    // A scan of many hosts keeps memory bounded.
    for i in 0..10_000 {
        l.labels(&call("GET", &format!("scan{i}"), "/", None));
    }
    assert_eq!(l.servers.len(), 3);
    assert!(l.routes.len() <= 3);
}

#[test]
fn observe_and_render_both_formats() {
    let mut reg = Registry::default();
    let mut m = CallMetrics::register(
        &mut reg,
        MetricsOptions {
            route_label: true,
            ..MetricsOptions::default()
        },
    );
    let health = Health::new();
    health.set_status(&crate::pipeline::Status::default());
    reg.register_collector(Box::new(HealthCollector(health.clone())));
    m.observe(&call("GET", "api.example.com", "/v1/{id}", Some(200)));
    m.observe(&call("BREW", "api.example.com", "/v1/{id}", Some(500)));
    let mut bad = call("GET", "api.example.com", "/v1/{id}", None);
    bad.exchange.error = Some(CallError::Malformed("header"));
    m.observe(&bad);
    assert_eq!(
        m.parse_error_count()
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let om = render(&reg, true).expect("render");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE qmon_calls counter"), "{om}");
    let text = render(&reg, false).expect("render");
    for want in [
        "# TYPE http_client_request_duration_seconds histogram",
        "# TYPE http_client_request_body_size_bytes histogram",
        "# TYPE http_client_response_body_size_bytes histogram",
        "# TYPE qmon_calls_total counter",
        "qmon_calls_total 3",
        "qmon_parse_errors_total{protocol=\"HTTP/1.1\"} 1",
        "http_request_method=\"_OTHER\"",
        "error_type=\"500\"",
        "error_type=\"malformed\"",
        "url_template=\"/v1/{id}\"",
        "le=\"0.025\"",
        "le=\"7.5\"",
        "# TYPE qmon_lost_events_total counter",
        "qmon_ready 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    // The 30 ms call lands in the 0.05 bucket, not the 0.025 one.
    assert!(text.contains("le=\"0.025\"} 0") || !text.contains("le=\"0.025\"} 1"));
}

#[test]
fn openmetrics_counter_names_get_total() {
    let om = "# HELP a Things.\n# TYPE a counter\na_total 1\n# HELP g G.\n# TYPE g gauge\ng 2\n# UNIT x seconds\n# EOF\n";
    assert_eq!(
        openmetrics_to_text(om),
        "# HELP a_total Things.\n# TYPE a_total counter\na_total 1\n# HELP g G.\n# TYPE g gauge\ng 2\n"
    );
}

#[test]
fn health_heartbeat_and_readiness() {
    let h = Health::new();
    assert!(h.is_alive(), "alive right after start");
    assert!(!h.is_ready());
    h.set_ready(true);
    h.beat();
    assert!(h.is_ready() && h.is_alive());
}
