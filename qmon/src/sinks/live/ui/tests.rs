//! Snapshot tests of every screen, drawn on ratatui's `TestBackend`.

use super::*;
use crate::sinks::live::model::tests::{sample, NOW, SEC};
use crate::sinks::live::model::{Grouping, Limits, Model, ViewSpec, Window};
use crate::sinks::live::source::{Feed, SourceStatus};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const W: u16 = 120;
const H: u16 = 12;

fn app(grouping: Grouping) -> App {
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    let mut err = sample(20, "python3", "api.example", "/users/{id}", 200, 30, 4);
    err.status = None;
    err.error = Some("reset:8".into());
    err.duration_ns = None;
    for c in [
        sample(10, "curl", "api.example", "/users/{id}", 200, 10, 1),
        sample(10, "curl", "api.example", "/users/{id}", 200, 20, 2),
        sample(10, "curl", "api.example", "/health", 200, 1, 3),
        err,
        sample(20, "python3", "db.example", "/q", 404, 40, 5),
    ] {
        m.push(c);
    }
    let spec = ViewSpec {
        grouping,
        window: Window::M1,
        sort: Column::Requests,
        desc: true,
        ..ViewSpec::default()
    };
    let mut a = App::new(m, spec, "capture (kprobe)".into(), false, NOW);
    a.ingest(Feed::Status(SourceStatus {
        lost_events: 3,
        ..SourceStatus::default()
    }));
    a.tick(NOW);
    a
}

fn key(a: &mut App, code: KeyCode) {
    a.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn screen(a: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap();
    t.draw(|f| draw(f, a)).unwrap();
    let buf = t.backend().buffer();
    buf.content()
        .chunks(W as usize)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_screen(a: &App, want: &str) {
    let got = screen(a);
    let want = want.strip_prefix('\n').unwrap_or(want).trim_end();
    let got = got.trim_end();
    assert!(
        got == want,
        "screen differs; got:\n{got}\n---- want:\n{want}\n"
    );
}

const FOOT: &str = "q quit  / filter  s sort  1-9 sort col  I invert  Space pause  g group  p pids  t window  Enter calls  c chart  ? help";

#[test]
fn table_grouped_by_host() {
    let a = app(Grouping::Host);
    assert_screen(
        &a,
        &format!(
            r"
qmon top  reqs 5  rps 0.08  err 40.0%  out 50B  in 500B  | window 1m  group host  lost 3  | capture (kprobe)
sort REQS desc
PROCESS        HOST:PORT        PROTO  REQSv   RPS   ERR%     P50     P95     P99  OUT    IN  PIDS
curl, python3  api.example:443  h1s        4  0.07   25.0  10.0ms  20.0ms  20.0ms  40B  400B     2
python3[20]    db.example:443   h1s        1  0.02  100.0  40.0ms  40.0ms  40.0ms  10B  100B     1






{FOOT}"
        ),
    );
}

#[test]
fn table_grouped_by_process() {
    let a = app(Grouping::Process);
    let s = screen(&a);
    assert!(s.contains("group process"), "{s}");
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[3].starts_with("curl     api.example:443"), "{s}");
    assert!(lines[4].starts_with("python3  2 hosts"), "{s}");
}

#[test]
fn table_grouped_by_host_and_route() {
    let a = app(Grouping::HostRoute);
    let s = screen(&a);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[2].contains("HOST:PORT        ROUTE        PROTO"),
        "{s}"
    );
    assert!(
        lines[3].contains("api.example:443  /users/{id}  h1s        3"),
        "{s}"
    );
    assert!(lines[4].contains("api.example:443  /health"), "{s}");
    assert!(lines[5].contains("db.example:443   /q"), "{s}");
}

