//! Plain-text tables, for `qmon query --format table` and `qmon top --once`.
//!
//! Each column is as wide as its widest cell, measured in terminal columns
//! (`unicode-width`: a CJK character or most emoji take two, a combining
//! accent none), so cells line up in a terminal whatever script they are
//! in. Columns are two spaces apart; lines carry no trailing spaces.

use unicode_width::UnicodeWidthStr;

/// Columns between two cells.
const GAP: &str = "  ";

/// Terminal columns `s` takes.
pub fn width(s: &str) -> usize {
    s.width()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub align: Align,
}

impl Cell {
    pub fn left(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            align: Align::Left,
        }
    }

    pub fn right(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            align: Align::Right,
        }
    }
}

/// The header line, a `----` rule under it if `rule`, then one line per
/// row; every line ends in `\n`. A row with fewer cells than the header
/// leaves its last columns empty.
pub fn render(header: &[Cell], rule: bool, rows: &[Vec<Cell>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|c| width(&c.text)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(&cell.text));
        }
    }
    let mut out = String::new();
    line(&mut out, header, &widths);
    if rule {
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(dashes.join(GAP).trim_end());
        out.push('\n');
    }
    for row in rows {
        line(&mut out, row, &widths);
    }
    out
}

fn line(out: &mut String, cells: &[Cell], widths: &[usize]) {
    let start = out.len();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            out.push_str(GAP);
        }
        let pad = " ".repeat(w.saturating_sub(width(&cell.text)));
        match cell.align {
            Align::Left => {
                out.push_str(&cell.text);
                out.push_str(&pad);
            }
            Align::Right => {
                out.push_str(&pad);
                out.push_str(&cell.text);
            }
        }
    }
    out.truncate(start + out[start..].trim_end().len());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_widest_cell_and_trims_line_ends() {
        let header = [Cell::left("name"), Cell::right("n"), Cell::left("note")];
        let rows = vec![
            vec![Cell::left("a"), Cell::right("1"), Cell::left("")],
            vec![Cell::left("longer"), Cell::right("100"), Cell::left("x")],
        ];
        assert_eq!(
            render(&header, true, &rows),
            "name      n  note\n------  ---  ----\na         1\nlonger  100  x\n"
        );
        assert_eq!(
            render(&header, false, &rows[..1]),
            "name  n  note\na     1\n"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(width("東京"), 4);
        assert_eq!(width("🦀"), 2);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(width("abc"), 3);
        let header = [Cell::left("host"), Cell::right("reqs"), Cell::left("end")];
        let rows = vec![
            vec![
                Cell::left("東京.example"),
                Cell::right("7"),
                Cell::left("|"),
            ],
            vec![Cell::left("🦀.rs"), Cell::right("12"), Cell::left("|")],
            vec![
                Cell::left("cafe\u{301}.fr"),
                Cell::right("3"),
                Cell::left("|"),
            ],
            vec![Cell::left("plain.com"), Cell::right("100"), Cell::left("|")],
        ];
        let text = render(&header, true, &rows);
        assert_eq!(
            text,
            "\
host          reqs  end
------------  ----  ---
東京.example     7  |
🦀.rs           12  |
cafe\u{301}.fr          3  |
plain.com      100  |
"
        );
        // Every `|` sits in the same terminal column.
        let cols: Vec<usize> = text
            .lines()
            .skip(2)
            .map(|l| width(&l[..l.find('|').unwrap()]))
            .collect();
        assert!(cols.iter().all(|c| *c == cols[0]), "{cols:?}\n{text}");
    }
}
