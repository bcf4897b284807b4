//! Hold one thread still while its new TLS library is attached.
//!
//! A process that just opened a libssl copy qmon has not probed yet may call
//! SSL_write within milliseconds, and attaching a library's uprobes takes
//! about as long. `PTRACE_SEIZE` + `PTRACE_INTERRUPT` stop just that thread in
//! a ptrace-stop, which (unlike SIGSTOP) its parent never sees: no shell job
//! turns "Stopped". It happens once per new library file. If ptrace is not
//! allowed (no CAP_SYS_PTRACE, Yama scope 3, already traced), qmon attaches
//! without pausing and may miss that process's first calls.

use std::time::{Duration, Instant};

const PTRACE_SEIZE: libc::c_uint = 0x4206;
const PTRACE_INTERRUPT: libc::c_uint = 0x4207;
const PTRACE_EVENT_STOP: i32 = 128;
/// Longest qmon waits for the thread to stop before going on without it.
const STOP_WAIT: Duration = Duration::from_millis(50);

/// A stopped thread; resumed when dropped.
pub struct Paused {
    tid: libc::pid_t,
    /// Signal that arrived while stopping, re-delivered on resume.
    pending_signal: i32,
}

/// Stop thread `tid`. `None` if it cannot be stopped (or exited).
pub fn pause(tid: u32) -> Option<Paused> {
    let tid = tid as libc::pid_t;
    // SAFETY: ptrace/waitpid with valid arguments; failures are handled.
    unsafe {
        if libc::ptrace(PTRACE_SEIZE, tid, 0, 0) != 0 {
            return None;
        }
        if libc::ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 {
            libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0);
            return None;
        }
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            let mut status = 0;
            let r = libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG);
            if r == tid {
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    return None;
                }
                if libc::WIFSTOPPED(status) {
                    let event = status >> 16;
                    let sig = libc::WSTOPSIG(status);
                    // A signal-delivery-stop, not our interrupt: keep the
                    // signal to hand back on resume.
                    let pending_signal = if event == PTRACE_EVENT_STOP { 0 } else { sig };
                    return Some(Paused {
                        tid,
                        pending_signal,
                    });
                }
            }
            if r < 0 || Instant::now() >= deadline {
                // Could not confirm the stop: let it run.
                libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0);
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: the thread is in a ptrace-stop we own.
        unsafe {
            libc::ptrace(libc::PTRACE_DETACH, self.tid, 0, self.pending_signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The state letter from /proc/PID/stat, and the whole line.
    fn proc_state(pid: u32) -> (char, String) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let st = stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim()
            .chars()
            .next()
            .unwrap();
        (st, stat)
    }

    #[test]
    fn pauses_and_resumes_a_child_without_job_control_stop() {
        // Needs CAP_SYS_PTRACE or a same-uid child; the test suite runs as root.
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let p = pause(pid).expect("ptrace stop of our own child");
        // 't' = tracing stop, not 'T' (job-control stop a shell would see).
        let (st, state) = proc_state(pid);
        assert_eq!(st, 't', "{state}");
        drop(p);
        std::thread::sleep(Duration::from_millis(20));
        let (st, state) = proc_state(pid);
        assert_eq!(st, 'S', "resumed and sleeping: {state}");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn gone_thread_is_not_paused() {
        assert!(pause(u32::MAX / 2).is_none());
    }
}
