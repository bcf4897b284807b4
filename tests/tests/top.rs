//! `qmon top`: the live view inside a real terminal (tmux) while real HTTPS
//! traffic flows, driven with `send-keys` and read back with
//! `capture-pane`; `--once` plain output with its own capture; and `--once`
//! showing a running recorder's calls without a second capture.

use anyhow::{bail, Context, Result};
use qmon_e2e::{curl, qmon_bin, serial, wait_until, Env, Qmon, TestServer};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A tmux server of our own (`-L`), so nobody else's sessions are touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A 200×50 session running a plain bash with a known prompt.
    fn start() -> Result<Tmux> {
        let t = Tmux {
            socket: format!("qmon-e2e-top-{}", std::process::id()),
        };
        let out = Command::new("tmux")
            .args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "200", "-y", "50", "-s", "top"])
            .args(["env", "PS1=TOPSHELL$ ", "bash", "--norc", "--noprofile"])
            .env_remove("TMUX")
            .output()
            .context("run tmux (apt-get install tmux)")?;
        if !out.status.success() {
            bail!("tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(t)
    }

    fn tmux(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("run tmux")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Keys as tmux names them (`Enter`, `Escape`, `C-c`) or literal text.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.tmux(&args).expect("tmux send-keys");
    }

    /// Literal text, no key-name lookup.
    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "top", "-l", text])
            .expect("tmux send-keys -l");
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "top"])
            .unwrap_or_default()
    }

    fn alternate_on(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "top", "#{alternate_on}"])
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    }

    /// Waits until the screen satisfies `pred`; returns the last screen and
    /// whether it did.
    fn wait(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> (bool, String) {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            last = self.screen();
            pred(&last)
        });
        (ok, last)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// Esc, then wait until the filter is gone: a key sent right after a bare
/// ESC would be read as Alt+key.
fn clear_filter(tmux: &Tmux) {
    tmux.keys(&["Escape"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.lines().nth(1).is_some_and(|l| !l.contains("filter:"))
    });
    assert!(ok, "Esc should clear the filter; pane:\n{s}");
}

/// Table lines (not header, footer or the typed command) of a screen.
fn data_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip_while(|l| !l.starts_with("PROCESS"))
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with("q quit"))
        .collect()
}

/// The request count (REQS column) of the row containing `needle`.
fn reqs_of(screen: &str, needle: &str) -> Option<u64> {
    let row = data_rows(screen).into_iter().find(|l| l.contains(needle))?;
    // process, host:port, route, proto, REQS, …
    row.split_whitespace().nth(4)?.parse().ok()
}

/// `curl` making `n` GETs of each path over one TLS connection.
fn traffic(srv: &TestServer, ca: &str, paths: &[(&str, usize)]) -> Result<()> {
    let urls: Vec<String> = paths
        .iter()
        .flat_map(|(p, n)| std::iter::repeat_n(srv.url(p), *n))
        .collect();
    let mut args = vec!["--http1.1", "--cacert", ca];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    curl(&args)?.ok();
    Ok(())
}

