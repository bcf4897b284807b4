//! The live view's state and key handling. No terminal I/O here: keys come
//! in as crossterm events, the frame is drawn by [`super::ui`].

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{Column, GroupKey, Grouping, Model, Row, View, ViewSpec};
use super::source::{Feed, SourceStatus};
use super::trends::Chart;

/// Which screen is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// Pids and recent calls of one row.
    Detail(GroupKey),
    /// Charts of one row; Esc goes back to its calls if it came from them.
    Chart {
        key: GroupKey,
        from_detail: bool,
    },
    Help,
}

/// What the caller should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    None,
    Redraw,
    Quit,
}

pub struct App {
    pub model: Model,
    pub spec: ViewSpec,
    pub mode: Mode,
    /// Filter being typed (`/` … Enter/Esc).
    pub editing_filter: bool,
    /// Paused at (now, calls seen): the frame stays as it was.
    pub paused: Option<(u64, u64)>,
    pub status: SourceStatus,
    /// Where the data comes from, for the header.
    pub source: String,
    pub color: bool,
    /// The computed frame.
    pub view: View,
    /// The chart of the row shown in [`Mode::Chart`].
    pub chart: Option<Chart>,
    /// Index into `view.rows`.
    pub selected: usize,
    selected_key: Option<GroupKey>,
    /// First line shown in the drill-down.
    pub detail_scroll: usize,
    now_ns: u64,
}

impl App {
    pub fn new(model: Model, spec: ViewSpec, source: String, color: bool, now_ns: u64) -> App {
        let mut app = App {
            model,
            spec,
            mode: Mode::Table,
            editing_filter: false,
            paused: None,
            status: SourceStatus::default(),
            source,
            color,
            view: View::default(),
            chart: None,
            selected: 0,
            selected_key: None,
            detail_scroll: 0,
            now_ns,
        };
        app.recompute();
        app
    }

    /// Take a message from the source (calls are kept even while paused;
    /// the paused frame just does not show them).
    pub fn ingest(&mut self, feed: Feed) {
        match feed {
            Feed::Calls(calls) => {
                let now = qmon_vocab::now_ns();
                for c in calls {
                    self.model.push_at(c, now);
                }
            }
            Feed::Status(s) => self.status = s,
        }
    }

    /// Recompute the frame as of `now_ns` (a tick).
    pub fn tick(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.recompute();
    }

    /// The time the frame is computed at.
    pub fn frame_now(&self) -> u64 {
        self.paused.map_or(self.now_ns, |(now, _)| now)
    }

    fn recompute(&mut self) {
        let (now, upto) = match self.paused {
            Some((now, seen)) => (now, Some(seen)),
            None => (self.now_ns, None),
        };
        self.view = self.model.view(&self.spec, now, upto);
        self.chart = match &self.mode {
            Mode::Chart { key, .. } => Some(self.model.chart(&self.spec, &self.view, key, now)),
            _ => None,
        };
        self.selected = self
            .selected_key
            .as_ref()
            .and_then(|k| self.view.rows.iter().position(|r| &r.key == k))
            .unwrap_or(self.selected)
            .min(self.view.rows.len().saturating_sub(1));
        self.selected_key = self.view.rows.get(self.selected).map(|r| r.key.clone());
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.view.rows.get(self.selected)
    }

    /// The row the drill-down or the chart shows, if it is still in the
    /// window.
    pub fn detail_row(&self) -> Option<&Row> {
        match &self.mode {
            Mode::Detail(k) | Mode::Chart { key: k, .. } => {
                self.view.rows.iter().find(|r| &r.key == k)
            }
            _ => None,
        }
    }

    fn select(&mut self, i: usize) {
        self.selected = i.min(self.view.rows.len().saturating_sub(1));
        self.selected_key = self.view.rows.get(self.selected).map(|r| r.key.clone());
    }

