use super::*;

pub(crate) const SEC: u64 = 1_000_000_000;
/// A fixed "now": 2024-01-01 12:00:00 UTC.
pub(crate) const NOW: u64 = 1_704_110_400 * SEC;

/// A call `ago_s` seconds before [`NOW`].
pub(crate) fn sample(
    pid: u32,
    comm: &str,
    host: &str,
    route: &str,
    status: u16,
    dur_ms: u64,
    ago_s: u64,
) -> CallSample {
    CallSample {
        started_ns: NOW - ago_s * SEC,
        pid,
        comm: comm.into(),
        exe: Some(format!("/usr/bin/{comm}")),
        host: host.into(),
        port: Some(443),
        http2: false,
        tls: true,
        method: Some("GET".into()),
        path: Some(route.replace("{id}", "7")),
        route: Some(route.into()),
        status: Some(status),
        error: None,
        duration_ns: Some(dur_ms * 1_000_000),
        bytes_out: 10,
        bytes_in: 100,
    }
}

fn model_with(calls: impl IntoIterator<Item = CallSample>) -> Model {
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    for c in calls {
        m.push(c);
    }
    m
}

fn spec(grouping: Grouping, window: Window) -> ViewSpec {
    ViewSpec {
        grouping,
        window,
        sort: Column::Requests,
        desc: true,
        ..ViewSpec::default()
    }
}

#[test]
fn window_excludes_older_calls_and_all_keeps_everything() {
    let m = model_with([
        sample(1, "curl", "a.example", "/x", 200, 5, 5),
        sample(1, "curl", "a.example", "/x", 200, 5, 30),
        sample(1, "curl", "a.example", "/x", 200, 5, 200),
        sample(1, "curl", "a.example", "/x", 200, 5, 2000),
    ]);
    let count = |w| m.view(&spec(Grouping::Host, w), NOW, None).totals.requests;
    assert_eq!(count(Window::S10), 1);
    assert_eq!(count(Window::M1), 2);
    assert_eq!(count(Window::M5), 3);
    assert_eq!(count(Window::M15), 3);
    assert_eq!(count(Window::All), 4);
    // Calls "from the future" (clock skew) are not counted either.
    let v = m.view(&spec(Grouping::Host, Window::All), NOW - 100 * SEC, None);
    assert_eq!(v.totals.requests, 2);
}

#[test]
fn rps_is_over_the_window_or_the_observed_part_of_it() {
    let calls: Vec<_> = (0..30)
        .map(|i| sample(1, "curl", "a", "/", 200, 1, i % 10))
        .collect();
    let m = model_with(calls.clone());
    let v = m.view(&spec(Grouping::Host, Window::S10), NOW, None);
    assert_eq!(v.rows[0].requests, 30);
    assert!((v.rows[0].rps - 3.0).abs() < 1e-9, "{}", v.rows[0].rps);
    let v = m.view(&spec(Grouping::Host, Window::M1), NOW, None);
    assert!((v.rows[0].rps - 0.5).abs() < 1e-9);
    assert!((v.totals.rps - 0.5).abs() < 1e-9);

    // Observed for 20 s only: a 1 m window divides by 20.
    let mut m = Model::new(Limits::default(), NOW - 20 * SEC);
    for c in calls {
        m.push(c);
    }
    let v = m.view(&spec(Grouping::Host, Window::M1), NOW, None);
    assert!((v.rows[0].rps - 1.5).abs() < 1e-9, "{}", v.rows[0].rps);
}

#[test]
fn percentiles_are_nearest_rank() {
    let sorted: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&sorted, 50.0), Some(50));
    assert_eq!(percentile(&sorted, 95.0), Some(95));
    assert_eq!(percentile(&sorted, 99.0), Some(99));
    assert_eq!(percentile(&[7], 99.0), Some(7));
    assert_eq!(percentile(&[], 50.0), None);

    let m = model_with((1..=100).map(|ms| sample(1, "curl", "a", "/", 200, ms, 1)));
    let r = &m.view(&spec(Grouping::Host, Window::M1), NOW, None).rows[0];
    assert_eq!(r.p50_ns, Some(50_000_000));
    assert_eq!(r.p95_ns, Some(95_000_000));
    assert_eq!(r.p99_ns, Some(99_000_000));
}