#[test]
fn live_view_in_tmux_rows_sort_filter_drill_down_and_quit() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let port = format!(":{}", srv.port);
    // A database nobody records into: top must capture by itself.
    let db = env.path().join("none.db");
    let bin = qmon_bin()?;
    let tmux = Tmux::start()?;
    tmux.text(&format!(
        "{} top --db {} --interval 500ms --group host-route --filter {port}",
        bin.display(),
        db.display()
    ));
    tmux.keys(&["Enter"]);
    let (up, s) = tmux.wait(Duration::from_secs(60), |s| s.contains("sort REQS desc"));
    assert!(up, "qmon top did not draw its screen; pane:\n{s}");
    assert!(
        tmux.alternate_on(),
        "the view should use the alternate screen"
    );
    assert!(
        s.contains("capture ("),
        "no recorder: in-process capture; pane:\n{s}"
    );

    traffic(&srv, &env.ca(), &[("/hello", 6), ("/status/503", 2)])?;
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        reqs_of(s, "/hello") == Some(6) && reqs_of(s, "/status/{id}") == Some(2)
    });
    assert!(ok, "rows with 6 and 2 requests expected; pane:\n{s}");
    let rows = data_rows(&s);
    assert_eq!(
        rows.len(),
        2,
        "only this server's rows (--filter); pane:\n{s}"
    );
    assert!(
        rows[0].contains("/hello"),
        "most requests first; pane:\n{s}"
    );
    assert!(rows[0].contains(&port) && rows[0].contains("h1s"), "{s}");
    assert!(rows[1].contains("100.0"), "503s are errors; pane:\n{s}");
    assert!(s.lines().next().unwrap_or("").contains("reqs 8 "), "{s}");

    // I inverts the sort, at once.
    tmux.keys(&["I"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        data_rows(s)
            .first()
            .is_some_and(|r| r.contains("/status/{id}"))
    });
    assert!(ok, "I should put the smaller row first; pane:\n{s}");
    assert!(s.contains("REQS^"), "{s}");
    // 6 sorts by ERR% (largest first): the 503s stay on top; I flips again.
    tmux.keys(&["6"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| s.contains("ERR%v"));
    assert!(ok, "{s}");
    assert!(data_rows(&s)[0].contains("/status/{id}"), "{s}");
    tmux.keys(&["I"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        data_rows(s).first().is_some_and(|r| r.contains("/hello"))
    });
    assert!(ok, "{s}");

    // Esc clears the --filter; "/" filters as you type.
    clear_filter(&tmux);
    tmux.keys(&["/"]);
    tmux.text("status/{");
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.contains("filter: status/{_")
            && !data_rows(s).is_empty()
            && data_rows(s).iter().all(|r| r.contains("status/{"))
    });
    assert!(ok, "filter should leave only /status rows; pane:\n{s}");
    assert!(data_rows(&s).iter().any(|r| r.contains(&port)), "{s}");
    tmux.keys(&["Enter"]); // stop editing, keep the filter

    // Drill down into the (only) row of ours.
    clear_filter(&tmux);
    tmux.keys(&["/"]);
    tmux.text(&port);
    tmux.keys(&["Enter", "Home", "Enter"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| s.contains("calls of "));
    assert!(ok, "Enter should open the drill-down; pane:\n{s}");
    let calls: Vec<&str> = s
        .lines()
        .filter(|l| l.contains(" GET ") && l.contains("/hello"))
        .collect();
    assert_eq!(calls.len(), 6, "six /hello calls; pane:\n{s}");
    assert!(calls.iter().all(|l| l.contains(" 200 ")), "{s}");
    tmux.keys(&["Escape"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| s.contains("ROUTE"));
    assert!(ok, "Esc goes back to the table; pane:\n{s}");

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    // A fresh, empty prompt: the line that started qmon also begins with
    // the prompt, and matching it let the next command be typed while qmon
    // was still detaching its probes.
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        !s.contains("sort REQS") && s.lines().any(|l| l.trim_end() == "TOPSHELL$")
    });
    assert!(ok, "q should restore the shell; pane:\n{s}");
    assert!(!tmux.alternate_on(), "alternate screen still on");
    // The shell works and the terminal is not in raw mode: a typed command
    // runs and echoes normally.
    tmux.text("echo top-exit-$?");
    tmux.keys(&["Enter"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.lines().any(|l| l.trim() == "top-exit-0")
    });
    assert!(
        ok,
        "qmon top should exit 0 and leave a sane tty; pane:\n{s}"
    );
    Ok(())
}

/// Runs `qmon top --once ARGS`, calls `during` once it is ready, and
/// returns (stdout, stderr).
fn top_once(args: &[&str], during: impl FnOnce() -> Result<()>) -> Result<(String, String)> {
    let mut child = Command::new(qmon_bin()?)
        .arg("top")
        .arg("--once")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn qmon top --once")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut err = BufReader::new(child.stderr.take().context("stderr")?);
    let mut stderr = String::new();
    let mut ready = false;
    let mut line = String::new();
    while err.read_line(&mut line).unwrap_or(0) > 0 {
        stderr.push_str(&line);
        if line.contains("qmon: ready") {
            ready = true;
            break;
        }
        line.clear();
    }
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        bail!("qmon top --once never became ready; stderr:\n{stderr}");
    }
    during()?;
    let _ = err.read_to_string(&mut stderr);
    let status = child.wait()?;
    let stdout = out_thread.join().unwrap_or_default();
    if !status.success() {
        bail!("qmon top --once exited {status}; stderr:\n{stderr}");
    }
    Ok((stdout, stderr))
}

#[test]
fn once_prints_a_plain_frame_of_real_traffic() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let port = format!(":{}", srv.port);
    let db = env.path().join("none.db");
    let dbs = db.display().to_string();
    let ca = env.ca();
    let (out, err) = top_once(
        &[
            "--db",
            &dbs,
            "--duration",
            "6s",
            "--group",
            "host-route",
            "--filter",
            &port,
        ],
        || traffic(&srv, &ca, &[("/hello", 3), ("/status/404", 1)]),
    )?;
    assert!(
        !out.contains('\x1b'),
        "escape codes in --once output:\n{out:?}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("qmon top  reqs 4 "),
        "{out}\nstderr:\n{err}"
    );
    assert!(lines[0].contains("capture ("), "{out}");
    assert!(lines[1].contains(&format!("filter: {port}")), "{out}");
    assert!(lines[2].starts_with("PROCESS"), "{out}");
    assert_eq!(reqs_of(&out, "/hello"), Some(3), "{out}");
    assert_eq!(reqs_of(&out, "/status/{id}"), Some(1), "{out}");
    let hello = data_rows(&out)[0];
    assert!(hello.starts_with("curl["), "{out}");
    assert!(hello.contains(&port) && hello.contains("h1s"), "{out}");
    Ok(())
}

