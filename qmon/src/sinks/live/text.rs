//! `qmon top --once`: one frame as plain text (no escape codes), for
//! scripts and bug reports.

use super::app::App;
use super::ui::{column_titles, header_line, row_cells, status_line};

/// Header lines, then the table with columns padded to their widest cell;
/// numbers right-aligned.
pub fn render(app: &App) -> String {
    let route = app.spec.grouping.has_route();
    let titles = column_titles(route, app.spec.sort, app.spec.desc);
    let rows: Vec<Vec<String>> = app.view.rows.iter().map(row_cells).collect();
    let text_cols = if route { 4 } else { 3 };
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if i < text_cols {
                s.push_str(&format!("{c:<w$}"));
            } else {
                s.push_str(&format!("{c:>w$}"));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&header_line(app));
    out.push('\n');
    out.push_str(&status_line(app));
    out.push('\n');
    out.push_str(&line(&titles));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no calls)\n");
    }
    out
}