#[test]
fn percentiles_use_a_bounded_sample_of_the_latest_calls() {
    let limits = Limits {
        latency_sample: 10,
        ..Limits::default()
    };
    let mut m = Model::new(limits, NOW - 3600 * SEC);
    // 90 slow old calls, then 10 fast recent ones: only the 10 are sampled.
    for _ in 0..90 {
        m.push(sample(1, "curl", "a", "/", 200, 1000, 20));
    }
    for _ in 0..10 {
        m.push(sample(1, "curl", "a", "/", 200, 2, 1));
    }
    let r = &m.view(&spec(Grouping::Host, Window::M1), NOW, None).rows[0];
    assert_eq!(r.requests, 100, "counts stay exact");
    assert_eq!(r.p99_ns, Some(2_000_000));
}

#[test]
fn calls_without_a_finished_response_have_no_latency() {
    let mut c = sample(1, "curl", "a", "/", 200, 1, 1);
    c.duration_ns = None;
    c.status = None;
    c.error = Some("incomplete".into());
    let m = model_with([c]);
    let r = &m.view(&spec(Grouping::Host, Window::M1), NOW, None).rows[0];
    assert_eq!(r.p50_ns, None);
    assert_eq!(r.errors, 1);
}

#[test]
fn error_pct_counts_4xx_5xx_and_transport_errors() {
    let mut reset = sample(1, "curl", "a", "/", 200, 1, 1);
    reset.error = Some("reset:8".into());
    let m = model_with([
        sample(1, "curl", "a", "/", 200, 1, 1),
        sample(1, "curl", "a", "/", 302, 1, 1),
        sample(1, "curl", "a", "/", 404, 1, 1),
        sample(1, "curl", "a", "/", 503, 1, 1),
        reset,
    ]);
    let r = &m.view(&spec(Grouping::Host, Window::M1), NOW, None).rows[0];
    assert_eq!(r.errors, 3);
    assert!((r.error_pct - 60.0).abs() < 1e-9);
}

fn fixture() -> Vec<CallSample> {
    vec![
        sample(10, "curl", "api.example", "/users/{id}", 200, 10, 1),
        sample(10, "curl", "api.example", "/users/{id}", 200, 20, 2),
        sample(10, "curl", "api.example", "/health", 200, 1, 3),
        sample(20, "python3", "api.example", "/users/{id}", 500, 30, 4),
        sample(20, "python3", "db.example", "/q", 200, 40, 5),
    ]
}

#[test]
fn grouping_builds_one_row_per_key() {
    let m = model_with(fixture());
    let rows = |g| m.view(&spec(g, Window::M1), NOW, None).rows;

    // A process row is a program: its name, and how many pids.
    let r = rows(Grouping::Process);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].process.as_str(), r[0].requests), ("curl", 3));
    assert_eq!(r[0].pids, 1);
    assert_eq!(r[0].host, "api.example:443");
    assert_eq!((r[1].process.as_str(), r[1].requests), ("python3", 2));
    assert_eq!(r[1].host, "2 hosts");
    assert!(r[0].route.is_none());

    let r = rows(Grouping::Host);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].host.as_str(), r[0].requests), ("api.example:443", 4));
    assert_eq!(r[0].process, "curl, python3");
    assert_eq!(r[0].proto, "h1s");

    let r = rows(Grouping::HostRoute);
    let got: Vec<_> = r
        .iter()
        .map(|r| (r.host.as_str(), r.route.as_deref().unwrap(), r.requests))
        .collect();
    assert_eq!(
        got,
        [
            ("api.example:443", "/users/{id}", 3),
            ("api.example:443", "/health", 1),
            ("db.example:443", "/q", 1),
        ]
    );

    let r = rows(Grouping::ProcessHostRoute);
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].process, "curl");
    assert_eq!(r[0].route.as_deref(), Some("/users/{id}"));
    assert_eq!(r[0].requests, 2);
    // The key knows which calls belong to the row.
    assert!(r[0].recent.iter().all(|c| r[0].key.matches(c)));
    assert_eq!(r[0].recent.len(), 2);
    assert!(
        r[0].recent[0].started_ns > r[0].recent[1].started_ns,
        "latest first"
    );
}