#[test]
fn table_grouped_by_process_host_and_route() {
    let a = app(Grouping::ProcessHostRoute);
    let s = screen(&a);
    assert!(s.contains("group process+host+route"), "{s}");
    let rows: Vec<&str> = s.lines().skip(3).take(4).collect();
    assert!(
        rows[0].starts_with("curl     api.example:443  /users/{id}"),
        "{s}"
    );
    assert!(rows[0].contains(" 2  "), "{s}");
    assert_eq!(
        rows.iter().filter(|l| l.starts_with("python3 ")).count(),
        2,
        "{s}"
    );
}

#[test]
fn filter_applies_as_you_type() {
    let mut a = app(Grouping::HostRoute);
    key(&mut a, KeyCode::Char('/'));
    for c in "heal".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let s = screen(&a);
    assert!(s.lines().nth(1).unwrap().ends_with("filter: heal_"), "{s}");
    let rows: Vec<&str> = s.lines().skip(3).filter(|l| l.contains(":443")).collect();
    assert_eq!(rows.len(), 1, "{s}");
    assert!(rows[0].contains("/health"), "{s}");
    key(&mut a, KeyCode::Enter);
    let s = screen(&a);
    assert!(s.lines().nth(1).unwrap().ends_with("filter: heal"), "{s}");
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.view.rows.len(), 3);
}

#[test]
fn paused_header() {
    let mut a = app(Grouping::Host);
    key(&mut a, KeyCode::Char(' '));
    // Calls arriving while paused do not change the frame.
    a.ingest(Feed::Calls(vec![sample(
        1,
        "x",
        "new.example",
        "/",
        200,
        1,
        0,
    )]));
    a.tick(NOW + SEC);
    let s = screen(&a);
    assert!(s.lines().next().unwrap().ends_with("[PAUSED]"), "{s}");
    assert!(s.contains("reqs 5 "), "{s}");
    assert!(!s.contains("new.example"), "{s}");
    key(&mut a, KeyCode::Char(' '));
    let s = screen(&a);
    assert!(!s.contains("PAUSED"), "{s}");
    assert!(s.contains("new.example"), "{s}");
}

#[test]
fn help_screen() {
    let mut a = app(Grouping::Host);
    key(&mut a, KeyCode::Char('?'));
    let s = screen(&a);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[2], "keys");
    assert_eq!(lines[3], "  q, Ctrl-C      quit");
    assert!(
        s.contains("  /              filter (process, host:port, route)"),
        "{s}"
    );
    assert_eq!(lines[11], FOOT);
    key(&mut a, KeyCode::Esc);
    assert!(screen(&a).contains("HOST:PORT"));
}

#[test]
fn drill_down_shows_the_rows_calls() {
    let mut a = app(Grouping::HostRoute);
    // First row: /users/{id} (3 calls, one a reset).
    key(&mut a, KeyCode::Enter);
    assert_screen(
        &a,
        &format!(
            r"
qmon top  reqs 5  rps 0.08  err 40.0%  out 50B  in 500B  | window 1m  group host+route  lost 3  | capture (kprobe)
sort REQS desc
calls of curl, python3  api.example:443  /users/{{id}}  (latest 3 in window 1m; 2 pids)
PID         PROCESS           REQS     ERR%    LAST(UTC)
10          curl              2        0.0     11:59:59.000
20          python3           1        100.0   11:59:56.000

TIME(UTC)     PID      METHOD   PATH                                              STATUS        LATENCY   OUT     IN
11:59:59.000  10       GET      /users/7                                          200           10.0ms    10B     100B
11:59:58.000  10       GET      /users/7                                          200           20.0ms    10B     100B
11:59:56.000  20       GET      /users/7                                          reset:8       -         10B     100B
{FOOT}"
        ),
    );
    key(&mut a, KeyCode::Esc);
    assert!(screen(&a).contains("ROUTE"));
}