#[test]
fn once_shows_a_running_recorders_calls_without_capturing() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let port = format!(":{}", srv.port);
    let db = env.path().join("q.db");
    let rec = Qmon::record(&db, &[])?;
    traffic(&srv, &env.ca(), &[("/hello", 2)])?;
    let recorded = wait_until(Duration::from_secs(20), || {
        qmon_e2e::query(
            &db,
            &format!("SELECT id FROM calls WHERE port = {}", srv.port),
        )
        .map(|r| r.len() == 2)
        .unwrap_or(false)
    });
    assert!(recorded, "the recorder did not store the calls");
    let dbs = db.display().to_string();
    let (out, err) = top_once(
        &[
            "--db",
            &dbs,
            "--duration",
            "2s",
            "--group",
            "host",
            "--filter",
            &port,
        ],
        || Ok(()),
    )?;
    assert!(
        out.lines()
            .next()
            .unwrap_or("")
            .contains(&format!("recorder pid {}", rec.pid())),
        "{out}\nstderr:\n{err}"
    );
    assert!(
        !err.contains("capturing in-process"),
        "second capture: {err}"
    );
    assert_eq!(reqs_of_host(&out, &port), Some(2), "{out}");
    // The same rows for scripts, as JSON (`--format` implies `--once`).
    let (json, err) = top_once(
        &[
            "--db",
            &dbs,
            "--duration",
            "1s",
            "--group",
            "host",
            "--filter",
            &port,
            "--format",
            "json",
        ],
        || Ok(()),
    )?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&json).with_context(|| format!("{json}\nstderr:\n{err}"))?;
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(rows[0]["host"], format!("127.0.0.1{port}"), "{json}");
    assert_eq!(
        (&rows[0]["reqs"], &rows[0]["pids"]),
        (&2.into(), &1.into()),
        "{json}"
    );
    rec.stop().assert_clean_exit();
    Ok(())
}

/// REQS of a host-grouped row (no route column).
fn reqs_of_host(screen: &str, needle: &str) -> Option<u64> {
    let row = data_rows(screen).into_iter().find(|l| l.contains(needle))?;
    row.split_whitespace().nth(3)?.parse().ok()
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python client: one keep-alive HTTPS connection to 127.0.0.1:argv[1]
/// (CA argv[2]), a GET of /hello every 200 ms until killed.
const PY_LONG_LIVED: &str = r#"
import http.client, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=30)
while True:
    c.request("GET", "/hello")
    c.getresponse().read()
    time.sleep(0.2)
"#;

/// The PIDS column (last) of a table line.
fn pids_of(row: &str) -> Option<u64> {
    row.split_whitespace().last()?.parse().ok()
}