#[test]
fn sorting_by_each_column_and_inverted() {
    let m = model_with(fixture());
    let mut s = spec(Grouping::HostRoute, Window::M1);
    let order = |s: &ViewSpec| -> Vec<String> {
        m.view(s, NOW, None)
            .rows
            .iter()
            .map(|r| r.route.clone().unwrap())
            .collect()
    };
    assert_eq!(order(&s), ["/users/{id}", "/health", "/q"]);
    s.desc = false;
    assert_eq!(order(&s), ["/health", "/q", "/users/{id}"]);
    s.sort = Column::P50;
    s.desc = true;
    assert_eq!(order(&s), ["/q", "/users/{id}", "/health"]);
    s.sort = Column::ErrorPct;
    assert_eq!(order(&s)[0], "/users/{id}");
    s.sort = Column::Host;
    s.desc = Column::Host.default_desc();
    assert_eq!(order(&s).last().unwrap(), "/q");
    s.sort = Column::BytesIn;
    s.desc = true;
    assert_eq!(order(&s)[0], "/users/{id}");
    for c in Column::ALL {
        s.sort = c;
        assert_eq!(order(&s).len(), 3, "{c:?}");
    }
}

#[test]
fn filter_matches_process_host_or_route_case_insensitively() {
    let m = model_with(fixture());
    let mut s = spec(Grouping::HostRoute, Window::M1);
    let n = |s: &ViewSpec| m.view(s, NOW, None).totals.requests;
    s.filter = "PYTHON".into();
    assert_eq!(n(&s), 2);
    s.filter = "db.ex".into();
    assert_eq!(n(&s), 1);
    s.filter = "health".into();
    assert_eq!(n(&s), 1);
    s.filter = ":443".into();
    assert_eq!(n(&s), 5);
    s.filter = "nothing".into();
    assert!(m.view(&s, NOW, None).rows.is_empty());
    s.filter.clear();
    s.pid = Some(20);
    assert_eq!(n(&s), 2);
}

#[test]
fn a_paused_view_ignores_calls_added_after_the_pause() {
    let mut m = model_with(fixture());
    let seen = m.seen;
    m.push(sample(10, "curl", "new.example", "/", 200, 1, 0));
    let s = spec(Grouping::Host, Window::M1);
    assert_eq!(m.view(&s, NOW, Some(seen)).totals.requests, 5);
    assert_eq!(m.view(&s, NOW, None).totals.requests, 6);
}

#[test]
fn memory_stays_bounded_under_a_flood_of_distinct_hosts() {
    let limits = Limits {
        max_calls: 1000,
        recent_per_group: 5,
        latency_sample: 5,
        ..Limits::default()
    };
    let mut m = Model::new(limits, NOW - 60 * SEC);
    for i in 0..100_000u64 {
        let mut c = sample(1, "flood", &format!("h{i}.example"), "/", 200, 1, 0);
        c.started_ns = NOW - 50 * SEC + i * 100_000;
        m.push(c);
    }
    assert_eq!(m.len(), 1000);
    assert_eq!(m.seen, 100_000);
    assert_eq!(m.evicted, 99_000);
    let v = m.view(&spec(Grouping::Host, Window::M1), NOW, None);
    assert_eq!(v.rows.len(), 1000);
    assert!(v.truncated, "the window lost calls to the bound");
    // One host, many calls: the per-row lists are bounded too.
    let mut m = Model::new(limits, NOW - 60 * SEC);
    for _ in 0..10_000 {
        m.push(sample(1, "flood", "one.example", "/", 200, 1, 0));
    }
    let v = m.view(&spec(Grouping::Host, Window::M1), NOW, None);
    assert_eq!(v.rows[0].requests, 1000);
    assert_eq!(v.rows[0].recent.len(), 5);
    assert!(!v.truncated || m.evicted > 0);
}

