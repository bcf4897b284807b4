//! Configuration file and SIGHUP reload, against a real recorder: reloads
//! under steady traffic lose no calls, a bad file is rejected and the old
//! configuration stays, and a new scope takes effect without a restart.

use qmon_e2e::{python, query, serial, wait_until, Env, Qmon, TestServer};
use serde_json::Value;
use std::time::Duration;

/// A client making `n` sequential requests, one connection each, about
/// 20 ms apart, each path tagged with its index.
const PY_LOOP: &str = r#"
import sys, time, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    urllib.request.urlopen(f"{base}/hello?i={i}").read()
    time.sleep(0.02)
"#;

fn count(db: &std::path::Path, where_: &str) -> i64 {
    let rows = query(
        db,
        &format!("SELECT count(*) AS n FROM calls WHERE {where_}"),
    )
    .expect("qmon query");
    rows[0].get("n").and_then(Value::as_i64).expect("count")
}

fn sighup(pid: u32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(pid as i32, libc::SIGHUP) },
        0,
        "kill -HUP"
    );
}

#[test]
fn sighup_under_traffic_loses_no_calls_and_rejects_bad_files() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let cfg = env.path().join("qmon.toml");
    std::fs::write(&cfg, "[filter]\nexclude_comm = [\"curl\"]\n")?;
    let qmon = Qmon::record(&db, &["--config", cfg.to_str().unwrap()])?;

    let n = 150;
    let base = srv.url("");
    let base = base.trim_end_matches('/').to_string();
    let code = PY_LOOP.to_string();
    let client = std::thread::spawn(move || python(&code, &[&base, &n.to_string()], &[]));
    // Reload repeatedly while the client runs: valid, invalid, valid again.
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        if i == 2 {
            std::fs::write(&cfg, "retian = \"1d\"\n")?; // a typo: must be rejected
        } else {
            std::fs::write(
                &cfg,
                format!(
                    "body_limit = {}\n[filter]\nexclude_comm = [\"curl\"]\n",
                    1024 + i
                ),
            )?;
        }
        sighup(qmon.pid());
    }
    let run = client.join().expect("client thread")?.ok();
    let pid = run.pid;
    assert!(
        wait_until(Duration::from_secs(10), || count(
            &db,
            &format!("pid = {pid}")
        ) >= n),
        "expected {n} calls from the client"
    );
    let out = qmon.stop();
    out.assert_clean_exit();
    // Every request, exactly once, none incomplete.
    assert_eq!(count(&db, &format!("pid = {pid}")), n);
    assert_eq!(
        count(
            &db,
            &format!("pid = {pid} AND error IS NULL AND status = 200")
        ),
        n
    );
    let distinct = query(
        &db,
        &format!("SELECT count(DISTINCT path) AS n FROM calls WHERE pid = {pid}"),
    )?;
    assert_eq!(distinct[0].get("n").and_then(Value::as_i64), Some(n));
    let log = out.stderr_tail();
    assert!(
        log.contains("configuration reload rejected") && log.contains("did you mean `retain`"),
        "bad config not reported: {log}"
    );
    assert!(
        log.contains("configuration reloaded"),
        "no reload logged: {log}"
    );
    Ok(())
}

#[test]
fn reloaded_scope_takes_effect_without_restart() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", None)?;
    let db = env.path().join("q.db");
    let cfg = env.path().join("qmon.toml");
    std::fs::write(&cfg, "[filter]\nexclude_comm = [\"python3\"]\n")?;
    let qmon = Qmon::record(&db, &["--config", cfg.to_str().unwrap()])?;
    let get = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()";
    let before = python(get, &[&srv.url("/hello?phase=before")], &[])?.ok();
    std::fs::write(&cfg, "[filter]\nexclude_comm = [\"curl\"]\n")?;
    sighup(qmon.pid());
    // The reload is applied on the recorder's next tick (about a second).
    std::thread::sleep(Duration::from_millis(2500));
    let after = python(get, &[&srv.url("/hello?phase=after")], &[])?.ok();
    std::thread::sleep(Duration::from_millis(500));
    let out = qmon.stop();
    out.assert_clean_exit();
    assert_eq!(
        count(&db, &format!("pid = {}", before.pid)),
        0,
        "excluded process was recorded"
    );
    assert_eq!(
        count(
            &db,
            &format!("pid = {} AND path LIKE '%phase=after'", after.pid)
        ),
        1
    );
    Ok(())
}

#[test]
fn bad_config_at_start_is_one_clear_line() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let cfg = env.path().join("qmon.toml");
    std::fs::write(&cfg, "ring_size = 1000\n")?;
    let out = std::process::Command::new(qmon_e2e::qmon_bin()?)
        .args(["record", "--db", env.path().join("q.db").to_str().unwrap()])
        .args(["--config", cfg.to_str().unwrap()])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("key `ring_size` = 1000 is not allowed: expected a power of two"),
        "{err}"
    );
    assert!(
        !env.path().join("q.db").exists(),
        "database created despite the bad config"
    );
    Ok(())
}
