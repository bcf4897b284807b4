//! CLI contract outside capture itself: `qmon doctor` as root, and a clear
//! one-line refusal when run without privileges.

use qmon_e2e::{qmon_bin, serial};
use std::process::{Command, Stdio};

#[test]
fn doctor_reports_capture_can_work_as_root() -> anyhow::Result<()> {
    let _g = serial();
    let out = Command::new(qmon_bin()?)
        .arg("doctor")
        .stdin(Stdio::null())
        .output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "qmon doctor as root exited {}: {text}",
        out.status
    );
    assert!(
        text.contains("BTF"),
        "doctor should report kernel features: {text}"
    );
    Ok(())
}

/// Runs qmon as `nobody` (no capabilities) from a world-readable copy.
fn run_unprivileged(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let dir = tempfile::tempdir()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    let bin = dir.path().join("qmon");
    std::fs::copy(qmon_bin()?, &bin)?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()?;
    Ok(out)
}

#[test]
fn without_root_exits_nonzero_with_one_clear_line() -> anyhow::Result<()> {
    let _g = serial();
    let tmp = tempfile::tempdir()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777))?;
    let db = tmp.path().join("q.db").display().to_string();
    for args in [vec!["trace"], vec!["record", "--db", db.as_str()]] {
        let out = run_unprivileged(&args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "qmon {args:?} as nobody should fail, exited {}",
            out.status
        );
        let lines: Vec<&str> = stderr.trim().lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "qmon {args:?} as nobody should explain itself in one line, got: {stderr}"
        );
        let l = lines[0].to_lowercase();
        assert!(
            ["root", "cap_bpf", "privilege", "permission"]
                .iter()
                .any(|w| l.contains(w)),
            "the line should say what is missing: {stderr}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "nothing on stdout for a refused {args:?}"
        );
    }
    Ok(())
}
