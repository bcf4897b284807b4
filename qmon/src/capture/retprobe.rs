//! Syscall-return kprobes defined through tracefs, so their instance pool
//! can be sized.
//!
//! A kretprobe needs a free instance for every call in flight, and the pool
//! the perf kprobe PMU gives it (what libbpf uses) is max(10, 2 × CPUs) for
//! the whole host. Every thread blocked in read(), recv() or accept() holds
//! one, so a few idle readers are enough for the kernel to skip returns, and
//! a skipped return is a lost call: its bytes never reach the ring. A
//! `kprobe_events` definition (`r<MAXACTIVE>:`) sets the pool size; the
//! program is then attached to that event with perf_event_open, as libbpf's
//! legacy mode does. See docs/compatibility.md.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libbpf_rs::Link;

use super::kernel::TRACEFS;

/// Instances per return probe: the kernel's upper bound
/// (KRETPROBE_MAXACTIVE_MAX). A few hundred bytes of kernel memory each.
pub const MAXACTIVE: u32 = 4096;

/// The pool size to define, from `QMON_KRETPROBE_MAXACTIVE` (1..=4096), or
/// `None` for "0": attach through libbpf with the kernel's default pool, as
/// an escape hatch where tracefs definitions are unwanted.
pub fn maxactive() -> Option<u32> {
    match std::env::var("QMON_KRETPROBE_MAXACTIVE")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(0) => None,
        Some(n) => Some(n.min(MAXACTIVE)),
        None => Some(MAXACTIVE),
    }
}

/// Prefix of the tracefs event groups qmon creates: `qmon_<pid>`.
const GROUP_PREFIX: &str = "qmon_";

/// A return probe qmon defined in tracefs; removed again on drop.
pub struct TracefsRetprobe {
    // Dropped before the definition is removed (the kernel refuses to
    // remove an event that is still open).
    link: Option<Link>,
    spec: String,
}

impl TracefsRetprobe {
    pub fn link(&self) -> Option<&Link> {
        self.link.as_ref()
    }
}

impl Drop for TracefsRetprobe {
    fn drop(&mut self) {
        drop(self.link.take());
        let _ = append(&kprobe_events(), &format!("-:{}", self.spec));
    }
}

fn tracefs() -> PathBuf {
    PathBuf::from(TRACEFS)
}

fn kprobe_events() -> PathBuf {
    tracefs().join("kprobe_events")
}

/// Append one definition. Never opened for truncation: that deletes every
/// kprobe on the host, other tools' included.
fn append(file: &Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(file)?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// The kernel function behind a syscall, as kprobes see it. x86-64 and
/// arm64 kernels have wrapped syscalls in `__<arch>_sys_` since 4.17/4.19,
/// well below qmon's 5.8 minimum, so there is nothing to probe for (reading
/// /proc/kallsyms to check took about a second per probe in an emulated
/// guest). A wrong name fails the definition, and qmon falls back to
/// libbpf's attach.
pub fn syscall_function(name: &str) -> String {
    if cfg!(target_arch = "x86_64") {
        format!("__x64_sys_{name}")
    } else if cfg!(target_arch = "aarch64") {
        format!("__arm64_sys_{name}")
    } else {
        format!("sys_{name}")
    }
}

/// Define `r<maxactive>:qmon_<pid>/<event> <func>` and attach `prog` to it.
pub fn attach(
    prog: &libbpf_rs::ProgramMut<'_>,
    func: &str,
    event: &str,
    maxactive: u32,
) -> Result<TracefsRetprobe, String> {
    let spec = format!("{GROUP_PREFIX}{}/{event}", std::process::id());
    let file = kprobe_events();
    let def = format!("r{maxactive}:{spec} {func}");
    if let Err(e) = append(&file, &def) {
        // Left over from an earlier run of this pid (pids are reused).
        let _ = append(&file, &format!("-:{spec}"));
        append(&file, &def).map_err(|_| format!("defining `{def}` in {}: {e}", file.display()))?;
    }
    // From here on, drop removes the definition.
    let mut probe = TracefsRetprobe { link: None, spec };
    let id_path = tracefs().join("events").join(&probe.spec).join("id");
    let id: u64 = std::fs::read_to_string(&id_path)
        .map_err(|e| format!("{}: {e}", id_path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", id_path.display()))?;
    let pfd = open_tracepoint_event(id)?;
    let link = prog
        .attach_perf_event(pfd.as_raw_fd())
        .map_err(|e| format!("attaching {event}: {e}"))?;
    // The link owns the perf event now and closes it on detach.
    std::mem::forget(pfd);
    probe.link = Some(link);
    Ok(probe)
}

fn open_tracepoint_event(id: u64) -> Result<OwnedFd, String> {
    // SAFETY: an all-zero perf_event_attr is valid; the fields the kernel
    // needs are set below.
    let mut attr: libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_sys::PERF_TYPE_TRACEPOINT;
    attr.size = std::mem::size_of::<libbpf_sys::perf_event_attr>() as u32;
    attr.config = id;
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 1;
    // SAFETY: perf_event_open with a valid attr pointer; pid -1 and cpu 0
    // means every task on any CPU, as for other kprobe events.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const libbpf_sys::perf_event_attr,
            -1i32,
            0i32,
            -1i32,
            libc::c_ulong::from(libbpf_sys::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(format!(
            "perf_event_open: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Remove definitions left by qmon processes that died without cleaning
/// up (SIGKILL, crash). Other tools' kprobes are never touched.
pub fn remove_stale() {
    let file = kprobe_events();
    let Ok(defs) = std::fs::read_to_string(&file) else {
        return;
    };
    for spec in stale_specs(&defs, |pid| Path::new(&format!("/proc/{pid}")).exists()) {
        match append(&file, &format!("-:{spec}")) {
            Ok(()) => tracing::info!("removed a kprobe left by an earlier qmon: {spec}"),
            Err(e) => tracing::debug!("could not remove stale kprobe {spec}: {e}"),
        }
    }
}

/// `group/event` of every qmon definition in `defs` (kprobe_events text)
/// whose owner is not alive.
fn stale_specs(defs: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    defs.lines()
        .filter_map(|l| {
            let head = l.split_whitespace().next()?;
            let spec = head.split_once(':')?.1;
            let group = spec.split_once('/')?.0;
            let pid: u32 = group.strip_prefix(GROUP_PREFIX)?.parse().ok()?;
            (pid != std::process::id() && !alive(pid)).then(|| spec.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_qmon_groups_are_stale() {
        let defs = "r4096:qmon_111/kp_read_exit __x64_sys_read\n\
                    r4096:qmon_222/kp_read_exit __x64_sys_read\n\
                    p:kprobes/other_tool do_sys_open\n\
                    r:qmonx_333/ev __x64_sys_read\n\
                    r16:qmon_abc/ev __x64_sys_read\n";
        assert_eq!(
            stale_specs(defs, |pid| pid == 222),
            vec!["qmon_111/kp_read_exit".to_string()]
        );
    }
}
