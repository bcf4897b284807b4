//! qmon's protocol parsers: turn the two ordered byte streams of one
//! connection into [`Exchange`]s. Parsers never see kernel events, only
//! bytes, gaps and close, so this crate depends on nothing of the daemon
//! (no libbpf, no SQLite): fuzz targets and benches build it alone.
//!
//! Every parser must hold these promises, because its input is arbitrary
//! traffic: never panic, keep memory bounded by [`ParserLimits`], and record
//! what is known with an error state rather than guess.
//!
//! [`fixture`] replays captured byte streams (`tests/fixtures/`) through a
//! parser, for tests, benches and fuzzing.

mod exchange;
pub mod fixture;
mod hpack;
pub mod http1;
pub mod http2;

pub use exchange::{header, Body, CallError, Exchange, GrpcInfo, Headers, Protocol, Timing};
pub use qmon_vocab::Direction;

/// What a parser asks of the connection layer after consuming data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Keep feeding this parser.
    Continue,
    /// The connection switched protocols (HTTP/1 `101`). Bytes from
    /// `consumed` onwards in the chunk just fed belong to `to`.
    Upgrade { to: UpgradeTo, consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeTo {
    /// `Upgrade: h2c`: continue with the HTTP/2 parser; stream 1 carries the
    /// response to the request that asked for the upgrade.
    H2c,
    /// WebSocket or anything else qmon does not parse.
    Other,
}

/// Bounds every parser enforces. Defaults are what `qmon record` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Body bytes kept per direction per call; the full size is still counted.
    pub body_bytes: usize,
    /// Largest header block accepted before the message is marked malformed.
    pub header_bytes: usize,
    /// Most headers kept per message.
    pub headers: usize,
    /// Most exchanges waiting for a response on one connection (pipelining,
    /// or concurrent HTTP/2 streams).
    pub pending: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        Self {
            body_bytes: 4096,
            header_bytes: 64 * 1024,
            headers: 128,
            pending: 256,
        }
    }
}

/// One protocol parser per connection.
pub trait Parser: Send {
    /// Feed the next in-order bytes of one direction. `ts_ns` is when the
    /// bytes crossed the boundary (unix ns). Finished exchanges go to `out`.
    fn data(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<Exchange>,
    ) -> Progress;

    /// `len` bytes of `dir` were lost (ring buffer full, or cut by the capture
    /// limit). The parser must resynchronise; exchanges that spanned the gap
    /// are emitted with [`CallError::DataLost`].
    fn gap(&mut self, dir: Direction, len: u64, ts_ns: u64, out: &mut Vec<Exchange>);

    /// The connection closed. Close-delimited bodies end here; anything
    /// still pending is emitted as incomplete.
    fn close(&mut self, ts_ns: u64, out: &mut Vec<Exchange>);

    /// After `Progress::Upgrade { to: H2c, .. }`: the request that asked for
    /// the upgrade, whose response HTTP/2 stream 1 carries.
    fn take_upgrade_request(&mut self) -> Option<Exchange> {
        None
    }
}
