//! The TLS stacks qmon reads plaintext from, as a table: one [`TlsStack`]
//! entry per stack says which files carry it, which functions are probed
//! with which BPF program, which of them a file must define, and how its
//! sessions are mapped to sockets. Everything else works from the table for
//! every stack alike:
//!
//! * finding copies: every library mapped by a running process (through
//!   `/proc/PID/root`, so container copies resolve), libraries opened later
//!   (the BPF side reports opens whose file name starts with a stack's
//!   library prefix, [`lib_prefixes`]), and executables that link a stack
//!   statically, checked at exec;
//! * inspecting a file for the stack's symbols ([`inspect`]);
//! * attaching (`capture::Uprobes`) and `qmon doctor`'s report.
//!
//! Uprobes attach to an inode, so one attach per (device, inode) covers every
//! process using that copy, in every container.
//!
//! Adding a stack takes its `enum qmon_source` value in `bpf/src/bpf/qmon.h`,
//! its probe bodies in `bpf/src/bpf/tls_<stack>.h` (calling `tls_enter`,
//! `tls_exit` and `tls_forget` from `tls.h`; included by `qmon.bpf.c`), and
//! its entry in [`STACKS`].

mod openssl;

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};
use qmon_bpf::types::{qmon_const, qmon_source};

pub use openssl::OPENSSL;

/// Every TLS stack qmon probes. The order is the order of preference where
/// two could claim one file name (none do).
pub static STACKS: &[&TlsStack] = &[&OPENSSL];

/// One TLS implementation, as qmon finds and probes it.
pub struct TlsStack {
    /// Short name: the `source` of its data in `qmon trace`, the `tls_lib`
    /// of calls in the store ("openssl").
    pub name: &'static str,
    /// For people: logs and `qmon doctor` ("OpenSSL").
    pub title: &'static str,
    /// The `enum qmon_source` value its BPF programs put in data events.
    pub source: qmon_source,
    /// Which files carry it.
    pub files: FileMatch,
    /// The functions probed, in attach order.
    pub probes: &'static [Probe],
    /// How a session is mapped to its socket.
    pub fd: FdDiscovery,
}

/// Where a stack's code lives.
#[derive(Debug)]
pub struct FileMatch {
    /// Shared libraries whose file name starts with this and contains
    /// ".so" (`libssl.so.3`, `libssl-1a2b.so.1.1`). The BPF open hook gets
    /// the prefix from here, so it is shorter than
    /// [`qmon_const::QMON_TLS_PREFIX_LEN`] bytes.
    pub lib_prefix: Option<&'static str>,
    /// Executables that define the required symbols themselves (a static
    /// link), checked at exec.
    pub executables: bool,
}

/// One probed function.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    /// The ELF symbol (dynamic or static).
    pub symbol: &'static str,
    pub role: ProbeRole,
    /// The BPF program attached at the function's entry.
    pub entry: &'static str,
    /// The BPF program attached at its return, for functions whose return
    /// says how many bytes moved.
    pub ret: Option<&'static str>,
    /// A file without this symbol is not this stack (or is stripped), and
    /// is skipped with that reason.
    pub required: bool,
}

/// What a probed function does, and so how its entry and return programs
/// read it (`bpf/src/bpf/tls.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    /// Sends plaintext; returns the byte count (<= 0: error).
    Write,
    /// Receives plaintext; returns the byte count (<= 0: error or none).
    Read,
    /// Sends plaintext; returns success and stores the count through a
    /// pointer argument.
    WriteEx,
    /// Receives plaintext, the same way.
    ReadEx,
    /// Frees a session: forgets its fd. Sessions a program never frees age
    /// out of the kernel's (LRU) session map.
    Cleanup,
}

impl ProbeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeRole::Write => "write",
            ProbeRole::Read => "read",
            ProbeRole::WriteEx => "write_ex",
            ProbeRole::ReadEx => "read_ex",
            ProbeRole::Cleanup => "cleanup",
        }
    }

    /// Reads or writes data, so the call's return must be probed too.
    pub fn moves_data(self) -> bool {
        self != ProbeRole::Cleanup
    }
}

/// How a stack's session (SSL*, ...) is mapped to its socket fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdDiscovery {
    /// The read/write syscall the library makes inside the call, on the
    /// same thread, names the fd; a session -> fd map in the kernel covers
    /// calls the library serves from its own buffers (`tls.h`).
    NestedSyscall,
}