#[test]
fn sort_keys_reorder_at_once() {
    let mut a = app(Grouping::HostRoute);
    let first = |a: &App| a.view.rows[0].route.clone().unwrap();
    assert_eq!(first(&a), "/users/{id}");
    key(&mut a, KeyCode::Char('I'));
    assert_eq!(first(&a), "/health");
    key(&mut a, KeyCode::Char('7')); // P50, largest first
    assert_eq!(first(&a), "/q");
    assert!(screen(&a).contains("P50v"));
    key(&mut a, KeyCode::Char('7')); // again: inverted
    assert_eq!(first(&a), "/health");
    key(&mut a, KeyCode::Char('s')); // next column: P95
    assert_eq!(a.spec.sort, Column::P95);
    key(&mut a, KeyCode::Char('g'));
    assert_eq!(a.spec.grouping, Grouping::ProcessHostRoute);
    key(&mut a, KeyCode::Char('t'));
    assert_eq!(a.spec.window, Window::M5);
    key(&mut a, KeyCode::Down);
    assert_eq!(a.selected, 1);
    key(&mut a, KeyCode::Char('k'));
    assert_eq!(a.selected, 0);
    assert_eq!(
        a.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        crate::sinks::live::app::Action::Quit
    );
    assert_eq!(
        a.handle_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)),
        crate::sinks::live::app::Action::Quit
    );
}

#[test]
fn once_text_has_no_escape_codes() {
    let a = app(Grouping::Host);
    let t = crate::sinks::live::text::render(&a);
    assert!(!t.contains('\x1b'));
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("qmon top  reqs 5"), "{t}");
    assert_eq!(
        lines[2],
        "PROCESS        HOST:PORT        PROTO  REQSv   RPS   ERR%     P50     P95     P99  OUT    IN  PIDS"
    );
    assert_eq!(
        lines[3],
        "curl, python3  api.example:443  h1s        4  0.07   25.0  10.0ms  20.0ms  20.0ms  40B  400B     2"
    );
    assert_eq!(lines.len(), 5, "{t}");
}

#[test]
fn once_text_aligns_wide_characters() {
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    for c in [
        sample(10, "curl", "api.example", "/a", 200, 10, 1),
        sample(20, "python3", "東京.example", "/b", 200, 20, 2),
        sample(30, "node", "🦀.example", "/c", 200, 30, 3),
    ] {
        m.push(c);
    }
    let spec = ViewSpec {
        grouping: Grouping::Host,
        window: Window::M1,
        sort: Column::Host,
        desc: false,
        ..ViewSpec::default()
    };
    let mut a = App::new(m, spec, "capture (kprobe)".into(), false, NOW);
    a.tick(NOW);
    let t = crate::sinks::live::text::render(&a);
    let lines: Vec<&str> = t.lines().skip(2).collect();
    assert_eq!(lines.len(), 4, "{t}");
    // PROTO starts in the same terminal column on every line.
    let proto_col = |l: &str| {
        let at = l
            .find(" h1s ")
            .unwrap_or_else(|| l.find(" PROTO ").unwrap());
        crate::table::width(&l[..at])
    };
    let cols: Vec<usize> = lines.iter().map(|l| proto_col(l)).collect();
    assert!(cols.iter().all(|c| *c == cols[0]), "{cols:?}\n{t}");
    assert!(t.contains("東京.example:443"), "{t}");
}

/// 20 short-lived curls and a long-lived python3 (`model::tests::programs`).
fn programs_app(by_pid: bool, color: bool) -> App {
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    for c in crate::sinks::live::model::tests::programs() {
        m.push(c);
    }
    let spec = ViewSpec {
        by_pid,
        window: Window::M1,
        sort: Column::Requests,
        desc: true,
        ..ViewSpec::default()
    };
    let mut a = App::new(m, spec, "capture (tracepoint)".into(), color, NOW);
    a.tick(NOW);
    a
}

