//! Drawing the live view with ratatui: header, table (or drill-down,
//! charts, or help), footer.
//!
//! Colour carries meaning, and only when `App::color` (off with
//! `NO_COLOR`): rows with errors are red (and bold, which stays without
//! colour); P50 and P95 cells, and each call's latency in the drill-down,
//! are yellow above the row's recent p95 and red above twice it; P99 only
//! turns red (it is above the p95 by definition).

use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row as TRow, Table, TableState};
use ratatui::Frame;

use super::app::{App, Mode};
use super::model::{fmt_bytes, fmt_latency, fmt_rate, CallSample, Column, Row, View};
use crate::table;

mod charts;

pub const FOOTER: &str = "q quit  / filter  s sort  1-9 sort col  I invert  Space pause  g group  p pids  t window  Enter calls  c chart  ? help";

pub const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    (
        "/",
        "filter (process, host:port, route) as you type; Enter keeps it, Esc clears",
    ),
    ("s", "sort by the next column"),
    ("1-9", "sort by column N (again: invert)"),
    ("I", "invert the sort order"),
    ("Space", "pause / resume the view"),
    (
        "g",
        "group by: process, host, host+route, process+host+route",
    ),
    (
        "p",
        "a process is a program (one row per name) or a pid (one per pid)",
    ),
    ("t", "time window: 10s, 1m, 5m, 15m, all"),
    ("Enter", "pids and recent calls of the selected row"),
    (
        "c",
        "charts of the selected row: requests/s, p50/p95 latency, error %",
    ),
    ("Esc", "back / clear filter"),
    ("Up/Down, j/k", "move the selection (PgUp/PgDn, Home/End)"),
    ("?", "this help"),
];

/// The header's first line: totals, window, loss and pause state.
pub fn header_line(app: &App) -> String {
    let v = &app.view;
    let t = &v.totals;
    let err = if t.requests == 0 {
        0.0
    } else {
        100.0 * t.errors as f64 / t.requests as f64
    };
    let mut s = format!(
        "qmon top  reqs {}  rps {}  err {:.1}%  out {}  in {}  | window {}{}  group {}  lost {}",
        t.requests,
        fmt_rate(t.rps),
        err,
        fmt_bytes(t.bytes_out),
        fmt_bytes(t.bytes_in),
        app.spec.window.label(),
        if v.truncated { " (truncated)" } else { "" },
        app.spec.group_label(),
        app.status.lost_events,
    );
    if app.status.dropped > 0 {
        s.push_str(&format!(" dropped {}", app.status.dropped));
    }
    s.push_str(&format!("  | {}", app.source));
    if app.status.recorder_live == Some(false) {
        s.push_str(" (not live)");
    }
    if app.paused.is_some() {
        s.push_str("  [PAUSED]");
    }
    s
}

/// The header's second line: sort, filter, pid.
pub fn status_line(app: &App) -> String {
    let mut s = format!(
        "sort {} {}",
        app.spec.sort.title(),
        if app.spec.desc { "desc" } else { "asc" }
    );
    if let Some(pid) = app.spec.pid {
        s.push_str(&format!("  pid {pid}"));
    }
    if app.editing_filter {
        s.push_str(&format!("  filter: {}_", app.spec.filter));
    } else if !app.spec.filter.is_empty() {
        s.push_str(&format!("  filter: {}", app.spec.filter));
    }
    s
}

/// Title of each column shown, with the sort marker.
pub fn column_titles(view_route: bool, sort: Column, desc: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in Column::ALL.iter().enumerate() {
        let mut t = c.title().to_string();
        if *c == sort {
            t.push(if desc { 'v' } else { '^' });
        }
        if i == 2 && view_route {
            // ROUTE sits after HOST:PORT, before PROTO.
            out.push("ROUTE".to_string());
        }
        out.push(t);
    }
    out
}

/// Leading text columns of the table (the rest are numbers).
pub fn text_columns(route: bool) -> usize {
    if route {
        4
    } else {
        3
    }
}

/// The cells of one row, matching [`column_titles`].
pub fn row_cells(r: &Row) -> Vec<String> {
    let mut out = vec![r.process.clone(), r.host.clone()];
    if let Some(route) = &r.route {
        out.push(route.clone());
    }
    out.extend([
        r.proto.clone(),
        r.requests.to_string(),
        fmt_rate(r.rps),
        format!("{:.1}", r.error_pct),
        fmt_latency(r.p50_ns),
        fmt_latency(r.p95_ns),
        fmt_latency(r.p99_ns),
        fmt_bytes(r.bytes_out),
        fmt_bytes(r.bytes_in),
        r.pids.to_string(),
    ]);
    out
}

/// How a latency compares with its row's recent p95.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowness {
    Usual,
    /// Above the recent p95.
    Slow,
    /// Above twice the recent p95.
    VerySlow,
}

pub fn slowness(latency_ns: Option<u64>, recent_p95_ns: Option<u64>) -> Slowness {
    match (latency_ns, recent_p95_ns) {
        (Some(v), Some(p95)) if v > p95.saturating_mul(2) => Slowness::VerySlow,
        (Some(v), Some(p95)) if v > p95 => Slowness::Slow,
        _ => Slowness::Usual,
    }
}

