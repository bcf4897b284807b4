//! What a parser rebuilds from one request/response: [`Exchange`] and its
//! parts. Protocol facts only; the daemon adds process and connection.

/// Ordered header list; names as seen on the wire (HTTP/2: lowercase).
/// Values are lossy UTF-8 so they can be stored as JSON text.
pub type Headers = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http10,
    Http11,
    Http2,
}

impl Protocol {
    /// The value stored in `calls.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }
}

/// Why a call is not a clean, complete exchange. Stored in `calls.error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The connection closed (or qmon stopped) before the response finished.
    Incomplete,
    /// Bytes of this exchange were lost in capture; fields may be missing.
    DataLost,
    /// HTTP/2 RST_STREAM with this error code.
    Reset(u32),
    /// HTTP/2 GOAWAY covered this stream, with this error code.
    GoAway(u32),
    /// Capture started mid-connection: header fields that needed state qmon
    /// never saw are unknown (never guessed).
    Degraded,
    /// Bytes that are not valid for the protocol; what parsed is kept.
    Malformed(&'static str),
}

impl CallError {
    /// Stable text for the `error` column; users filter on the prefix.
    pub fn as_text(&self) -> String {
        match self {
            CallError::Incomplete => "incomplete".into(),
            CallError::DataLost => "data_lost".into(),
            CallError::Reset(code) => format!("reset:{code}"),
            CallError::GoAway(code) => format!("goaway:{code}"),
            CallError::Degraded => "degraded".into(),
            CallError::Malformed(what) => format!("malformed:{what}"),
        }
    }
}

/// A message body as captured: at most the configured limit is kept, the
/// full size on the wire (after de-chunking, before decompression) is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub captured: Vec<u8>,
    pub total: u64,
    /// `captured` is shorter than `total` (limit reached or bytes lost).
    pub truncated: bool,
}

impl Body {
    /// Append body bytes, keeping at most `limit`.
    pub fn push(&mut self, bytes: &[u8], limit: usize) {
        self.total += bytes.len() as u64;
        let room = limit.saturating_sub(self.captured.len());
        let take = room.min(bytes.len());
        self.captured.extend_from_slice(&bytes[..take]);
        if take < bytes.len() {
            self.truncated = true;
        }
    }
}

/// Timestamps in unix nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub req_first_ns: u64,
    pub req_last_ns: u64,
    pub resp_first_ns: Option<u64>,
    pub resp_last_ns: Option<u64>,
}

/// gRPC facts, present when the request was `application/grpc*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcInfo {
    pub service: Option<String>,
    pub method: Option<String>,
    pub status: Option<i32>,
    pub message: Option<String>,
    /// Length-prefixed messages seen per direction, and their sizes.
    pub req_messages: Vec<u32>,
    pub resp_messages: Vec<u32>,
}

/// One request/response as a protocol parser rebuilt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub protocol: Protocol,
    /// HTTP/2 stream id.
    pub stream_id: Option<u32>,
    pub method: Option<String>,
    pub scheme: Option<String>,
    /// `Host` header or `:authority`.
    pub authority: Option<String>,
    /// Path with query, as sent.
    pub path: Option<String>,
    pub status: Option<u16>,
    pub req_headers: Headers,
    pub resp_headers: Headers,
    pub req_trailers: Headers,
    pub resp_trailers: Headers,
    pub req_body: Body,
    pub resp_body: Body,
    pub grpc: Option<GrpcInfo>,
    pub timing: Timing,
    pub error: Option<CallError>,
}

impl Exchange {
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            stream_id: None,
            method: None,
            scheme: None,
            authority: None,
            path: None,
            status: None,
            req_headers: Vec::new(),
            resp_headers: Vec::new(),
            req_trailers: Vec::new(),
            resp_trailers: Vec::new(),
            req_body: Body::default(),
            resp_body: Body::default(),
            grpc: None,
            timing: Timing::default(),
            error: None,
        }
    }

    /// First value of a request header, case-insensitively.
    pub fn req_header(&self, name: &str) -> Option<&str> {
        header(&self.req_headers, name)
    }

    /// First value of a response header, case-insensitively.
    pub fn resp_header(&self, name: &str) -> Option<&str> {
        header(&self.resp_headers, name)
    }
}

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