fn screen_sized(a: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, a)).unwrap();
    let buf = t.backend().buffer();
    buf.content()
        .chunks(w as usize)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn table_grouped_by_program() {
    let a = programs_app(false, false);
    assert_screen(
        &a,
        &format!(
            r"
qmon top  reqs 30  rps 0.50  err 3.3%  out 300B  in 2.9K  | window 1m  group process  lost 0  | capture (tracepoint)
sort REQS desc
PROCESS  HOST:PORT        PROTO  REQSv   RPS  ERR%     P50     P95     P99   OUT     IN  PIDS
curl     api.example:443  h1s       20  0.33   0.0  20.0ms  29.0ms  30.0ms  200B   2.0K    20
python3  api.example:443  h1s       10  0.17  10.0  30.0ms  30.0ms  30.0ms  100B  1000B     1






{FOOT}"
        ),
    );
}

#[test]
fn table_grouped_by_pid_and_back() {
    let mut a = programs_app(false, false);
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(a.spec.group_label(), "pid");
    let s = screen_sized(&a, W, 30);
    let want = "\
qmon top  reqs 30  rps 0.50  err 3.3%  out 300B  in 2.9K  | window 1m  group pid  lost 0  | capture (tracepoint)
sort REQS desc
PROCESS      HOST:PORT        PROTO  REQSv   RPS  ERR%     P50     P95     P99   OUT     IN  PIDS
python3[77]  api.example:443  h1s       10  0.17  10.0  30.0ms  30.0ms  30.0ms  100B  1000B     1
curl[1001]   api.example:443  h1s        1  0.02   0.0  11.0ms  11.0ms  11.0ms   10B   100B     1
curl[1002]   api.example:443  h1s        1  0.02   0.0  12.0ms  12.0ms  12.0ms   10B   100B     1
";
    assert!(s.starts_with(want), "got:\n{s}\n---- want:\n{want}");
    let rows: Vec<&str> = s.lines().skip(3).filter(|l| l.contains(":443")).collect();
    assert_eq!(rows.len(), 21, "{s}");
    assert!(rows[20].starts_with("curl[1020] "), "{s}");
    // p again: programs.
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(a.view.rows.len(), 2);
    // From a grouping without processes, p goes straight to pids.
    key(&mut a, KeyCode::Char('g'));
    assert_eq!(a.spec.group_label(), "host");
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(a.spec.group_label(), "pid");
    assert_eq!(a.view.rows.len(), 21);
    // g keeps pids: process+host+route by pid after host, host+route.
    for _ in 0..3 {
        key(&mut a, KeyCode::Char('g'));
    }
    assert_eq!(a.spec.group_label(), "pid+host+route");
    assert_eq!(a.view.rows.len(), 21);
}

#[test]
fn drill_down_from_a_program_lists_its_pids_and_calls() {
    let mut a = programs_app(false, false);
    key(&mut a, KeyCode::Enter);
    let s = screen_sized(&a, W, 24);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[2],
        "calls of curl  api.example:443  (latest 20 in window 1m; 20 pids)"
    );
    assert_eq!(
        lines[3],
        "PID         PROCESS           REQS     ERR%    LAST(UTC)"
    );
    assert_eq!(
        lines[4],
        "1001        curl              1        0.0     11:59:58.000"
    );
    // A third of the screen for pids, then how many more.
    let more = lines.iter().position(|l| *l == "… 15 more").expect(&s);
    assert_eq!(more, 9, "{s}");
    assert!(lines[more + 2].starts_with("TIME(UTC)"), "{s}");
    assert!(
        lines[more + 3].starts_with("11:59:58.000  1001     GET      /v1/items"),
        "{s}"
    );
}

/// A client calling every second for a minute: busier, slower and failing
/// towards the end.
fn chart_app(color: bool) -> App {
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    for ago in (1..=60u64).rev() {
        let n = 1 + (60 - ago) / 15;
        for k in 0..n {
            let status = if (5..=12).contains(&ago) && k == 0 {
                503
            } else {
                200
            };
            let ms = 20 + (60 - ago) + 10 * k;
            m.push(sample(
                77,
                "python3",
                "api.example",
                "/v1/items",
                status,
                ms,
                ago,
            ));
        }
    }
    let spec = ViewSpec {
        window: Window::M1,
        sort: Column::Requests,
        desc: true,
        ..ViewSpec::default()
    };
    let mut a = App::new(m, spec, "capture (tracepoint)".into(), color, NOW);
    a.tick(NOW);
    a
}