#[test]
fn formatting() {
    assert_eq!(fmt_latency(None), "-");
    assert_eq!(fmt_latency(Some(850_000)), "850µs");
    assert_eq!(fmt_latency(Some(12_345_678)), "12.3ms");
    assert_eq!(fmt_latency(Some(1_240_000_000)), "1.24s");
    assert_eq!(fmt_bytes(512), "512B");
    assert_eq!(fmt_bytes(1536), "1.5K");
    assert_eq!(fmt_bytes(12 * 1024 * 1024), "12M");
    assert_eq!(fmt_rate(0.5), "0.50");
    assert_eq!(Column::parse("requests"), Some(Column::Requests));
    assert_eq!(Column::parse("P95"), Some(Column::P95));
    assert_eq!(Column::nth(1), Some(Column::Process));
    assert_eq!(Column::nth(9), Some(Column::P99));
    assert_eq!(Column::nth(0), None);
    assert_eq!(Window::parse("15m"), Some(Window::M15));
}

/// Grouped by host, the process column used to say "8 procs" for 20
/// processes (the label list was capped at 8 and the cap shown as the
/// total), and hid the name when all shared one.
#[test]
fn process_column_names_every_process_truthfully() {
    let label = |procs: &[(&str, u32)]| {
        let mut m: HashMap<String, HashSet<u32>> = HashMap::new();
        for (name, pid) in procs {
            m.entry(name.to_string()).or_default().insert(*pid);
        }
        process_label(&m)
    };
    let curls: Vec<(&str, u32)> = (1..=20).map(|p| ("curl", p)).collect();
    assert_eq!(label(&curls), "curl \u{d7}20");
    assert_eq!(label(&[("curl", 7)]), "curl[7]");
    assert_eq!(label(&[("curl", 7), ("curl", 7)]), "curl[7]");
    let mut mixed = curls.clone();
    mixed.extend([("python3", 100), ("wget", 101), ("git", 102), ("apt", 103)]);
    assert_eq!(label(&mixed), "curl \u{d7}20, apt +3");
    assert_eq!(label(&[("python3", 1), ("curl", 2)]), "curl, python3");

    // Through the model: 20 short-lived curls and a python3 on one host.
    let mut calls: Vec<CallSample> = (1..=20)
        .map(|pid| sample(pid, "curl", "api.example", "/a", 200, 1, 1))
        .collect();
    calls.push(sample(500, "python3", "api.example", "/a", 200, 1, 1));
    let m = model_with(calls);
    let rows = m.view(&spec(Grouping::Host, Window::M1), NOW, None).rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].process, "curl \u{d7}20, python3");
}

#[test]
fn windows_read_any_spelling_of_their_time() {
    for (s, w) in [
        ("10s", Window::S10),
        ("1m", Window::M1),
        ("1M", Window::M1),
        ("60s", Window::M1),
        ("1 min", Window::M1),
        ("300s", Window::M5),
        ("15 minutes", Window::M15),
        ("all", Window::All),
        ("ALL", Window::All),
    ] {
        assert_eq!(Window::parse(s), Some(w), "{s:?}");
    }
    for s in ["", "2m", "1h", "0s", "forever"] {
        assert_eq!(Window::parse(s), None, "{s:?}");
    }
    for w in [
        Window::S10,
        Window::M1,
        Window::M5,
        Window::M15,
        Window::All,
    ] {
        assert_eq!(Window::parse(w.label()), Some(w));
    }
}

