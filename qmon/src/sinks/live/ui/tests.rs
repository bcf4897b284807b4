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

const FOOT: &str = "q quit  / filter  s sort  1-9 sort by col  I invert  Space pause  g group  t window  Enter calls  Esc back  ? help";

#[test]
fn table_grouped_by_host() {
    let a = app(Grouping::Host);
    assert_screen(
        &a,
        &format!(
            r"
qmon top  reqs 5  rps 0.08  err 40.0%  out 50B  in 500B  | window 1m  group host  lost 3  | capture (kprobe)
sort REQS desc
PROCESS        HOST:PORT        PROTO  REQSv   RPS   ERR%     P50     P95     P99  OUT    IN
curl, python3  api.example:443  h1s        4  0.07   25.0  10.0ms  20.0ms  20.0ms  40B  400B
python3[20]    db.example:443   h1s        1  0.02  100.0  40.0ms  40.0ms  40.0ms  10B  100B






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
    assert!(lines[3].starts_with("curl[10]     api.example:443"), "{s}");
    assert!(lines[4].starts_with("python3[20]  2 hosts"), "{s}");
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
        rows[0].starts_with("curl[10]     api.example:443  /users/{id}"),
        "{s}"
    );
    assert!(rows[0].contains(" 2  "), "{s}");
    assert_eq!(
        rows.iter().filter(|l| l.contains("python3[20]")).count(),
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
calls of curl, python3  api.example:443  /users/{{id}}  (latest 3 in window 1m)
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
        "PROCESS        HOST:PORT        PROTO  REQSv   RPS   ERR%     P50     P95     P99  OUT    IN"
    );
    assert_eq!(
        lines[3],
        "curl, python3  api.example:443  h1s        4  0.07   25.0  10.0ms  20.0ms  20.0ms  40B  400B"
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
