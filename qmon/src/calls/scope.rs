//! Capture scope: which processes and destinations are recorded.
//!
//! Rules are simple lists. A call is in scope when it matches every
//! non-empty include list and no exclude list. Loopback destinations are in
//! scope by default (`loopback = false` drops them).

use std::net::{IpAddr, SocketAddr};

use super::Call;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub include_comm: Vec<String>,
    pub exclude_comm: Vec<String>,
    pub include_pid: Vec<u32>,
    pub exclude_pid: Vec<u32>,
    /// Container ids, or prefixes of them (12 characters is the usual short form).
    pub include_container: Vec<String>,
    pub exclude_container: Vec<String>,
    /// Host names; `*.example.com` matches subdomains.
    pub include_host: Vec<String>,
    pub exclude_host: Vec<String>,
    pub include_port: Vec<u16>,
    pub exclude_port: Vec<u16>,
    pub loopback: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            include_comm: Vec::new(),
            exclude_comm: Vec::new(),
            include_pid: Vec::new(),
            exclude_pid: Vec::new(),
            include_container: Vec::new(),
            exclude_container: Vec::new(),
            include_host: Vec::new(),
            exclude_host: Vec::new(),
            include_port: Vec::new(),
            exclude_port: Vec::new(),
            loopback: true,
        }
    }
}

fn listed<T: PartialEq>(include: &[T], exclude: &[T], v: &T) -> bool {
    (include.is_empty() || include.contains(v)) && !exclude.contains(v)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

fn container_matches(pattern: &str, id: &str) -> bool {
    !pattern.is_empty() && id.starts_with(pattern)
}

impl Scope {
    /// Everything is recorded.
    pub fn is_everything(&self) -> bool {
        *self == Scope::default()
    }

    /// Decided by process alone (before any bytes are parsed), so the
    /// connection can be switched off in the kernel. `None`: not decidable
    /// yet (a container rule needs the process's cgroup).
    pub fn allows_process(&self, pid: u32, comm: &str) -> bool {
        listed(&self.include_pid, &self.exclude_pid, &pid)
            && (self.include_comm.is_empty() || self.include_comm.iter().any(|c| c == comm))
            && !self.exclude_comm.iter().any(|c| c == comm)
    }

    /// Decided by destination address alone.
    pub fn allows_remote(&self, remote: Option<SocketAddr>) -> bool {
        match remote {
            Some(r) => {
                (self.loopback || !is_loopback(r.ip()))
                    && (self.include_port.is_empty() && self.exclude_port.is_empty()
                        || listed(&self.include_port, &self.exclude_port, &r.port()))
            }
            None => true,
        }
    }

    /// The full decision for a finished call.
    pub fn allows(&self, call: &Call) -> bool {
        let p = &call.process;
        if !self.allows_process(p.pid, &p.comm) || !self.allows_remote(call.conn.remote) {
            return false;
        }
        let cid = p.container_id.as_deref().unwrap_or("");
        if !self.include_container.is_empty()
            && !self
                .include_container
                .iter()
                .any(|c| container_matches(c, cid))
        {
            return false;
        }
        if self
            .exclude_container
            .iter()
            .any(|c| container_matches(c, cid))
        {
            return false;
        }
        if !self.include_host.is_empty()
            && !self
                .include_host
                .iter()
                .any(|h| host_matches(h, &call.host))
        {
            return false;
        }
        if self
            .exclude_host
            .iter()
            .any(|h| host_matches(h, &call.host))
        {
            return false;
        }
        if let Some(port) = call.port {
            if !self.include_port.is_empty() && !self.include_port.contains(&port) {
                return false;
            }
            if self.exclude_port.contains(&port) {
                return false;
            }
        }
        true
    }

    /// One line per rule, for `qmon doctor` and the start-up log.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rule = |name: &str, v: String| {
            if !v.is_empty() {
                out.push(format!("{name}: {v}"));
            }
        };
        let join = |v: &[String]| v.join(", ");
        let nums = |v: &[u32]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ports = |v: &[u16]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        rule("only processes named", join(&self.include_comm));
        rule("not processes named", join(&self.exclude_comm));
        rule("only pids", nums(&self.include_pid));
        rule("not pids", nums(&self.exclude_pid));
        rule("only containers", join(&self.include_container));
        rule("not containers", join(&self.exclude_container));
        rule("only hosts", join(&self.include_host));
        rule("not hosts", join(&self.exclude_host));
        rule("only ports", ports(&self.include_port));
        rule("not ports", ports(&self.exclude_port));
        out.push(format!(
            "loopback destinations: {}",
            if self.loopback {
                "included"
            } else {
                "excluded"
            }
        ));
        if out.len() == 1 {
            out.insert(0, "all processes, all hosts".into());
        }
        out
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{ConnInfo, Exchange, ProcessInfo, Protocol};

    fn call(pid: u32, comm: &str, host: &str, remote: &str, container: Option<&str>) -> Call {
        Call {
            process: ProcessInfo {
                pid,
                comm: comm.into(),
                exe: None,
                args: Vec::new(),
                container_id: container.map(str::to_string),
            }
            .into(),
            conn: ConnInfo {
                conn_id: 1,
                remote: Some(remote.parse().unwrap()),
                tls: true,
                tls_lib: None,
            },
            exchange: Exchange::new(Protocol::Http11),
            host: host.into(),
            port: remote.parse::<SocketAddr>().ok().map(|r| r.port()),
            route: None,
        }
    }

    #[test]
    fn default_records_everything_including_loopback() {
        let s = Scope::default();
        assert!(s.is_everything());
        assert!(s.allows(&call(1, "curl", "localhost", "127.0.0.1:443", None)));
        assert_eq!(
            s.describe(),
            vec![
                "all processes, all hosts",
                "loopback destinations: included"
            ]
        );
    }

    #[test]
    fn include_and_exclude_lists() {
        let s = Scope {
            include_comm: vec!["curl".into(), "python3".into()],
            exclude_host: vec!["*.internal".into()],
            exclude_port: vec![9464],
            loopback: false,
            ..Scope::default()
        };
        assert!(s.allows(&call(1, "curl", "api.example.com", "192.0.2.1:443", None)));
        assert!(!s.allows(&call(1, "wget", "api.example.com", "192.0.2.1:443", None)));
        assert!(!s.allows(&call(1, "curl", "db.internal", "192.0.2.1:443", None)));
        assert!(s.allows(&call(1, "curl", "internal", "192.0.2.1:443", None)));
        assert!(!s.allows(&call(1, "curl", "localhost", "127.0.0.1:443", None)));
        assert!(!s.allows(&call(1, "curl", "localhost", "[::1]:443", None)));
        assert!(!s.allows(&call(1, "curl", "x", "192.0.2.1:9464", None)));
        assert!(!s.allows_process(1, "wget"));
        assert!(!s.allows_remote(Some("127.0.0.1:1".parse().unwrap())));
    }

    #[test]
    fn containers_by_prefix_and_pids() {
        let id = "3f1e2b7c9a0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f";
        let s = Scope {
            include_container: vec!["3f1e2b7c9a0d".into()],
            exclude_pid: vec![7],
            ..Scope::default()
        };
        assert!(s.allows(&call(1, "curl", "h", "192.0.2.1:443", Some(id))));
        assert!(!s.allows(&call(1, "curl", "h", "192.0.2.1:443", None)));
        assert!(!s.allows(&call(7, "curl", "h", "192.0.2.1:443", Some(id))));
    }
}