/// 20 short-lived curls and one long-lived python3, all calling one API.
pub(crate) fn programs() -> Vec<CallSample> {
    let mut calls: Vec<CallSample> = (1..=20)
        .map(|i| {
            sample(
                1000 + i,
                "curl",
                "api.example",
                "/v1/items",
                200,
                10 + i as u64,
                1 + i as u64 % 30,
            )
        })
        .collect();
    for i in 0..10 {
        let status = if i == 3 { 503 } else { 200 };
        calls.push(sample(
            77,
            "python3",
            "api.example",
            "/v1/items",
            status,
            30,
            1 + i * 3,
        ));
    }
    calls
}

#[test]
fn a_process_row_is_a_program_with_a_pid_count() {
    let m = model_with(programs());
    let mut s = spec(Grouping::Process, Window::M1);
    let v = m.view(&s, NOW, None);
    let got: Vec<(&str, u64, u64)> = v
        .rows
        .iter()
        .map(|r| (r.process.as_str(), r.pids, r.requests))
        .collect();
    assert_eq!(got, [("curl", 20, 20), ("python3", 1, 10)]);
    // The drill-down's pids: every curl, busiest first, then by pid.
    let curl = &v.rows[0];
    assert_eq!(curl.pid_list.len(), 20);
    assert_eq!(curl.pid_list[0].pid, 1001);
    assert!(curl
        .pid_list
        .iter()
        .all(|p| p.requests == 1 && p.comm == "curl"));
    let py = &v.rows[1];
    assert_eq!(py.pid_list[0].requests, 10);
    assert_eq!(py.pid_list[0].errors, 1);
    assert_eq!(py.pid_list[0].last_ns, NOW - SEC);

    // By pid: one row per process.
    s.by_pid = true;
    let v = m.view(&s, NOW, None);
    assert_eq!(v.rows.len(), 21);
    assert_eq!(v.rows[0].process, "python3[77]");
    assert!(v.rows.iter().all(|r| r.pids == 1));
    assert!(v.rows[1..].iter().all(|r| r.process.starts_with("curl[10")));
    assert_eq!(s.group_label(), "pid");
    // --pid still filters, in either mode.
    s.pid = Some(1005);
    assert_eq!(m.view(&s, NOW, None).totals.requests, 1);
    s.by_pid = false;
    let v = m.view(&s, NOW, None);
    assert_eq!((v.rows.len(), v.rows[0].pids), (1, 1));
    // Pids are also counted when grouping by host or by program and route.
    s.pid = None;
    s.grouping = Grouping::ProcessHostRoute;
    let v = m.view(&s, NOW, None);
    assert_eq!(v.rows.len(), 2);
    assert_eq!(v.rows[0].pids, 20);
    s.grouping = Grouping::Host;
    assert_eq!(m.view(&s, NOW, None).rows[0].pids, 21);
}

#[test]
fn executables_sharing_a_name_get_a_row_each_by_path() {
    let mut a = sample(1, "python3", "api.example", "/", 200, 1, 1);
    a.exe = Some("/usr/bin/python3.11".into());
    let mut b = sample(2, "python3", "api.example", "/", 200, 1, 1);
    b.exe = Some("/opt/venv-with-a-rather-long-name/bin/python3.12".into());
    let mut c = b.clone();
    c.pid = 3;
    // Unknown executable (the process was gone): stays under the name.
    let mut d = sample(4, "python3", "api.example", "/", 200, 1, 1);
    d.exe = None;
    let curl = sample(5, "curl", "api.example", "/", 200, 1, 1);
    let m = model_with([a, b, c, d, curl]);
    let s = spec(Grouping::Process, Window::M1);
    let v = m.view(&s, NOW, None);
    let mut got: Vec<(String, u64)> = v.rows.iter().map(|r| (r.process.clone(), r.pids)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/usr/bin/python3.11".to_string(), 1),
            ("curl".to_string(), 1),
            ("python3".to_string(), 1),
            ("…-with-a-rather-long-name/bin/python3.12".to_string(), 2),
        ]
    );
    assert_eq!(crate::table::width(&got[3].0), PROCESS_LABEL_MAX);
    assert_eq!(v.collide, HashSet::from(["python3".to_string()]));
    // Filtering on the path finds them.
    let mut s = s;
    s.filter = "venv".into();
    assert_eq!(m.view(&s, NOW, None).totals.requests, 2);
    // With only one executable left in the view, the name is the row.
    s.filter = "python3.11".into();
    let v = m.view(&s, NOW, None);
    assert_eq!(v.rows[0].process, "python3");
}

