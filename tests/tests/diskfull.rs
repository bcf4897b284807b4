//! A full disk: qmon keeps running, says clearly that writes fail and
//! counts what it drops, and resumes storing once there is room again.
//! Runs on a small tmpfs mounted for the test.

use qmon_e2e::{curl, query, serial, wait_until, Env, Qmon, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()?;
        anyhow::ensure!(st.success(), "mount tmpfs failed");
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &Path) -> anyhow::Result<()> {
    // Write until ENOSPC; leaves the filesystem completely full.
    let st = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", path.display()))
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(!st.success(), "dd should have run out of space");
    Ok(())
}

#[test]
fn full_disk_drops_counts_and_resumes() -> anyhow::Result<()> {
    let _g = serial();
    let env = Env::new()?;
    let mnt = Tmpfs::mount(&env.path().join("small"), "4m")?;
    let db = mnt.0.join("q.db");
    let srv = TestServer::start("127.0.0.1", None)?;
    let mut qmon = Qmon::record(&db, &["--body-limit", "65536"])?;

    // Some calls while there is room.
    curl(&["-o", "/dev/null", &srv.url("/hello?phase=before")])?.ok();
    assert!(
        wait_until(Duration::from_secs(10), || {
            query(
                &db,
                "SELECT count(*) AS n FROM calls WHERE path LIKE '%phase=before'",
            )
            .ok()
            .and_then(|r| r[0].get("n").and_then(Value::as_i64))
                == Some(1)
        }),
        "first call not stored"
    );

    // Fill the disk, then make calls with large bodies: their rows cannot
    // be written.
    let filler = mnt.0.join("filler");
    fill(&filler)?;
    for i in 0..20 {
        curl(&[
            "-o",
            "/dev/null",
            &srv.url(&format!("/big?n=60000&phase=full&i={i}")),
        ])?
        .ok();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        qmon.is_running(),
        "the recorder must not crash on a full disk"
    );

    // Room again: new calls are stored.
    std::fs::remove_file(&filler)?;
    curl(&["-o", "/dev/null", &srv.url("/hello?phase=after")])?.ok();
    assert!(
        wait_until(Duration::from_secs(15), || {
            query(
                &db,
                "SELECT count(*) AS n FROM calls WHERE path LIKE '%phase=after'",
            )
            .ok()
            .and_then(|r| r[0].get("n").and_then(Value::as_i64))
                == Some(1)
        }),
        "writes did not resume after space was freed"
    );
    let out = qmon.stop();
    out.assert_clean_exit();
    let log = out.stderr.clone();
    assert!(
        log.contains("store write failed") && log.contains("disk is full"),
        "no clear error about the full disk: {log}"
    );
    assert!(
        log.contains("store writes resumed"),
        "resume not logged: {log}"
    );
    // What was dropped is counted and visible.
    let st = query(&db, "SELECT write_dropped FROM recorder_status")?;
    let dropped = st[0]
        .get("write_dropped")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    assert!(dropped >= 1, "dropped rows not counted: {st:?}");
    // Everything committed before the disk filled is still there.
    let before = query(
        &db,
        "SELECT count(*) AS n FROM calls WHERE path LIKE '%phase=before'",
    )?;
    assert_eq!(before[0].get("n").and_then(Value::as_i64), Some(1));
    let ok = query(&db, "PRAGMA integrity_check")?;
    assert_eq!(
        ok[0].get("integrity_check").and_then(Value::as_str),
        Some("ok")
    );
    Ok(())
}