#[test]
fn chart_view_of_the_selected_row() {
    let mut a = chart_app(false);
    key(&mut a, KeyCode::Char('c'));
    assert!(matches!(a.mode, Mode::Chart { .. }));
    let got = screen_sized(&a, 100, 30);
    let want = CHART_SNAPSHOT.strip_prefix('\n').unwrap_or(CHART_SNAPSHOT);
    assert!(
        got.trim_end() == want.trim_end(),
        "chart differs; got:\n{got}\n---- want:\n{want}"
    );
    // c or Esc closes it.
    key(&mut a, KeyCode::Char('c'));
    assert_eq!(a.mode, Mode::Table);
    assert!(a.chart.is_none());
    key(&mut a, KeyCode::Char('c'));
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Table);
    // From the drill-down, and back to it.
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Char('c'));
    assert!(matches!(
        a.mode,
        Mode::Chart {
            from_detail: true,
            ..
        }
    ));
    key(&mut a, KeyCode::Esc);
    assert!(matches!(a.mode, Mode::Detail(_)));
    // The window key re-charts over the new window (5 s buckets).
    key(&mut a, KeyCode::Char('c'));
    key(&mut a, KeyCode::Char('t'));
    assert_eq!(a.chart.as_ref().unwrap().width_ns, 5 * SEC);
    assert!(screen_sized(&a, 100, 30).contains("(window 5m, 5s buckets)"));
}

const CHART_SNAPSHOT: &str = "
qmon top  reqs 150  rps 2.50  err 5.3%  out 1.5K  in 15K  | window 1m  group process  lost 0  | capt
sort REQS desc
charts of python3  api.example:443  1 pid  (window 1m, 1s buckets)
requests/s  last 4.00  avg 2.50  max 4.00
4.40│                                                                        ⡠⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤
    │                                                 ⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⡰⠁
    │                                                ⡰⠁
2.20│                        ⢠⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠁
    │ ⠠⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠃
0.00│
    └───────────────────────────────────────────────────────────────────────────────────────────────
  -1m                                             -30s                                           now
latency  p50 79.8ms  p95 113ms  over the window (p95 the upper line)
124ms │                                                                      ⢀⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤
      │                                                ⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀
62.1ms│                             ⡠⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⡠⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠊
      │       ⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⠤⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠊
0     │ ⠈⠉⠉⠉⠉⠉
      └─────────────────────────────────────────────────────────────────────────────────────────────
    -1m                                             -30s                                         now
errors %  5.3% over the window (8 of 150)
28%│                                                                              ⡤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⡄
   │                                                                             ⢠⠃          ⢣
   │                                                                             ⢸           ⢸
14%│                                                                             ⡎           ⠈⡆
   │                                                                             ⡇            ⡇
0% │ ⢀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣸             ⢸⣀⣀⣀⣀⣀
   └────────────────────────────────────────────────────────────────────────────────────────────────
 -1m                                              -30s                                           now
q quit  / filter  s sort  1-9 sort col  I invert  Space pause  g group  p pids  t window  Enter call
";

/// Every cell's foreground and background colour.
fn colours(a: &App, w: u16, h: u16) -> Vec<(String, ratatui::style::Color, ratatui::style::Color)> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, a)).unwrap();
    t.backend()
        .buffer()
        .content()
        .iter()
        .map(|c| (c.symbol().to_string(), c.fg, c.bg))
        .collect()
}