    fn set_sort(&mut self, col: Column) {
        if self.spec.sort == col {
            self.spec.desc = !self.spec.desc;
        } else {
            self.spec.sort = col;
            self.spec.desc = col.default_desc();
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return Action::Quit;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.spec.filter.clear();
                }
                KeyCode::Backspace => {
                    self.spec.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.spec.filter.push(c),
                _ => return Action::None,
            }
            self.recompute();
            return Action::Redraw;
        }
        match (&self.mode, key.code) {
            (_, KeyCode::Char('q')) => return Action::Quit,
            (Mode::Help, KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter) => {
                self.mode = Mode::Table
            }
            (Mode::Help, _) => return Action::None,
            (
                Mode::Chart { key, from_detail },
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('c'),
            ) => {
                self.mode = if *from_detail {
                    Mode::Detail(key.clone())
                } else {
                    Mode::Table
                }
            }
            (Mode::Detail(key), KeyCode::Char('c')) => {
                self.mode = Mode::Chart {
                    key: key.clone(),
                    from_detail: true,
                }
            }
            (Mode::Detail(_), KeyCode::Esc | KeyCode::Backspace | KeyCode::Left) => {
                self.mode = Mode::Table
            }
            (Mode::Detail(_), KeyCode::Down | KeyCode::Char('j')) => {
                let last = self
                    .detail_row()
                    .map_or(0, |r| r.recent.len().saturating_sub(1));
                self.detail_scroll = (self.detail_scroll + 1).min(last);
            }
            (Mode::Detail(_), KeyCode::Up | KeyCode::Char('k')) => {
                self.detail_scroll = self.detail_scroll.saturating_sub(1)
            }
            (_, KeyCode::Char('?')) => self.mode = Mode::Help,
            (_, KeyCode::Char(' ')) => {
                self.paused = match self.paused {
                    Some(_) => None,
                    None => Some((self.now_ns, self.model.seen)),
                };
            }
            (_, KeyCode::Char('t')) => self.spec.window = self.spec.window.next(),
            (Mode::Detail(_) | Mode::Chart { .. }, _) => return Action::None,
            (Mode::Table, KeyCode::Char('/')) => self.editing_filter = true,
            (Mode::Table, KeyCode::Esc) => self.spec.filter.clear(),
            (Mode::Table, KeyCode::Char('s')) => {
                self.spec.sort = self.spec.sort.next();
                self.spec.desc = self.spec.sort.default_desc();
            }
            (Mode::Table, KeyCode::Char('I')) => self.spec.desc = !self.spec.desc,
            (Mode::Table, KeyCode::Char(c @ '1'..='9')) => {
                if let Some(col) = c.to_digit(10).and_then(|n| Column::nth(n as usize)) {
                    self.set_sort(col);
                }
            }
            (Mode::Table, KeyCode::Char('g')) => {
                self.spec.grouping = self.spec.grouping.next();
                self.selected_key = None;
                self.selected = 0;
            }
            (Mode::Table, KeyCode::Char('p')) => {
                // One row per pid, or back to one per program; from a
                // grouping without processes, straight to pids.
                if self.spec.grouping.has_process() {
                    self.spec.by_pid = !self.spec.by_pid;
                } else {
                    self.spec.grouping = Grouping::Process;
                    self.spec.by_pid = true;
                }
                self.selected_key = None;
                self.selected = 0;
            }
            (Mode::Table, KeyCode::Enter) => {
                if let Some(r) = self.selected_row() {
                    self.mode = Mode::Detail(r.key.clone());
                    self.detail_scroll = 0;
                }
            }
            (Mode::Table, KeyCode::Char('c')) => {
                if let Some(r) = self.selected_row() {
                    self.mode = Mode::Chart {
                        key: r.key.clone(),
                        from_detail: false,
                    };
                }
            }
            (Mode::Table, KeyCode::Down | KeyCode::Char('j')) => self.select(self.selected + 1),
            (Mode::Table, KeyCode::Up | KeyCode::Char('k')) => {
                self.select(self.selected.saturating_sub(1))
            }
            (Mode::Table, KeyCode::PageDown) => self.select(self.selected + 20),
            (Mode::Table, KeyCode::PageUp) => self.select(self.selected.saturating_sub(20)),
            (Mode::Table, KeyCode::Home) => self.select(0),
            (Mode::Table, KeyCode::End) => self.select(usize::MAX),
            _ => return Action::None,
        }
        self.recompute();
        Action::Redraw
    }
}
