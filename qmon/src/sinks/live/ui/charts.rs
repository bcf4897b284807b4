//! The chart view of one row: requests per second, p50 and p95 latency,
//! and error %, one point per time bucket over the current window.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::super::app::App;
use super::super::model::{fmt_latency, fmt_rate};
use super::super::trends::{Bucket, Chart as ChartData};
use super::{row_label, title_style};

/// `-1m`, `-30s`, `now`.
fn fmt_ago(secs: f64) -> String {
    let s = secs.abs().round() as u64;
    if s == 0 {
        "now".into()
    } else if s % 60 == 0 {
        format!("-{}m", s / 60)
    } else if s > 120 {
        format!("-{:.1}m", s as f64 / 60.0)
    } else {
        format!("-{s}s")
    }
}

/// `1s`, `15s`.
fn fmt_width(ns: u64) -> String {
    format!("{}s", ns / 1_000_000_000)
}

/// The points of one line, split where a bucket has no value, so a gap is
/// not drawn over.
fn runs(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) => {
                if let Some(r) = out.last_mut() {
                    r.push((x, y));
                }
            }
            None if out.last().is_some_and(|r| !r.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// What the three charts plot, per bucket: x is seconds before now (the
/// bucket's end).
pub struct Series {
    pub rps: Vec<Vec<(f64, f64)>>,
    /// Milliseconds.
    pub p50: Vec<Vec<(f64, f64)>>,
    pub p95: Vec<Vec<(f64, f64)>>,
    pub err: Vec<Vec<(f64, f64)>>,
    /// The whole window merged.
    pub total: Bucket,
    /// The newest bucket's requests per second.
    pub last_rps: Option<f64>,
}

pub fn series(c: &ChartData, now_ns: u64) -> Series {
    let width_s = c.width_ns as f64 / 1e9;
    let x = |start: u64| (start as f64 + c.width_ns as f64 - now_ns as f64) / 1e9;
    let mut total = Bucket::default();
    for (_, b) in &c.buckets {
        total.merge(b);
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    Series {
        rps: runs(
            c.buckets
                .iter()
                .map(|(t, b)| (x(*t), Some(f64::from(b.reqs) / width_s))),
        ),
        p50: runs(
            c.buckets
                .iter()
                .map(|(t, b)| (x(*t), b.percentile(50.0).map(ms))),
        ),
        p95: runs(
            c.buckets
                .iter()
                .map(|(t, b)| (x(*t), b.percentile(95.0).map(ms))),
        ),
        err: runs(c.buckets.iter().map(|(t, b)| (x(*t), b.error_pct()))),
        total,
        last_rps: c.buckets.last().map(|(_, b)| f64::from(b.reqs) / width_s),
    }
}

fn y_max(lines: &[&Vec<Vec<(f64, f64)>>], floor: f64) -> f64 {
    lines
        .iter()
        .flat_map(|runs| runs.iter().flatten())
        .map(|(_, y)| *y)
        .fold(floor, f64::max)
}

fn datasets<'a>(
    runs: &'a [Vec<(f64, f64)>],
    marker: Marker,
    style: Style,
) -> impl Iterator<Item = Dataset<'a>> {
    runs.iter().map(move |r| {
        Dataset::default()
            .data(r)
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(style)
    })
}

