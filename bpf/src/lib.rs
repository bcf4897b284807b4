//! qmon's BPF programs (`src/bpf/qmon.bpf.c`) and the Rust bindings that
//! libbpf-cargo generates from them. Event layouts and constants are defined
//! once, in `src/bpf/qmon.h`; the `types` module here is generated from it.

#[allow(
    clippy::all,
    non_camel_case_types,
    non_upper_case_globals,
    dead_code,
    unused_imports
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/qmon.skel.rs"));
}

pub use skel::*;
