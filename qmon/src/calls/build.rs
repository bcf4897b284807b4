//! Building a [`Call`] from what the connection table finished: the
//! exchange, plus the process that made it (metadata read from /proc), the
//! host and port it asked for, and its route.

use std::net::SocketAddr;

use super::process::ProcTable;
use super::route::route;
use super::{Call, ConnInfo, Exchange};
use crate::connections::ConnFacts;

/// Turns finished exchanges into calls. Keeps the process metadata table,
/// so it also hears about execs and exits.
#[derive(Debug, Default)]
pub struct CallBuilder {
    procs: ProcTable,
}

impl CallBuilder {
    pub fn build(&mut self, conn: &ConnFacts, mut ex: Exchange) -> Call {
        let process = self.procs.get(conn.tgid, &conn.comm);
        let tls = conn.tls();
        if ex.scheme.is_none() {
            ex.scheme = Some(if tls { "https" } else { "http" }.to_string());
        }
        let (host, port) = host_port(ex.authority.as_deref(), conn.remote);
        let route = ex.path.as_deref().map(route);
        Call {
            process,
            conn: ConnInfo {
                conn_id: conn.conn_id,
                remote: conn.remote,
                tls,
                tls_lib: conn.source.filter(|_| tls).map(|s| s.as_str().to_string()),
            },
            exchange: ex,
            host,
            port,
            route,
        }
    }

    /// The process replaced its image: exe and command line changed.
    pub fn exec(&mut self, pid: u32, comm: &str) {
        self.procs.refresh(pid, comm);
    }

    pub fn exit(&mut self, pid: u32) {
        self.procs.remove(pid);
    }
}

/// Host and port the client asked for: from the authority, else the remote
/// address. IPv6 literals keep their brackets off.
pub fn host_port(authority: Option<&str>, remote: Option<SocketAddr>) -> (String, Option<u16>) {
    let remote_port = remote.map(|r| r.port());
    let Some(auth) = authority.map(str::trim).filter(|a| !a.is_empty()) else {
        return (
            remote.map(|r| r.ip().to_string()).unwrap_or_default(),
            remote_port,
        );
    };
    // Strip userinfo, if any.
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    if let Some(rest) = auth.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h.to_ascii_lowercase(), port.or(remote_port));
        }
    }
    match auth.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_ascii_lowercase(), Some(port)),
            Err(_) => (h.to_ascii_lowercase(), remote_port),
        },
        _ => (auth.to_ascii_lowercase(), remote_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_from_authority_or_remote() {
        let r = Some("192.0.2.1:443".parse().unwrap());
        assert_eq!(
            host_port(Some("API.example.com"), r),
            ("api.example.com".into(), Some(443))
        );
        assert_eq!(
            host_port(Some("example.com:8443"), r),
            ("example.com".into(), Some(8443))
        );
        assert_eq!(host_port(Some("[::1]:9000"), r), ("::1".into(), Some(9000)));
        assert_eq!(host_port(Some("[::1]"), r), ("::1".into(), Some(443)));
        assert_eq!(host_port(None, r), ("192.0.2.1".into(), Some(443)));
        assert_eq!(
            host_port(Some("u:p@h.example:81"), r),
            ("h.example".into(), Some(81))
        );
        assert_eq!(host_port(Some("h:notaport"), r), ("h".into(), Some(443)));
        assert_eq!(host_port(None, None), (String::new(), None));
    }
}