/// The bound: a million calls, spread over four hours, with ever
/// new hosts and pids (a new series every 7th call) beside 40 busy ones,
/// leave the time buckets within their stated memory. Fed to the buckets
/// directly, as [`Model::push`] feeds them, reusing one call's buffers so
/// that the million calls take seconds in a debug build.
#[test]
fn time_buckets_stay_within_their_memory_bound_under_a_million_calls() {
    use std::fmt::Write;
    let limits = Limits::default();
    let mut t = Trends::new(limits.trend_series);
    let mut c = sample(0, "client", "", "/r/{id}", 200, 1, 0);
    let (mut peak_series, mut peak_bytes) = (0, 0);
    for i in 0..1_000_000u64 {
        c.host.clear();
        if i % 7 == 0 {
            c.pid = 10_000 + i as u32;
            let _ = write!(c.host, "h{i}.example");
        } else {
            c.pid = (i % 40) as u32;
            let _ = write!(c.host, "busy{}.example", i % 40);
        }
        // 250 calls a second for 4 hours: every bucket of every tier fills.
        c.started_ns = NOW - 4 * 3600 * SEC + i * 14_400 * SEC / 1_000_000;
        c.status = Some(if i % 50 == 0 { 500 } else { 200 });
        c.duration_ns = Some(1_000 + (i % 5000) * 1_000_000);
        t.add(&c, NOW);
        if i % 10_000 == 0 {
            peak_series = peak_series.max(t.len());
            peak_bytes = peak_bytes.max(t.heap_bytes());
        }
    }
    peak_series = peak_series.max(t.len());
    peak_bytes = peak_bytes.max(t.heap_bytes());
    assert!(peak_series <= limits.trend_series, "{peak_series} series");
    // Names here are ≤ 64 bytes a series (by capacity).
    let bound = Trends::bound_bytes(limits.trend_series, 64);
    assert!(
        peak_bytes <= bound,
        "time buckets took {peak_bytes} bytes, bound {bound}"
    );
    // The busy series hold their full three tiers: the bound is reached,
    // not just respected.
    assert!(peak_bytes > 40 * super::super::trends::SERIES_BUCKETS * 272);
    // The stated bound: 256 series × 192 buckets × 272 B ≈ 12.75 MiB, and
    // a few hundred KiB for the table and the names.
    assert_eq!(std::mem::size_of::<super::super::trends::Slot>(), 272);
    assert!(bound < 14 << 20, "{bound}");
    // Series were dropped, and counted; the busy ones survived.
    assert!(t.dropped > 100_000, "{}", t.dropped);
    assert!(t
        .series()
        .any(|(k, _)| k.host == "busy1.example" && k.pid == 1));
}

/// The model feeds every call to its time buckets, and bounds them.
#[test]
fn the_model_keeps_calls_and_buckets_bounded() {
    let limits = Limits {
        max_calls: 100,
        trend_series: 8,
        ..Limits::default()
    };
    let mut m = Model::new(limits, NOW - 3600 * SEC);
    for i in 0..5_000u64 {
        let mut c = sample(
            i as u32 % 20,
            "curl",
            &format!("h{}", i % 20),
            "/",
            200,
            1,
            0,
        );
        c.started_ns = NOW - 3000 * SEC + i * 600_000_000;
        m.push(c);
    }
    assert_eq!(m.len(), 100);
    assert!(m.trends().len() <= 8);
    assert!(m.trends().heap_bytes() <= Trends::bound_bytes(8, 64));
    assert!(m.trends().dropped > 0);
    // Dropping series with recent data marks charts as partial.
    let s = spec(Grouping::Process, Window::M1);
    let v = m.view(&s, NOW, None);
    assert!(m.chart(&s, &v, &v.rows[0].key, NOW).partial);
}