fn slowness_style(s: Slowness) -> Style {
    match s {
        Slowness::Usual => Style::default(),
        Slowness::Slow => Style::default().fg(Color::Yellow),
        Slowness::VerySlow => Style::default().fg(Color::LightRed),
    }
}

/// Style of each cell of a table row (matching [`row_cells`]) beyond the
/// row's own style.
fn row_cell_styles(r: &Row, route: bool, color: bool) -> Vec<Style> {
    let mut styles = vec![Style::default(); column_titles(route, Column::Process, false).len()];
    if !color {
        return styles;
    }
    let at = |c: Column| Column::ALL.iter().position(|x| *x == c).unwrap_or(0) + usize::from(route);
    let p95 = r.recent_p95_ns;
    styles[at(Column::P50)] = slowness_style(slowness(r.p50_ns, p95));
    styles[at(Column::P95)] = slowness_style(slowness(r.p95_ns, p95));
    if slowness(r.p99_ns, p95) == Slowness::VerySlow {
        styles[at(Column::P99)] = slowness_style(Slowness::VerySlow);
    }
    styles
}

/// A row with errors stands out: red, and bold (bold stays with NO_COLOR).
fn error_row_style(color: bool) -> Style {
    let s = Style::default().add_modifier(Modifier::BOLD);
    if color {
        s.fg(Color::Red)
    } else {
        s
    }
}

/// `HH:MM:SS.mmm` (UTC) of a unix-ns time.
pub fn fmt_time(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

pub const DETAIL_TITLES: [&str; 8] = [
    "TIME(UTC)",
    "PID",
    "METHOD",
    "PATH",
    "STATUS",
    "LATENCY",
    "OUT",
    "IN",
];

/// The cells of one call in the drill-down.
pub fn call_cells(c: &CallSample) -> [String; 8] {
    let status = match (&c.status, &c.error) {
        (Some(s), Some(e)) => format!("{s} {e}"),
        (Some(s), None) => s.to_string(),
        (None, Some(e)) => e.clone(),
        (None, None) => "-".into(),
    };
    [
        fmt_time(c.started_ns),
        c.pid.to_string(),
        c.method.clone().unwrap_or_else(|| "-".into()),
        c.path.clone().unwrap_or_else(|| "-".into()),
        status,
        fmt_latency(c.duration_ns),
        fmt_bytes(c.bytes_out),
        fmt_bytes(c.bytes_in),
    ]
}

pub const PID_TITLES: [&str; 5] = ["PID", "PROCESS", "REQS", "ERR%", "LAST(UTC)"];

/// The cells of one pid in the drill-down.
pub fn pid_cells(p: &super::model::PidStat) -> [String; 5] {
    let err = if p.requests == 0 {
        0.0
    } else {
        100.0 * p.errors as f64 / p.requests as f64
    };
    [
        p.pid.to_string(),
        p.comm.clone(),
        p.requests.to_string(),
        format!("{err:.1}"),
        fmt_time(p.last_ns),
    ]
}

/// Title of the drill-down: what the row is.
pub fn row_label(r: &Row) -> String {
    let mut s = format!("{}  {}", r.process, r.host);
    if let Some(route) = &r.route {
        s.push_str("  ");
        s.push_str(route);
    }
    s
}

fn column_widths(view: &View, titles: &[String], route: bool) -> Vec<Constraint> {
    // Each column as wide as its widest cell (in terminal columns, as
    // ratatui draws them); text at most 40.
    let mut widths: Vec<usize> = titles.iter().map(|t| table::width(t)).collect();
    for r in &view.rows {
        for (i, c) in row_cells(r).iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(table::width(c));
            }
        }
    }
    let text_cols = text_columns(route);
    widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i < text_cols {
                Constraint::Length((*w).min(40) as u16)
            } else {
                Constraint::Length(*w as u16)
            }
        })
        .collect()
}