/// One chart: `title` on its first line, the plot under it.
fn plot(
    f: &mut Frame,
    area: Rect,
    title: Line<'_>,
    sets: Vec<Dataset<'_>>,
    x_from: f64,
    y_top: f64,
    y_label: impl Fn(f64) -> String,
) {
    let y_top = y_top * 1.1;
    let chart = Chart::new(sets)
        .block(Block::new().title(title))
        .legend_position(None)
        .x_axis(Axis::default().bounds([x_from, 0.0]).labels([
            fmt_ago(x_from),
            fmt_ago(x_from / 2.0),
            fmt_ago(0.0),
        ]))
        .y_axis(Axis::default().bounds([0.0, y_top]).labels([
            y_label(0.0),
            y_label(y_top / 2.0),
            y_label(y_top),
        ]));
    f.render_widget(chart, area);
}

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let (Some(row), Some(chart)) = (app.detail_row(), app.chart.as_ref()) else {
        f.render_widget(
            Paragraph::new("no calls of this row in the window (Esc: back)"),
            title,
        );
        return;
    };
    let window = match app.spec.window.duration() {
        Some(_) => app.spec.window.label().to_string(),
        None => format!(
            "all, charted: last {}m",
            (chart.to_ns - chart.from_ns) / 60_000_000_000
        ),
    };
    let mut head = format!(
        "charts of {}  {} pid{}  (window {window}, {} buckets)",
        row_label(row),
        row.pids,
        if row.pids == 1 { "" } else { "s" },
        fmt_width(chart.width_ns),
    );
    if chart.partial {
        head.push_str("  partial: older series dropped to bound memory");
    }
    f.render_widget(Paragraph::new(Line::styled(head, title_style(app))), title);
    let now = app.frame_now();
    let s = series(chart, now);
    if s.total.reqs == 0 {
        f.render_widget(
            Paragraph::new("no completed time bucket with calls of this row yet"),
            body,
        );
        return;
    }
    let x_from = (chart.from_ns as f64 - now as f64) / 1e9;
    let color = |c: Color| {
        if app.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    };
    let [a, b, c] = Layout::vertical([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(body);

    let window_s = (chart.to_ns - chart.from_ns) as f64 / 1e9;
    let rps_title = Line::from(vec![
        Span::styled("requests/s", title_style(app)),
        Span::raw(format!(
            "  last {}  avg {}  max {}",
            s.last_rps.map_or("-".into(), fmt_rate),
            fmt_rate(f64::from(s.total.reqs) / window_s),
            fmt_rate(y_max(&[&s.rps], 0.0)),
        )),
    ]);
    let rps_top = y_max(&[&s.rps], 1.0);
    plot(
        f,
        a,
        rps_title,
        datasets(&s.rps, Marker::Braille, color(Color::Cyan)).collect(),
        x_from,
        rps_top,
        fmt_rate,
    );

    // p50 is never above p95: the lower line is p50, also without colour.
    let lat_title = Line::from(vec![
        Span::styled("latency", title_style(app)),
        Span::raw("  "),
        Span::styled("p50", color(Color::Green)),
        Span::raw(format!(" {}  ", fmt_latency(s.total.percentile(50.0)))),
        Span::styled("p95", color(Color::Yellow)),
        Span::raw(format!(
            " {}  over the window (p95 the upper line)",
            fmt_latency(s.total.percentile(95.0))
        )),
    ]);
    let lat_top = y_max(&[&s.p50, &s.p95], 0.001);
    let lat_sets = datasets(&s.p95, Marker::Braille, color(Color::Yellow))
        .chain(datasets(&s.p50, Marker::Braille, color(Color::Green)))
        .collect();
    plot(f, b, lat_title, lat_sets, x_from, lat_top, |ms| {
        if ms == 0.0 {
            "0".into()
        } else {
            fmt_latency(Some((ms * 1e6) as u64))
        }
    });

    let err_title = Line::from(vec![
        Span::styled("errors %", title_style(app)),
        Span::raw(format!(
            "  {:.1}% over the window ({} of {})",
            s.total.error_pct().unwrap_or(0.0),
            s.total.errors,
            s.total.reqs
        )),
    ]);
    let err_top = y_max(&[&s.err], 1.0);
    plot(
        f,
        c,
        err_title,
        datasets(&s.err, Marker::Braille, color(Color::Red)).collect(),
        x_from,
        err_top,
        |v| {
            if err_top < 9.0 {
                format!("{v:.1}%")
            } else {
                format!("{v:.0}%")
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_a_line() {
        let r = runs(
            [
                (1.0, Some(1.0)),
                (2.0, Some(2.0)),
                (3.0, None),
                (4.0, None),
                (5.0, Some(5.0)),
            ]
            .into_iter(),
        );
        assert_eq!(r, vec![vec![(1.0, 1.0), (2.0, 2.0)], vec![(5.0, 5.0)]]);
        assert!(runs([(1.0, None)].into_iter()).is_empty());
    }

    #[test]
    fn ago_labels() {
        assert_eq!(fmt_ago(-60.0), "-1m");
        assert_eq!(fmt_ago(-30.0), "-30s");
        assert_eq!(fmt_ago(0.0), "now");
        assert_eq!(fmt_ago(-450.0), "-7.5m");
    }
}
