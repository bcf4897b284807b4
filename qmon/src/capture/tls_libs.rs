//! Finding the OpenSSL copies to probe: every `libssl*.so*` mapped by a
//! running process, libraries opened later (the BPF side reports opens of
//! `libssl*` files), and executables that link OpenSSL statically.
//!
//! Uprobes attach to an inode, so one attach per (device, inode) covers every
//! process using that copy, in every container.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};

/// Functions probed, by role. The first two are required: without them the
/// library is not OpenSSL (or is stripped) and is skipped with a reason.
pub const SSL_WRITE: &str = "SSL_write";
pub const SSL_READ: &str = "SSL_read";
pub const SSL_WRITE_EX: &str = "SSL_write_ex";
pub const SSL_READ_EX: &str = "SSL_read_ex";
pub const SSL_FREE: &str = "SSL_free";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A file's identity plus its size and mtime: a file rewritten in place
/// (same inode) is a different version and is looked at again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub id: FileId,
    pub size: u64,
    pub mtime_ns: i128,
}

/// One copy of OpenSSL found in some process.
#[derive(Debug, Clone)]
pub struct TlsLib {
    pub id: FileId,
    pub version: FileVersion,
    /// Path as the process sees it (inside its mount namespace).
    pub path: String,
    /// Path qmon opens: through `/proc/PID/root` so container copies resolve.
    pub host_path: PathBuf,
    /// A process that maps (or opened) it.
    pub pid: u32,
}

/// What a library offers, once inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    /// The probed functions it defines, with their file offsets (what a
    /// uprobe attaches to).
    Usable {
        symbols: Vec<(&'static str, u64)>,
    },
    Skip {
        reason: String,
    },
}

impl Inspection {
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Inspection::Usable { symbols } => symbols.iter().map(|(n, _)| *n).collect(),
            Inspection::Skip { .. } => Vec::new(),
        }
    }
}

/// Is this file name an OpenSSL libssl (`libssl.so.3`, `libssl-abc123.so.1.1`)?
pub fn is_libssl_name(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.starts_with("libssl") && base.contains(".so")
}

/// libssl paths mapped by `pid`, from `/proc/PID/maps`.
pub fn mapped_libssl(pid: u32) -> Vec<String> {
    let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && is_libssl_name(p))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Resolve a path seen by `pid` to one qmon can open, and identify the file.
pub fn resolve(pid: u32, path: &str) -> Option<TlsLib> {
    let host_path = if path.starts_with('/') {
        PathBuf::from(format!("/proc/{pid}/root{path}"))
    } else {
        PathBuf::from(format!("/proc/{pid}/cwd/{path}"))
    };
    let meta = fs::metadata(&host_path).ok()?;
    let id = FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Some(TlsLib {
        version: FileVersion {
            id: id.clone(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        },
        id,
        path: path.to_string(),
        host_path,
        pid,
    })
}

/// Every libssl mapped by any running process, one per file.
pub fn scan_all() -> Vec<TlsLib> {
    let mut seen: HashMap<FileId, TlsLib> = HashMap::new();
    for pid in all_pids() {
        for path in mapped_libssl(pid) {
            if let Some(lib) = resolve(pid, &path) {
                seen.entry(lib.id.clone()).or_insert(lib);
            }
        }
    }
    let mut libs: Vec<TlsLib> = seen.into_values().collect();
    libs.sort_by(|a, b| a.path.cmp(&b.path));
    libs
}

pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Which probed functions the ELF file defines (dynamic or static symbols).
pub fn inspect(path: &Path) -> Inspection {
    match File::open(path) {
        Ok(f) => inspect_file(&f),
        Err(e) => Inspection::Skip {
            reason: format!("cannot open: {e}"),
        },
    }
}

/// As [`inspect`], on an open file.
pub fn inspect_file(file: &File) -> Inspection {
    // SAFETY: read-only private mapping; a concurrent truncation could fault,
    // which is the same risk every ELF reader (ld.so included) takes.
    let map = match unsafe { memmap2::Mmap::map(file) } {
        Ok(m) => m,
        Err(e) => {
            return Inspection::Skip {
                reason: format!("cannot map: {e}"),
            }
        }
    };
    let obj = match object::File::parse(&*map) {
        Ok(o) => o,
        Err(e) => {
            return Inspection::Skip {
                reason: format!("not an ELF file: {e}"),
            }
        }
    };
    let wanted = [SSL_WRITE, SSL_READ, SSL_WRITE_EX, SSL_READ_EX, SSL_FREE];
    let mut found: Vec<(&'static str, u64)> = Vec::new();
    for sym in obj.dynamic_symbols().chain(obj.symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(w) = wanted.iter().find(|w| **w == name) else {
            continue;
        };
        if found.iter().any(|(n, _)| n == w) {
            continue;
        }
        if let Some(off) = file_offset(&obj, sym.address()) {
            found.push((w, off));
        }
    }
    let has = |n: &str| found.iter().any(|(f, _)| *f == n);
    if has(SSL_WRITE) && has(SSL_READ) {
        found.sort_by_key(|(s, _)| wanted.iter().position(|w| w == s));
        Inspection::Usable { symbols: found }
    } else {
        Inspection::Skip {
            reason: "no SSL_write/SSL_read symbols (not OpenSSL, or stripped)".into(),
        }
    }
}

/// File offset of a virtual address, through the loadable segment holding it.
fn file_offset(obj: &object::File, addr: u64) -> Option<u64> {
    use object::ObjectSegment;
    obj.segments().find_map(|seg| {
        let (off, size) = seg.file_range();
        let start = seg.address();
        (addr >= start && addr - start < size).then(|| addr - start + off)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_libssl_names() {
        assert!(is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl_name("/opt/app/libssl-1a2b.so.1.1"));
        assert!(!is_libssl_name("/usr/lib/libcrypto.so.3"));
        assert!(!is_libssl_name("/usr/lib/libssl3.a"));
    }

    #[test]
    fn system_libssl_is_usable() {
        let Some(path) = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists()) else {
            panic!("libssl.so.3 not installed; the test suite's set-up installs it");
        };
        match inspect(Path::new(path)) {
            i @ Inspection::Usable { .. } => {
                let names = i.names();
                for s in [SSL_WRITE, SSL_READ, SSL_WRITE_EX, SSL_READ_EX, SSL_FREE] {
                    assert!(names.contains(&s), "{s} missing from {names:?}");
                }
                let Inspection::Usable { symbols } = i else {
                    unreachable!()
                };
                assert!(symbols.iter().all(|(_, off)| *off > 0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn non_elf_is_skipped_with_reason() {
        let p = std::env::temp_dir().join(format!("qmon-notelf-{}", std::process::id()));
        fs::write(&p, b"not an elf").unwrap();
        assert!(matches!(inspect(&p), Inspection::Skip { .. }));
        let _ = fs::remove_file(p);
    }

    #[test]
    fn finds_own_mapped_libraries_in_scan() {
        // Our own process maps no libssl, but scanning must not fail.
        let _ = scan_all();
        assert!(mapped_libssl(std::process::id()).is_empty());
    }
}
