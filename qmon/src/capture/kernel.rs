//! What the running kernel and this process can do: decided once at start-up,
//! printed by `qmon doctor`, and turned into one clear error line when
//! capture cannot work.

use std::fs;
use std::path::Path;

/// How the socket hooks are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// kprobes on the syscall functions (ksyscall).
    Kprobe,
    /// Syscall tracepoints, for kernels without kprobes.
    Tracepoint,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Kprobe => "kprobe",
            AttachMode::Tracepoint => "tracepoint",
        }
    }
}

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Capability bits (linux/capability.h) qmon cares about.
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

#[derive(Debug, Clone)]
pub struct Features {
    pub kernel_release: String,
    pub btf: bool,
    pub tracefs: bool,
    /// The kprobe perf PMU exists (CONFIG_KPROBE_EVENTS).
    pub kprobes: bool,
    pub syscall_tracepoints: bool,
    /// uprobe perf PMU exists.
    pub uprobes: bool,
    /// Effective capability mask of this process.
    pub cap_eff: u64,
}

impl Features {
    pub fn probe() -> Self {
        Features {
            kernel_release: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            btf: Path::new(BTF_VMLINUX).exists(),
            tracefs: Path::new(TRACEFS).join("events").is_dir(),
            kprobes: Path::new("/sys/bus/event_source/devices/kprobe/type").exists(),
            syscall_tracepoints: Path::new(TRACEFS)
                .join("events/syscalls/sys_enter_connect")
                .is_dir(),
            uprobes: Path::new("/sys/bus/event_source/devices/uprobe/type").exists(),
            cap_eff: read_cap_eff().unwrap_or(0),
        }
    }

    pub fn has_cap(&self, cap: u32) -> bool {
        self.cap_eff & (1u64 << cap) != 0
    }

    /// The attach mode for socket hooks: kprobes where the kernel has them.
    pub fn preferred_mode(&self) -> AttachMode {
        if self.kprobes {
            AttachMode::Kprobe
        } else {
            AttachMode::Tracepoint
        }
    }

    /// Everything capture needs, as one line per problem saying how to fix it.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.has_cap(CAP_BPF) || self.has_cap(CAP_SYS_ADMIN)) {
            out.push("qmon needs CAP_BPF and CAP_PERFMON (or root) to load BPF programs: run it with sudo, or grant them with `setcap cap_bpf,cap_perfmon,cap_sys_admin,cap_sys_ptrace,cap_dac_read_search+ep $(which qmon)`".into());
        } else if !self.has_cap(CAP_SYS_ADMIN) {
            out.push("qmon needs CAP_SYS_ADMIN to attach the OpenSSL uprobes: run it with sudo or add cap_sys_admin".into());
        }
        if !self.btf {
            out.push(format!(
                "the kernel has no BTF ({BTF_VMLINUX} is missing): qmon needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian/Ubuntu/RHEL kernels from 5.8 have it)"
            ));
        }
        if !self.tracefs {
            out.push(format!(
                "tracefs is not mounted at {TRACEFS}: run `mount -t tracefs tracefs {TRACEFS}`"
            ));
        } else if !self.kprobes && !self.syscall_tracepoints {
            out.push("the kernel has neither kprobes nor syscall tracepoints (CONFIG_KPROBES, CONFIG_FTRACE_SYSCALLS): qmon cannot see connections".into());
        }
        out
    }
}

fn read_cap_eff() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Mount tracefs if it is missing and we are allowed to. Returns whether it
/// is available afterwards.
pub fn ensure_tracefs() -> bool {
    if Path::new(TRACEFS).join("events").is_dir() {
        return true;
    }
    let target = std::ffi::CString::new(TRACEFS).ok();
    let fstype = std::ffi::CString::new("tracefs").ok();
    if let (Some(target), Some(fstype)) = (target, fstype) {
        // SAFETY: all pointers are valid NUL-terminated strings or null.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            tracing::info!("mounted tracefs at {TRACEFS}");
        }
    }
    Path::new(TRACEFS).join("events").is_dir()
}

/// Offset to turn the BPF clock (CLOCK_MONOTONIC) into unix time.
pub fn monotonic_to_unix_offset_ns() -> i128 {
    let mut mono = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut real = mono;
    // SAFETY: valid out-pointers.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono);
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut real);
    }
    let ns = |t: libc::timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
    ns(real) - ns(mono)
}
