//! `qmon top --once`: one frame as plain text (no escape codes), for
//! scripts and bug reports.

use super::app::App;
use super::ui::{column_titles, header_line, row_cells, status_line};
use crate::table::{self, Cell};

/// Header lines, then the table with columns padded to their widest cell;
/// numbers right-aligned.
pub fn render(app: &App) -> String {
    let route = app.spec.grouping.has_route();
    let text_cols = if route { 4 } else { 3 };
    let cells = |texts: Vec<String>| -> Vec<Cell> {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if i < text_cols {
                    Cell::left(t)
                } else {
                    Cell::right(t)
                }
            })
            .collect()
    };
    let titles = cells(column_titles(route, app.spec.sort, app.spec.desc));
    let rows: Vec<Vec<Cell>> = app.view.rows.iter().map(|r| cells(row_cells(r))).collect();
    let mut out = String::new();
    out.push_str(&header_line(app));
    out.push('\n');
    out.push_str(&status_line(app));
    out.push('\n');
    out.push_str(&table::render(&titles, false, &rows));
    if rows.is_empty() {
        out.push_str("(no calls)\n");
    }
    out
}