/// The issue's scenario: 20 short-lived curl runs and one long-lived Python
/// client calling one API are two program rows (PIDS 20 and 1); `p` makes
/// them 21 pid rows; `c` charts the selected row and Esc closes the chart;
/// `q` gives the terminal back.
#[test]
fn programs_pids_and_charts_in_tmux() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let port = format!(":{}", srv.port);
    let db = env.path().join("none.db");
    let bin = qmon_bin()?;
    let tmux = Tmux::start()?;
    // Default grouping: by program.
    tmux.text(&format!(
        "{} top --db {} --interval 500ms --filter {port}",
        bin.display(),
        db.display()
    ));
    tmux.keys(&["Enter"]);
    let (up, s) = tmux.wait(Duration::from_secs(60), |s| s.contains("sort REQS desc"));
    assert!(up, "qmon top did not draw its screen; pane:\n{s}");
    assert!(s.contains("group process"), "{s}");

    let _py = KillOnDrop(
        Command::new(qmon_e2e::python_bin())
            .args(["-c", PY_LONG_LIVED, &srv.port.to_string(), &env.ca()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn the Python client")?,
    );
    let url = srv.url("/hello");
    let ca = env.ca();
    let mut curl_pids = Vec::new();
    for _ in 0..20 {
        let run = curl(&["--http1.1", "--cacert", &ca, "-o", "/dev/null", &url])?.ok();
        curl_pids.push(run.pid);
    }
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        let rows = data_rows(s);
        rows.len() == 2
            && rows
                .iter()
                .any(|r| r.starts_with("curl ") && pids_of(r) == Some(20))
            && rows
                .iter()
                .any(|r| r.starts_with("python3 ") && pids_of(r) == Some(1))
    });
    assert!(
        ok,
        "two program rows expected, curl with PIDS 20 and python3 with PIDS 1; pane:\n{s}"
    );
    assert!(s.contains("PIDS"), "{s}");
    let curl_row = data_rows(&s)
        .into_iter()
        .find(|r| r.starts_with("curl "))
        .unwrap_or_default()
        .to_string();
    assert!(
        curl_row.split_whitespace().nth(3) == Some("20"),
        "20 requests on the curl row: {curl_row}"
    );

    // p: one row per pid, 21 of them.
    tmux.keys(&["p"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.contains("group pid") && data_rows(s).len() == 21
    });
    assert!(ok, "p should show 21 pid rows; pane:\n{s}");
    let rows = data_rows(&s);
    assert!(rows.iter().all(|r| pids_of(r) == Some(1)), "{s}");
    for pid in &curl_pids {
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("curl[{pid}] "))),
            "curl pid {pid} has no row; pane:\n{s}"
        );
    }
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("python3[")).count(),
        1,
        "{s}"
    );
    // p again: programs.
    tmux.keys(&["p"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.contains("group process") && data_rows(s).len() == 2
    });
    assert!(ok, "p again should go back to 2 program rows; pane:\n{s}");

    // c: the selected row's charts; Esc closes them.
    tmux.keys(&["Home", "c"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.contains("charts of ")
            && s.contains("requests/s")
            && s.contains("latency")
            && s.contains("errors %")
    });
    assert!(ok, "c should open the charts; pane:\n{s}");
    assert!(s.contains("1s buckets"), "{s}");
    assert!(!s.contains("PROCESS"), "the table is replaced; pane:\n{s}");
    assert!(tmux.alternate_on(), "still in the alternate screen");
    tmux.keys(&["Escape"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        !s.contains("charts of ") && data_rows(s).len() == 2
    });
    assert!(ok, "Esc should close the charts; pane:\n{s}");

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        !s.contains("sort REQS") && s.lines().any(|l| l.trim_end() == "TOPSHELL$")
    });
    assert!(ok, "q should restore the shell; pane:\n{s}");
    assert!(!tmux.alternate_on(), "alternate screen still on");
    tmux.text("echo top-exit-$?");
    tmux.keys(&["Enter"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| {
        s.lines().any(|l| l.trim() == "top-exit-0")
    });
    assert!(
        ok,
        "qmon top should exit 0 and leave a sane tty; pane:\n{s}"
    );
    Ok(())
}

/// `qmon top`, capturing by itself, redacts as `qmon record` would with the
/// same config file: a name the file adds to the redaction list is hidden
/// in the drill-down's paths. (top used to apply only the built-in rules.)
#[test]
fn own_capture_redacts_with_the_config_files_rules() -> Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let port = format!(":{}", srv.port);
    let cfg = env.path().join("qmon.toml");
    std::fs::write(&cfg, "redact = [\"orderid\"]\n")?;
    let bin = qmon_bin()?;
    let tmux = Tmux::start()?;
    tmux.text(&format!(
        "{} top --config {} --db {} --interval 500ms --group host-route --filter {port}",
        bin.display(),
        cfg.display(),
        env.path().join("none.db").display()
    ));
    tmux.keys(&["Enter"]);
    let (up, s) = tmux.wait(Duration::from_secs(60), |s| s.contains("sort REQS desc"));
    assert!(up, "qmon top did not draw its screen; pane:\n{s}");
    let url = srv.url("/hello?orderid=abc123&page=2");
    curl(&["--cacert", &env.ca(), "-o", "/dev/null", &url])?.ok();
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        data_rows(s).iter().any(|r| r.contains(&port))
    });
    assert!(ok, "the call should show; pane:\n{s}");
    tmux.keys(&["Home", "Enter"]);
    let (ok, s) = tmux.wait(Duration::from_secs(5), |s| s.contains("calls of "));
    assert!(ok, "Enter should open the drill-down; pane:\n{s}");
    assert!(
        s.contains("/hello?orderid=[REDACTED:6]&page=2"),
        "the config's redact list should apply to top's own capture; pane:\n{s}"
    );
    assert!(!s.contains("abc123"), "{s}");
    tmux.keys(&["q"]);
    let (ok, s) = tmux.wait(Duration::from_secs(20), |s| {
        !s.contains("sort REQS") && s.lines().any(|l| l.trim_end() == "TOPSHELL$")
    });
    assert!(ok, "q should restore the shell; pane:\n{s}");
    Ok(())
}
