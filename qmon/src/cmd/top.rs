//! `qmon top`: the live terminal view. Picks the source (a live recorder's
//! database, else in-process capture), then runs the screen loop or, with
//! `--once`, prints one plain-text frame.

use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ArgMatches;
use crossterm::event::{self, Event};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use qmon::config::{self, FileConfig};
use qmon::sinks::live::app::{Action, App};
use qmon::sinks::live::model::{Grouping, Limits, Model, ViewSpec};
use qmon::sinks::live::source::{self, DbTail, Feed, Source};
use qmon::sinks::live::{text, ui};
use qmon_protocols::ParserLimits;
use qmon_vocab::now_ns;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::cli::{GroupArg, TopArgs, TopFormat};

/// The screen never goes longer than this without a refresh.
const MAX_REFRESH: Duration = Duration::from_secs(1);

pub fn run(mut args: TopArgs, matches: Option<&ArgMatches>) -> anyhow::Result<ExitCode> {
    // Rows for scripts are one frame: no screen to refresh.
    let format = match args.format {
        TopFormat::Text => text::Format::Text,
        TopFormat::Csv => text::Format::Csv,
        TopFormat::Json => text::Format::Json,
        TopFormat::Jsonl => text::Format::Jsonl,
    };
    args.once |= format != text::Format::Text;
    if !args.once && !std::io::stdout().is_terminal() {
        anyhow::bail!("stdout is not a terminal; use `qmon top --once` for plain text");
    }
    // The same file and flags as `qmon record`, so capturing here records
    // what the recorder would (scope, redaction, capture settings).
    let file = match config::locate(args.config.as_deref()) {
        Some(p) => config::load(&p)?,
        None => FileConfig::default(),
    };
    super::apply_file_top(&mut args, &file, matches);
    let stop = super::stop_flag()?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (grouping, by_pid) = match args.group {
        GroupArg::Process => (Grouping::Process, false),
        GroupArg::Pid => (Grouping::Process, true),
        GroupArg::Host => (Grouping::Host, false),
        GroupArg::HostRoute => (Grouping::HostRoute, false),
        GroupArg::ProcessHostRoute => (Grouping::ProcessHostRoute, false),
        GroupArg::PidHostRoute => (Grouping::ProcessHostRoute, true),
    };
    let spec = ViewSpec {
        grouping,
        by_pid,
        window: args.window,
        sort: args.sort,
        desc: args.sort.default_desc() != args.reverse,
        filter: args.filter.clone().unwrap_or_default(),
        pid: args.pid,
    };

    let started = now_ns();
    let limits = Limits::default();
    let (tx, rx) = source::channel();
    let (src, observed_since) = start_source(&args, &file, limits, tx)?;
    super::announce_ready();
    let model = Model::new(limits, observed_since.unwrap_or(started));
    let mut app = App::new(model, spec, src.kind.label(), color, now_ns());

    if args.once {
        let wait = args.duration.unwrap_or(args.interval);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(deadline - Instant::now()));
            drain(&rx, &mut app);
        }
        src.stop();
        drain(&rx, &mut app);
        app.tick(now_ns());
        let mut out = std::io::stdout().lock();
        out.write_all(text::render_as(&app, format).as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let refresh = args.interval.min(MAX_REFRESH);
    let result = {
        let _stderr = StderrRedirect::new(args.log_file.as_deref())?;
        let guard = TerminalGuard::enter()?;
        let r = screen_loop(&mut app, &rx, &stop, refresh);
        drop(guard);
        r
    };
    src.stop();
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A live recorder's database if there is one, else in-process capture.
/// Also returns since when data is available (ns), if not from now.
fn start_source(
    args: &TopArgs,
    file: &FileConfig,
    limits: Limits,
    tx: std::sync::mpsc::SyncSender<Feed>,
) -> anyhow::Result<(Source, Option<u64>)> {
    let now = now_ns();
    if let Some(rec) = source::live_recorder(&args.db, now) {
        tracing::info!(db = %args.db.display(), recorder = rec.pid, "showing the running recorder's calls");
        let mut tail = DbTail::open(&args.db)?;
        // Enough history for the longest timed window.
        let since = now.saturating_sub(Duration::from_secs(15 * 60).as_nanos() as u64);
        let since = since.max(rec.started_at_ns);
        let backfill = tail
            .backfill(since, limits.max_calls)
            .context("reading recent calls")?;
        let src = source::start_db_tail(
            &args.db,
            rec.pid,
            tail,
            backfill,
            args.interval.min(MAX_REFRESH) / 2,
            tx,
        )?;
        return Ok((src, Some(since)));
    }
    let src = source::start_capture(
        super::capture_options(&args.capture),
        ParserLimits::default(),
        super::policy(&args.redaction, file),
        tx,
    )?;
    tracing::info!(mode = src.kind.label(), "capturing in-process");
    Ok((src, None))
}

fn drain(rx: &Receiver<Feed>, app: &mut App) {
    while let Ok(f) = rx.try_recv() {
        app.ingest(f);
    }
}

fn screen_loop(
    app: &mut App,
    rx: &Receiver<Feed>,
    stop: &AtomicBool,
    refresh: Duration,
) -> anyhow::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut next_tick = Instant::now();
    let mut dirty = true;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_tick {
            drain(rx, app);
            app.tick(now_ns());
            next_tick = Instant::now() + refresh;
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| ui::draw(f, app))?;
            dirty = false;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        if event::poll(wait.min(Duration::from_millis(250)))? {
            match event::read()? {
                Event::Key(k) => match app.handle_key(k) {
                    Action::Quit => break,
                    Action::Redraw => dirty = true,
                    Action::None => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Raw mode + alternate screen + hidden cursor, undone on drop and by the
/// panic hook (which runs before unwinding drops the guard).
struct TerminalGuard;

fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<TerminalGuard> {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            StderrRedirect::restore_saved();
            prev(info);
        }));
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let guard = TerminalGuard;
        execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// The saved stderr while it is redirected (-1 when not).
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);

/// Logs written to stderr would scribble over the screen: while it is
/// shown, fd 2 goes to `--log-file` or /dev/null, and is put back on drop
/// (and by the panic hook, so the panic message is seen).
struct StderrRedirect {
    saved: Option<OwnedFd>,
}

impl StderrRedirect {
    fn new(log_file: Option<&std::path::Path>) -> anyhow::Result<StderrRedirect> {
        let target = match log_file {
            Some(p) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open the log file {}", p.display()))?,
            None => std::fs::OpenOptions::new().write(true).open("/dev/null")?,
        };
        // SAFETY: dup/dup2 on fds we own or on fd 2; failures are checked.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return Err(std::io::Error::last_os_error()).context("dup stderr");
        }
        // SAFETY: `saved` is a fresh fd we own from here on.
        let saved = unsafe { OwnedFd::from_raw_fd(saved) };
        // SAFETY: both fds are valid.
        if unsafe { libc::dup2(target.as_raw_fd(), 2) } < 0 {
            return Err(std::io::Error::last_os_error()).context("redirect stderr");
        }
        SAVED_STDERR.store(saved.as_raw_fd(), Ordering::SeqCst);
        Ok(StderrRedirect { saved: Some(saved) })
    }

    fn restore_saved() {
        let fd = SAVED_STDERR.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: `fd` stays open until the redirect is dropped, which
            // happens after this swap.
            unsafe { libc::dup2(fd, 2) };
        }
    }
}

impl Drop for StderrRedirect {
    fn drop(&mut self) {
        Self::restore_saved();
        drop(self.saved.take());
    }
}
