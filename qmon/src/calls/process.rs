//! Process metadata: comm, exe, cmdline, container id. Read from /proc while
//! the process lives (at exec, or at first sight), falling back to what the
//! kernel event carried when the process is already gone.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use super::ProcessInfo;

/// Bounded cache of process metadata by pid. Entries are shared with the
/// calls that name them: a process makes many calls, and copying its argv
/// into each was a dozen allocations per call, freed on another thread.
#[derive(Debug, Default)]
pub struct ProcTable {
    procs: HashMap<u32, Arc<ProcessInfo>>,
}

const MAX_PROCS: usize = 65536;
const MAX_CMDLINE: usize = 4096;

impl ProcTable {
    /// Metadata for `pid`, reading /proc on first sight.
    pub fn get(&mut self, pid: u32, comm_hint: &str) -> Arc<ProcessInfo> {
        if !self.procs.contains_key(&pid) {
            if self.procs.len() >= MAX_PROCS {
                // Processes whose exit event was lost: start over rather
                // than grow without bound.
                self.procs.clear();
            }
            self.procs.insert(pid, Arc::new(read_proc(pid, comm_hint)));
        }
        self.procs[&pid].clone()
    }

    /// Re-read after exec: the image, and so exe and cmdline, changed.
    pub fn refresh(&mut self, pid: u32, comm_hint: &str) {
        self.procs.insert(pid, Arc::new(read_proc(pid, comm_hint)));
    }

    pub fn remove(&mut self, pid: u32) {
        self.procs.remove(&pid);
    }
}

pub fn read_proc(pid: u32, comm_hint: &str) -> ProcessInfo {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| comm_hint.to_string());
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let args = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            let raw = &raw[..raw.len().min(MAX_CMDLINE)];
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let container_id = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| container_id(&c));
    ProcessInfo {
        pid,
        comm,
        exe,
        args,
        container_id,
    }
}

/// Container id from a /proc/PID/cgroup text: the 64-hex id that docker,
/// containerd, CRI-O and podman put in the cgroup path.
pub fn container_id(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.rsplit(':').next().unwrap_or("");
        for seg in path.split('/').rev() {
            let seg = seg.trim_end_matches(".scope");
            let id = seg.rsplit(['-', ':']).next().unwrap_or(seg);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_of_one_process_share_its_metadata_until_it_execs() {
        let mut t = ProcTable::default();
        let pid = std::process::id();
        let a = t.get(pid, "hint");
        let b = t.get(pid, "hint");
        assert!(Arc::ptr_eq(&a, &b), "metadata copied per call");
        assert_eq!(a.pid, pid);
        t.refresh(pid, "hint");
        assert!(!Arc::ptr_eq(&a, &t.get(pid, "hint")), "exec not re-read");
    }

    const ID: &str = "3f1e2b7c9a0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f";

    #[test]
    fn container_ids_from_common_runtimes() {
        for text in [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!("0::/docker/{ID}"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope"),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
            format!("12:pids:/kubepods/besteffort/pod1/{ID}"),
        ] {
            assert_eq!(container_id(&text).as_deref(), Some(ID), "{text}");
        }
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }

    #[test]
    fn reads_own_process() {
        let me = read_proc(std::process::id(), "x");
        assert!(me.exe.is_some());
        assert!(!me.comm.is_empty());
    }

    #[test]
    fn gone_process_keeps_hint() {
        let p = read_proc(u32::MAX - 1, "curl");
        assert_eq!(p.comm, "curl");
        assert_eq!(p.exe, None);
    }
}
