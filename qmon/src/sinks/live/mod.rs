//! `qmon top`: a live, htop-style terminal view of outbound calls.
//!
//! One concern per file:
//! * [`model`]: windowed aggregation over a bounded ring of recent calls;
//! * [`trends`]: bounded per-series time buckets, for the charts;
//! * [`source`]: where calls come from (in-process capture, or tailing the
//!   database a running `qmon record` writes);
//! * [`app`]: view state and key handling;
//! * [`ui`]: ratatui rendering;
//! * [`text`]: the plain-text frame of `qmon top --once`.

pub mod app;
pub mod model;
pub mod source;
pub mod text;
pub mod trends;
pub mod ui;
