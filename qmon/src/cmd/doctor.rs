//! `qmon doctor`: can capture work here, and if not, what to do about it.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use qmon::capture::kernel::{self, Features};
use qmon::capture::tls::{self, Inspection};
use qmon::config::{self, FileConfig};
use qmon::sinks::store;
use qmon_vocab::now_ns;

use crate::cli::DoctorArgs;

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    kernel::ensure_tracefs();
    let f = Features::probe();
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("kernel            {}", f.kernel_release);
    println!("BTF               {} ({})", yes(f.btf), kernel::BTF_VMLINUX);
    println!("tracefs           {} ({})", yes(f.tracefs), kernel::TRACEFS);
    println!("kprobes           {}", yes(f.kprobes));
    println!("syscall tracepoints {}", yes(f.syscall_tracepoints));
    println!("uprobes           {}", yes(f.uprobes));
    println!("ring buffer       {}", yes(f.btf)); // BPF_MAP_TYPE_RINGBUF: 5.8, as is BTF in distros
    println!(
        "socket hooks      {} (kprobes where the kernel has them, else syscall tracepoints)",
        f.preferred_mode().as_str()
    );
    println!("privileges:");
    for (name, cap) in [
        ("CAP_BPF", kernel::CAP_BPF),
        ("CAP_PERFMON", kernel::CAP_PERFMON),
        ("CAP_SYS_ADMIN", kernel::CAP_SYS_ADMIN),
        ("CAP_SYS_PTRACE", kernel::CAP_SYS_PTRACE),
        ("CAP_DAC_READ_SEARCH", kernel::CAP_DAC_READ_SEARCH),
    ] {
        println!("  {name:<20} {}", yes(f.has_cap(cap)));
    }
    tls_stacks();
    let mut problems = f.problems();

    // Configuration and capture scope.
    let cfg_path = config::locate(args.config.as_deref());
    let cfg = match &cfg_path {
        None => {
            println!(
                "config            none ({} does not exist; defaults apply)",
                config::DEFAULT_PATH
            );
            FileConfig::default()
        }
        Some(p) => match config::load(p) {
            Ok(c) => {
                println!("config            {} (valid)", p.display());
                c
            }
            Err(e) => {
                problems.push(e.to_string());
                println!("config            {} (INVALID)", p.display());
                FileConfig::default()
            }
        },
    };
    println!("capture scope:");
    for line in cfg.scope.describe() {
        println!("  {line}");
    }

    // Database and recorder.
    let db: PathBuf = args
        .db
        .clone()
        .or(cfg.db.clone())
        .unwrap_or_else(|| PathBuf::from(store::DEFAULT_DB_PATH));
    database(&db, &mut problems);

    if problems.is_empty() {
        println!("status            ok: capture can run");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem           {p}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Per TLS stack of the table: where qmon looks for it, and every copy in a
/// running process it would attach to, or why it would skip it.
fn tls_stacks() {
    println!("TLS libraries in running processes:");
    let libs = tls::scan_all();
    for stack in tls::STACKS {
        let mut found = Vec::new();
        if let Some(prefix) = stack.files.lib_prefix {
            found.push(format!("{prefix}*.so*"));
        }
        if stack.files.executables {
            found.push("executables linking it statically (checked at exec)".to_string());
        }
        println!(
            "  {} ({}): {}; fd by {}",
            stack.name,
            stack.title,
            found.join(", "),
            stack.fd.as_str()
        );
        let mut none = true;
        for lib in libs.iter().filter(|l| l.stack == *stack) {
            none = false;
            match tls::inspect(&lib.host_path, stack) {
                i @ Inspection::Usable { .. } => println!(
                    "    attach  {} (pid {}, inode {}): {}",
                    lib.path,
                    lib.pid,
                    lib.id.ino,
                    i.names().join(", ")
                ),
                Inspection::Skip { reason } => {
                    println!("    skip    {} (pid {}): {reason}", lib.path, lib.pid)
                }
            }
        }
        if none {
            println!(
                "    none mapped right now (libraries loaded later are attached as processes open them)"
            );
        }
    }
}

fn database(db: &Path, problems: &mut Vec<String>) {
    if !db.exists() {
        println!(
            "database          {} (not created yet: `qmon record` creates it)",
            db.display()
        );
        println!("recorder          not running");
        return;
    }
    let size: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
        .map(|m| m.len())
        .sum();
    let mode = std::fs::metadata(db)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0);
    let health = qmon::query::open_read_only(db)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let check: String = c
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| e.to_string())?;
            let calls: i64 = c
                .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
                .map_err(|e| e.to_string())?;
            Ok((check, calls))
        });
    match health {
        Ok((check, calls)) => {
            println!(
                "database          {} ({:.1} MiB, {calls} calls, mode {mode:o}, integrity {check})",
                db.display(),
                size as f64 / (1024.0 * 1024.0)
            );
            if check != "ok" {
                problems.push(format!(
                    "database {} fails its integrity check: {check}",
                    db.display()
                ));
            }
        }
        Err(e) => problems.push(format!("database {} cannot be read: {e}", db.display())),
    }
    if mode & 0o077 != 0 {
        problems.push(format!(
            "database {} is readable by others (mode {mode:o}); it holds other programs' traffic: chmod 600 it",
            db.display()
        ));
    }
    match store::read_recorder_status(db) {
        Ok(Some(st)) if st.is_live(now_ns()) => println!(
            "recorder          running (pid {}, {} calls, {} events lost)",
            st.pid, st.calls, st.lost_events
        ),
        Ok(Some(st)) => println!("recorder          not running (last: pid {})", st.pid),
        _ => println!("recorder          not running"),
    }
}