impl FdDiscovery {
    pub fn as_str(self) -> &'static str {
        match self {
            FdDiscovery::NestedSyscall => "nested syscall",
        }
    }
}

// Entries are identified by their source value: data events carry it.
impl PartialEq for TlsStack {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for TlsStack {}

impl Hash for TlsStack {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.0.hash(state);
    }
}

impl std::fmt::Debug for TlsStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsStack({})", self.name)
    }
}

impl TlsStack {
    /// The stack whose data events carry `source`.
    pub fn by_source(source: qmon_source) -> Option<&'static TlsStack> {
        STACKS.iter().copied().find(|s| s.source == source)
    }

    /// The stack called `name` (see [`TlsStack::name`]).
    pub fn by_name(name: &str) -> Option<&'static TlsStack> {
        STACKS.iter().copied().find(|s| s.name == name)
    }

    /// Symbols a file must define to be this stack.
    pub fn required(&self) -> impl Iterator<Item = &'static str> {
        self.probes.iter().filter(|p| p.required).map(|p| p.symbol)
    }

    /// Is this file name one of the stack's shared libraries?
    pub fn is_lib_name(&self, path: &str) -> bool {
        let base = path.rsplit('/').next().unwrap_or(path);
        self.files
            .lib_prefix
            .is_some_and(|p| base.starts_with(p) && base.contains(".so"))
    }

    /// Every BPF program the table names for this stack.
    pub fn programs(&self) -> impl Iterator<Item = &'static str> {
        self.probes
            .iter()
            .flat_map(|p| std::iter::once(p.entry).chain(p.ret))
    }
}

/// The library file-name prefixes, for the BPF open hook (`proc.h`), in
/// table order.
pub fn lib_prefixes() -> impl Iterator<Item = &'static str> {
    STACKS.iter().filter_map(|s| s.files.lib_prefix)
}

/// The prefixes as the BPF side's `tls_lib_prefixes` holds them: each
/// NUL-terminated in a fixed slot, unused slots empty. Errors name a prefix
/// that does not fit.
pub fn lib_prefix_slots() -> Result<
    [[i8; qmon_const::QMON_TLS_PREFIX_LEN.0 as usize]; qmon_const::QMON_TLS_PREFIXES.0 as usize],
    String,
> {
    const LEN: usize = qmon_const::QMON_TLS_PREFIX_LEN.0 as usize;
    const N: usize = qmon_const::QMON_TLS_PREFIXES.0 as usize;
    let mut slots = [[0i8; LEN]; N];
    for (i, prefix) in lib_prefixes().enumerate() {
        if i >= N {
            return Err(format!("more than {N} TLS library prefixes"));
        }
        if prefix.is_empty() || prefix.len() >= LEN || prefix.contains('\0') {
            return Err(format!(
                "TLS library prefix {prefix:?} must be 1 to {} bytes",
                LEN - 1
            ));
        }
        for (d, b) in slots[i].iter_mut().zip(prefix.bytes()) {
            *d = b as i8;
        }
    }
    Ok(slots)
}

/// The stack a mapped library belongs to, by its file name.
pub fn stack_of_lib(path: &str) -> Option<&'static TlsStack> {
    STACKS.iter().copied().find(|s| s.is_lib_name(path))
}

/// The stack of a file the BPF open hook reported. It matches a prefix at
/// the start of any path component; the file name is tried first.
pub fn stack_of_opened(path: &str) -> Option<&'static TlsStack> {
    let base = path.rsplit('/').next().unwrap_or(path);
    let starts =
        |s: &&TlsStack, name: &str| s.files.lib_prefix.is_some_and(|p| name.starts_with(p));
    STACKS
        .iter()
        .find(|s| starts(s, base))
        .or_else(|| {
            STACKS
                .iter()
                .find(|s| path.split('/').any(|c| starts(s, c)))
        })
        .copied()
}

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

/// One copy of a TLS stack found in some process: a library, or an
/// executable that links the stack statically.
#[derive(Debug, Clone)]
pub struct TlsLib {
    pub stack: &'static TlsStack,
    pub id: FileId,
    pub version: FileVersion,
    /// Path as the process sees it (inside its mount namespace).
    pub path: String,
    /// Path qmon opens: through `/proc/PID/root` so container copies resolve.
    pub host_path: PathBuf,
    /// A process that maps (or opened) it.
    pub pid: u32,
}