#[test]
fn colour_marks_errors_and_slow_latency_and_no_color_turns_it_off() {
    use ratatui::style::{Color, Modifier};
    let mut m = Model::new(Limits::default(), NOW - 3600 * SEC);
    // A row that was fast for the last 15 minutes and is slow now.
    for i in 0..100 {
        m.push(sample(5, "curl", "a.example", "/", 200, 10, 120 + i));
    }
    for i in 0..5 {
        m.push(sample(5, "curl", "a.example", "/", 200, 50, 1 + i));
    }
    // A row with errors.
    m.push(sample(6, "wget", "b.example", "/", 500, 10, 1));
    let spec = ViewSpec {
        window: Window::M1,
        sort: Column::Requests,
        desc: true,
        ..ViewSpec::default()
    };
    let mut a = App::new(m, spec.clone(), "capture (tracepoint)".into(), true, NOW);
    a.tick(NOW);
    let curl = &a.view.rows[0];
    assert_eq!(curl.process, "curl");
    assert!(curl.recent_p95_ns.unwrap() < 20_000_000, "{curl:?}");
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap();
    t.draw(|f| draw(f, &a)).unwrap();
    let buf = t.backend().buffer().clone();
    let text = screen(&a);
    let lines: Vec<&str> = text.lines().collect();
    let cell_at = |line: usize, needle: &str| {
        let col = lines[line]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {text}"));
        let col = crate::table::width(&lines[line][..col]) as u16;
        buf[(col, line as u16)].clone()
    };
    // curl (line 3): P50 and P95 are 50 ms, over twice the recent p95.
    let p50 = cell_at(3, "50.0ms");
    assert_eq!(p50.fg, Color::LightRed, "{text}");
    // wget (line 4) had a 500: the row is red and bold.
    let wget = cell_at(4, "wget");
    assert_eq!(wget.fg, Color::Red);
    assert!(wget.modifier.contains(Modifier::BOLD));
    // Yellow between the recent p95 and twice it.
    assert_eq!(slowness(Some(15), Some(10)), Slowness::Slow);
    assert_eq!(slowness(Some(21), Some(10)), Slowness::VerySlow);
    assert_eq!(slowness(Some(10), Some(10)), Slowness::Usual);
    assert_eq!(slowness(None, Some(10)), Slowness::Usual);

    // NO_COLOR: not one coloured cell, on any screen; errors stay bold.
    let mut a = App::new(a.model, spec, "capture (tracepoint)".into(), false, NOW);
    a.tick(NOW);
    let check = |a: &App, what: &str| {
        for (sym, fg, bg) in colours(a, 100, 30) {
            assert!(
                fg == Color::Reset && bg == Color::Reset,
                "{what}: {sym:?} has {fg:?} on {bg:?}"
            );
        }
    };
    check(&a, "table");
    key(&mut a, KeyCode::Enter);
    check(&a, "drill-down");
    key(&mut a, KeyCode::Char('c'));
    check(&a, "charts");
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Char('?'));
    check(&a, "help");
    let a = chart_app(false);
    check(&a, "table");
    // With colour, the same screens do use colour.
    let mut a = chart_app(true);
    key(&mut a, KeyCode::Char('c'));
    assert!(colours(&a, 100, 30)
        .iter()
        .any(|(_, fg, _)| *fg == Color::Yellow));
}

/// The README's live-view captures are what the code draws.
#[test]
fn readme_shows_the_screens_as_drawn() {
    const README: &str = include_str!("../../../../../README.md");
    let chart: Vec<&str> = CHART_SNAPSHOT.trim_matches('\n').lines().collect();
    // The chart pane: between the header lines and the footer.
    let pane = chart[2..chart.len() - 1].join("\n");
    assert!(README.contains(&pane), "README's chart capture is stale");
    let table = screen(&programs_app(false, false));
    let table: Vec<&str> = table.lines().filter(|l| !l.is_empty()).collect();
    let table = table[..table.len() - 1].join("\n");
    assert!(
        README.contains(&table),
        "README's table capture is stale:\n{table}"
    );
}
