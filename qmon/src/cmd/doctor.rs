//! `qmon doctor`: can capture work here, and if not, what to do about it.

use std::process::ExitCode;

use qmon::capture::kernel::{self, Features};
use qmon::capture::tls_libs::{self, Inspection};

use crate::cli::DoctorArgs;

pub fn run(_args: DoctorArgs) -> anyhow::Result<ExitCode> {
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
    println!("TLS libraries in running processes:");
    let libs = tls_libs::scan_all();
    if libs.is_empty() {
        println!(
            "  none mapped right now (libraries loaded later are attached as processes open them)"
        );
    }
    for lib in libs {
        match tls_libs::inspect(&lib.host_path) {
            i @ Inspection::Usable { .. } => println!(
                "  attach  {} (pid {}, inode {}): {}",
                lib.path,
                lib.pid,
                lib.id.ino,
                i.names().join(", ")
            ),
            Inspection::Skip { reason } => {
                println!("  skip    {} (pid {}): {reason}", lib.path, lib.pid)
            }
        }
    }
    let problems = f.problems();
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
