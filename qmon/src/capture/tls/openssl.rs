//! OpenSSL: `libssl*.so*`, and copies linked statically into executables.

use qmon_bpf::types::qmon_source;

use super::{FdDiscovery, FileMatch, Probe, ProbeRole, TlsStack};

pub const OPENSSL: TlsStack = TlsStack {
    name: "openssl",
    title: "OpenSSL",
    source: qmon_source::QMON_SRC_OPENSSL,
    files: FileMatch {
        lib_prefix: Some("libssl"),
        executables: true,
    },
    // All four read/write functions return int, so they share one return
    // program. curl calls only SSL_read/SSL_write, Python only the _ex pair.
    probes: &[
        Probe {
            symbol: "SSL_write",
            role: ProbeRole::Write,
            entry: "ssl_write_enter",
            ret: Some("ssl_rw_exit"),
            required: true,
        },
        Probe {
            symbol: "SSL_read",
            role: ProbeRole::Read,
            entry: "ssl_read_enter",
            ret: Some("ssl_rw_exit"),
            required: true,
        },
        Probe {
            symbol: "SSL_write_ex",
            role: ProbeRole::WriteEx,
            entry: "ssl_write_ex_enter",
            ret: Some("ssl_rw_exit"),
            required: false,
        },
        Probe {
            symbol: "SSL_read_ex",
            role: ProbeRole::ReadEx,
            entry: "ssl_read_ex_enter",
            ret: Some("ssl_rw_exit"),
            required: false,
        },
        Probe {
            symbol: "SSL_free",
            role: ProbeRole::Cleanup,
            entry: "ssl_free_enter",
            ret: None,
            required: false,
        },
    ],
    fd: FdDiscovery::NestedSyscall,
};