impl TlsLib {
    /// The same file, as a copy of another stack.
    pub fn as_stack(&self, stack: &'static TlsStack) -> TlsLib {
        TlsLib {
            stack,
            ..self.clone()
        }
    }
}

/// What a file offers a stack, once inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    /// The probed functions it defines, with their file offsets (what a
    /// uprobe attaches to), in table order.
    Usable {
        symbols: Vec<(&'static Probe, u64)>,
    },
    Skip {
        reason: String,
    },
}

impl Inspection {
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Inspection::Usable { symbols } => symbols.iter().map(|(p, _)| p.symbol).collect(),
            Inspection::Skip { .. } => Vec::new(),
        }
    }
}

/// TLS libraries mapped by `pid`, from `/proc/PID/maps`, with their stack.
pub fn mapped(pid: u32) -> Vec<(&'static TlsStack, String)> {
    let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut out: Vec<(&'static TlsStack, String)> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .filter_map(|p| Some((stack_of_lib(p)?, p.to_string())))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

/// Resolve a path seen by `pid` to one qmon can open, and identify the file.
pub fn resolve(stack: &'static TlsStack, pid: u32, path: &str) -> Option<TlsLib> {
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
        stack,
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

/// Every TLS library mapped by any running process, one per (stack, file),
/// sorted by stack then path.
pub fn scan_all() -> Vec<TlsLib> {
    let mut seen: HashMap<(u32, FileId), TlsLib> = HashMap::new();
    for pid in all_pids() {
        for (stack, path) in mapped(pid) {
            if let Some(lib) = resolve(stack, pid, &path) {
                seen.entry((stack.source.0, lib.id.clone())).or_insert(lib);
            }
        }
    }
    let mut libs: Vec<TlsLib> = seen.into_values().collect();
    libs.sort_by(|a, b| (a.stack.source.0, &a.path).cmp(&(b.stack.source.0, &b.path)));
    libs
}

pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Which of the stack's probed functions the ELF file defines (dynamic or
/// static symbols).
pub fn inspect(path: &Path, stack: &'static TlsStack) -> Inspection {
    match File::open(path) {
        Ok(f) => inspect_file(&f, stack),
        Err(e) => Inspection::Skip {
            reason: format!("cannot open: {e}"),
        },
    }
}

/// As [`inspect`], on an open file.
pub fn inspect_file(file: &File, stack: &'static TlsStack) -> Inspection {
    inspect_stacks(file, &[stack])
        .pop()
        .expect("one inspection per stack")
}

/// As [`inspect_file`] for several stacks, reading the file once (an
/// executable is checked for every stack that can be linked statically).
/// One inspection per stack, in order.
pub fn inspect_stacks(file: &File, stacks: &[&'static TlsStack]) -> Vec<Inspection> {
    let skip_all = |reason: String| {
        stacks
            .iter()
            .map(|_| Inspection::Skip {
                reason: reason.clone(),
            })
            .collect()
    };
    // SAFETY: read-only private mapping; a concurrent truncation could fault,
    // which is the same risk every ELF reader (ld.so included) takes.
    let map = match unsafe { memmap2::Mmap::map(file) } {
        Ok(m) => m,
        Err(e) => return skip_all(format!("cannot map: {e}")),
    };
    let obj = match object::File::parse(&*map) {
        Ok(o) => o,
        Err(e) => return skip_all(format!("not an ELF file: {e}")),
    };
    // One pass over the symbols for every stack: found[s][p] is the file
    // offset of stacks[s].probes[p], first definition wins.
    let mut found: Vec<Vec<Option<u64>>> =
        stacks.iter().map(|s| vec![None; s.probes.len()]).collect();
    for sym in obj.dynamic_symbols().chain(obj.symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        for (s, stack) in stacks.iter().enumerate() {
            let Some(p) = stack.probes.iter().position(|p| p.symbol == name) else {
                continue;
            };
            if found[s][p].is_none() {
                found[s][p] = file_offset(&obj, sym.address());
            }
        }
    }
    stacks
        .iter()
        .zip(found)
        .map(|(stack, offsets)| {
            let symbols: Vec<(&'static Probe, u64)> = stack
                .probes
                .iter()
                .zip(offsets)
                .filter_map(|(p, off)| Some((p, off?)))
                .collect();
            let has = |n: &str| symbols.iter().any(|(p, _)| p.symbol == n);
            if stack.required().all(has) {
                Inspection::Usable { symbols }
            } else {
                Inspection::Skip {
                    reason: format!(
                        "no {} symbols (not {}, or stripped)",
                        stack.required().collect::<Vec<_>>().join("/"),
                        stack.title
                    ),
                }
            }
        })
        .collect()
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

    const SSL_WRITE: &str = "SSL_write";
    const SSL_READ: &str = "SSL_read";
    const SSL_WRITE_EX: &str = "SSL_write_ex";
    const SSL_READ_EX: &str = "SSL_read_ex";
    const SSL_FREE: &str = "SSL_free";

    fn is_libssl_name(path: &str) -> bool {
        stack_of_lib(path) == Some(&OPENSSL)
    }

    #[test]
    fn recognises_libssl_names() {
        assert!(is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl_name("/opt/app/libssl-1a2b.so.1.1"));
        assert!(!is_libssl_name("/usr/lib/libcrypto.so.3"));
        assert!(!is_libssl_name("/usr/lib/libssl3.a"));
    }

    #[test]
    fn opened_files_match_like_the_bpf_hook() {
        let openssl = Some(&OPENSSL);
        assert_eq!(
            stack_of_opened("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
            openssl
        );
        assert_eq!(stack_of_opened("libssl.so.3"), openssl);
        assert_eq!(stack_of_opened("/opt/libssl-1.1/lib/libx.so"), openssl);
        assert_eq!(stack_of_opened("/usr/lib/libcrypto.so.3"), None);
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
        match inspect(Path::new(path), &OPENSSL) {
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
        assert!(matches!(inspect(&p, &OPENSSL), Inspection::Skip { .. }));
        let _ = fs::remove_file(p);
    }

    #[test]
    fn an_elf_without_the_required_symbols_says_which() {
        let exe = File::open("/proc/self/exe").unwrap();
        match inspect_file(&exe, &OPENSSL) {
            Inspection::Skip { reason } => assert_eq!(
                reason,
                "no SSL_write/SSL_read symbols (not OpenSSL, or stripped)"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn finds_own_mapped_libraries_in_scan() {
        // Our own process maps no libssl, but scanning must not fail.
        let _ = scan_all();
        assert!(mapped(std::process::id()).is_empty());
    }

    /// The table is consistent: names and sources unique, every stack
    /// findable and with a required symbol, data functions probed at their
    /// return, clean-up ones not, prefixes that fit the BPF side.
    #[test]
    fn the_table_is_consistent() {
        for (i, s) in STACKS.iter().enumerate() {
            assert_ne!(s.source, qmon_source::QMON_SRC_SYSCALL, "{}", s.name);
            for t in &STACKS[i + 1..] {
                assert_ne!(s.source, t.source, "{} and {}", s.name, t.name);
                assert_ne!(s.name, t.name);
            }
            assert!(
                s.files.lib_prefix.is_some() || s.files.executables,
                "{}",
                s.name
            );
            assert!(s.required().next().is_some(), "{}", s.name);
            for p in s.probes {
                assert_eq!(p.role.moves_data(), p.ret.is_some(), "{}", p.symbol);
                assert!(
                    !(p.required && p.role == ProbeRole::Cleanup),
                    "{}",
                    p.symbol
                );
            }
            assert_eq!(TlsStack::by_source(s.source), Some(*s));
            assert_eq!(TlsStack::by_name(s.name), Some(*s));
        }
        let slots = lib_prefix_slots().unwrap();
        assert_eq!(&slots[0][..7], b"libssl\0".map(|b| b as i8).as_slice());
    }

    /// Every program the table names exists in the BPF object (opening the
    /// skeleton reads the ELF only; nothing is loaded).
    #[test]
    fn the_table_names_real_programs() {
        use libbpf_rs::skel::{OpenSkel, SkelBuilder};
        let mut storage = std::mem::MaybeUninit::uninit();
        let open = qmon_bpf::QmonSkelBuilder::default()
            .open(&mut storage)
            .unwrap();
        let progs: Vec<String> = open
            .open_object()
            .progs()
            .map(|p| p.name().to_string_lossy().into_owned())
            .collect();
        for s in STACKS {
            for name in s.programs() {
                assert!(
                    progs.iter().any(|p| p == name),
                    "{}: no program {name}",
                    s.name
                );
            }
        }
    }
}