#[test]
fn a_chart_sums_its_rows_series_per_time_bucket() {
    let mut calls = programs();
    // Older than the 1 m window, but within 5 m.
    calls.push(sample(
        1001,
        "curl",
        "api.example",
        "/v1/items",
        500,
        100,
        200,
    ));
    let m = model_with(calls);
    let mut s = spec(Grouping::Process, Window::M1);
    let v = m.view(&s, NOW, None);
    let key = v.rows[0].key.clone();
    let c = m.chart(&s, &v, &key, NOW);
    assert_eq!(c.width_ns, SEC);
    assert_eq!((c.from_ns, c.to_ns), (NOW - 60 * SEC, NOW));
    assert_eq!(c.buckets.len(), 60);
    assert!(!c.partial);
    let reqs: u32 = c.buckets.iter().map(|(_, b)| b.reqs).sum();
    assert_eq!(reqs, 20, "the curl row's 20 calls, none of python3's");
    // curl pid 1000+i started 1 + i % 30 seconds ago.
    let at = |ago: u64| {
        c.buckets
            .iter()
            .find(|(t, _)| *t == NOW - ago * SEC)
            .unwrap()
            .1
            .reqs
    };
    assert_eq!(at(2), 1);
    assert_eq!(at(11), 1, "pid 1010");
    assert_eq!(at(21), 1, "pid 1020 started 1 + 20 s ago");
    assert_eq!(at(1), 0, "no curl started 1 s ago");

    // 5 m window: 5 s buckets, and the old 500 shows.
    s.window = Window::M5;
    let v = m.view(&s, NOW, None);
    let c = m.chart(&s, &v, &key, NOW);
    assert_eq!((c.width_ns, c.buckets.len()), (5 * SEC, 60));
    let total = c.buckets.iter().fold(Bucket::default(), |mut a, (_, b)| {
        a.merge(b);
        a
    });
    assert_eq!((total.reqs, total.errors), (21, 1));

    // The filter applies to charts as to rows.
    s.window = Window::M1;
    s.filter = "python".into();
    let v = m.view(&s, NOW, None);
    let py = v.rows[0].key.clone();
    let c = m.chart(&s, &v, &py, NOW);
    let reqs: u32 = c.buckets.iter().map(|(_, b)| b.reqs).sum();
    assert_eq!(reqs, 10);
    s.filter = "nothing".into();
    assert!(m
        .chart(&s, &v, &py, NOW)
        .buckets
        .iter()
        .all(|(_, b)| b.reqs == 0));

    // Nothing before observation started: no buckets, not empty ones.
    let mut m2 = Model::new(Limits::default(), NOW - 20 * SEC);
    for c in programs() {
        m2.push(c);
    }
    let s = spec(Grouping::Process, Window::M1);
    let v = m2.view(&s, NOW, None);
    let c = m2.chart(&s, &v, &v.rows[0].key, NOW);
    assert_eq!(c.buckets.len(), 20);
}

#[test]
fn each_row_knows_its_recent_p95() {
    let mut calls = Vec::new();
    // 100 calls of 1..100 ms over the last 10 minutes, then one slow one.
    for ms in 1..=100u64 {
        calls.push(sample(1, "curl", "a.example", "/", 200, ms, 6 * ms));
    }
    let m = model_with(calls);
    let r = &m
        .view(&spec(Grouping::Process, Window::All), NOW, None)
        .rows[0];
    let p95 = r.recent_p95_ns.unwrap();
    // The top of the bin holding the 95th: ≥ 95 ms, within a bin.
    assert!(
        (95_000_000..=95_000_000 * 142 / 100).contains(&p95),
        "{p95}"
    );
    // The 1 m window holds only fast calls (ms ≤ 10); the baseline is the
    // same 16 minutes.
    let r = &m.view(&spec(Grouping::Process, Window::M1), NOW, None).rows[0];
    assert_eq!(r.recent_p95_ns, Some(p95));
    assert!(r.p95_ns.unwrap() < p95);
}
