//! Compiles `src/bpf/qmon.bpf.c` (and the headers it includes) and generates
//! its Rust skeleton.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/qmon.bpf.c";

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("qmon.skel.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets the target arch");
    let target_arch = match arch.as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => other,
    };
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            format!("-D__TARGET_ARCH_{target_arch}"),
            "-Iinclude".to_string(),
            "-Isrc/bpf".to_string(),
            "-Wall".to_string(),
            "-Wno-unused-function".to_string(),
        ])
        .build_and_generate(&out)
        .expect("building the BPF skeleton failed (is clang installed?)");
    // A directory: cargo rebuilds when any file under it changes.
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-changed=include/vmlinux.h");
}