pub fn draw(f: &mut Frame, app: &App) {
    let [head, table, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());

    let head_style = if app.color {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let mut paused_style = Style::default().add_modifier(Modifier::BOLD);
    if app.color {
        paused_style = paused_style.fg(Color::Yellow);
    }
    let header = header_line(app);
    let header = match header.strip_suffix("[PAUSED]") {
        Some(rest) => Line::from(vec![
            Span::styled(rest.to_string(), head_style),
            Span::styled("[PAUSED]", paused_style),
        ]),
        None => Line::styled(header, head_style),
    };
    f.render_widget(
        Paragraph::new(vec![header, Line::from(status_line(app))]),
        head,
    );

    match &app.mode {
        Mode::Table => draw_table(f, app, table),
        Mode::Detail(_) => draw_detail(f, app, table),
        Mode::Chart { .. } => charts::draw(f, app, table),
        Mode::Help => draw_help(f, app, table),
    }

    let foot_style = if app.color {
        Style::default().fg(Color::Black).bg(Color::Cyan)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    f.render_widget(Paragraph::new(FOOTER).style(foot_style), foot);
}

fn title_style(app: &App) -> Style {
    let s = Style::default().add_modifier(Modifier::BOLD);
    if app.color {
        s.fg(Color::Green)
    } else {
        s
    }
}

fn draw_table(f: &mut Frame, app: &App, area: Rect) {
    let route = app.spec.grouping.has_route();
    let titles = column_titles(route, app.spec.sort, app.spec.desc);
    let widths = column_widths(&app.view, &titles, route);
    let text_cols = text_columns(route);
    // Numbers right-aligned, like the `--once` text.
    let cells = move |v: Vec<String>, styles: Vec<Style>| {
        v.into_iter()
            .zip(
                styles
                    .into_iter()
                    .chain(std::iter::repeat(Style::default())),
            )
            .enumerate()
            .map(move |(i, (s, style))| {
                if i < text_cols {
                    Cell::from(s).style(style)
                } else {
                    Cell::from(Line::from(s).alignment(Alignment::Right)).style(style)
                }
            })
    };
    let header = TRow::new(cells(titles, Vec::new())).style(title_style(app));
    let rows = app.view.rows.iter().map(|r| {
        let row = TRow::new(cells(row_cells(r), row_cell_styles(r, route, app.color)));
        if r.errors > 0 {
            row.style(error_row_style(app.color))
        } else {
            row
        }
    });
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(2)
        .flex(Flex::Start)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default();
    if !app.view.rows.is_empty() {
        state.select(Some(app.selected));
    }
    if app.view.rows.is_empty() {
        let msg = if app.model.is_empty() {
            "waiting for outbound HTTP calls…"
        } else {
            "no calls match (window, filter or pid)"
        };
        f.render_widget(Table::new(Vec::<TRow>::new(), [Constraint::Min(1)]), area);
        let [_, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
        f.render_widget(Paragraph::new(msg), body);
        return;
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let Some(row) = app.detail_row() else {
        f.render_widget(
            Paragraph::new("no calls of this row in the window (Esc: back)"),
            title,
        );
        return;
    };
    f.render_widget(
        Paragraph::new(Line::styled(
            format!(
                "calls of {}  (latest {} in window {}; {} pid{})",
                row_label(row),
                row.recent.len(),
                app.spec.window.label(),
                row.pids,
                if row.pids == 1 { "" } else { "s" },
            ),
            title_style(app),
        )),
        title,
    );
    // The row's pids first (busiest first, up to a third of the screen),
    // then its calls.
    let shown = row.pid_list.len();
    let more = row.pids.saturating_sub(shown as u64);
    let room = (body.height / 3).max(2) as usize;
    let pid_lines = if shown + usize::from(more > 0) <= room {
        shown
    } else {
        room.saturating_sub(1)
    };
    let hidden = row.pids - pid_lines as u64;
    let pid_height = 1 + pid_lines + usize::from(hidden > 0);
    let [pids_area, body] = Layout::vertical([
        Constraint::Length(pid_height as u16 + 1),
        Constraint::Min(1),
    ])
    .areas(body);
    let pid_rows = row.pid_list.iter().take(pid_lines).map(|p| {
        let row = TRow::new(pid_cells(p).map(Cell::from));
        if p.errors > 0 {
            row.style(error_row_style(app.color))
        } else {
            row
        }
    });
    let pid_rows: Vec<TRow> = pid_rows
        .chain((hidden > 0).then(|| TRow::new([Cell::from(format!("… {hidden} more"))])))
        .collect();
    f.render_widget(
        Table::new(
            pid_rows,
            [
                Constraint::Length(10),
                Constraint::Length(16),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Length(12),
            ],
        )
        .header(TRow::new(PID_TITLES.map(Cell::from)).style(title_style(app)))
        .column_spacing(2),
        pids_area,
    );
    let header = TRow::new(DETAIL_TITLES.map(Cell::from)).style(title_style(app));
    let rows = row.recent.iter().skip(app.detail_scroll).map(|c| {
        let cells = call_cells(c);
        let mut cells: Vec<Cell> = cells.into_iter().map(Cell::from).collect();
        if app.color {
            let slow = slowness(c.duration_ns, row.recent_p95_ns);
            cells[5] = cells[5].clone().style(slowness_style(slow));
            if c.is_error() {
                cells[4] = cells[4].clone().style(Style::default().fg(Color::Red));
            }
        }
        TRow::new(cells)
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Min(10),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(2),
        body,
    );
}

fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    let mut lines = vec![Line::styled("keys", title_style(app))];
    for (k, what) in HELP {
        lines.push(Line::from(format!("  {k:<14} {what}")));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(
        "columns: 1 PROCESS  2 HOST:PORT  3 PROTO  4 REQS  5 RPS  6 ERR%  7 P50  8 P95  9 P99  (s: OUT, IN, PIDS)",
    ));
    lines.push(Line::from(
        "latency = last response byte - first request byte; errors = 4xx, 5xx or transport error",
    ));
    lines.push(Line::from(
        "colours: red rows have errors; yellow latency is above the row's p95 of the last 16m, red above twice it",
    ));
    lines.push(Line::from("Esc or ? to go back"));
    f.render_widget(Clear, area);
    f.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests;
