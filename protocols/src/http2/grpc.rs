//! gRPC over HTTP/2: the sizes of length-prefixed messages across DATA
//! frames, and the facts a finished gRPC stream carries (service and method
//! from the path, status and the percent-encoded message from trailers).

use percent_encoding::percent_decode_str;

use crate::{header, Exchange, GrpcInfo};

/// gRPC message sizes kept per direction per call.
pub const MAX_GRPC_MESSAGES: usize = 256;

/// gRPC length-prefixed message framing across DATA frames.
#[derive(Debug, Default)]
pub(super) struct GrpcFramer {
    hdr: [u8; 5],
    have: usize,
    remaining: u64,
    pub(super) broken: bool,
}

impl GrpcFramer {
    pub(super) fn feed(&mut self, mut b: &[u8], sizes: &mut Vec<u32>) {
        while !self.broken && !b.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                self.remaining -= take as u64;
                b = b.get(take..).unwrap_or_default();
                continue;
            }
            let take = (5 - self.have).min(b.len());
            if let (Some(dst), Some(src)) =
                (self.hdr.get_mut(self.have..self.have + take), b.get(..take))
            {
                dst.copy_from_slice(src);
            }
            self.have += take;
            b = b.get(take..).unwrap_or_default();
            if self.have == 5 {
                let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]);
                if sizes.len() < MAX_GRPC_MESSAGES {
                    sizes.push(len);
                }
                self.remaining = u64::from(len);
                self.have = 0;
            }
        }
    }
}

pub(super) fn is_grpc_content_type(v: &str) -> bool {
    v.len() >= 16
        && v.get(..16)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn grpc_service_method(path: &str) -> (Option<String>, Option<String>) {
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((s, m)) if !s.is_empty() && !m.is_empty() => (Some(s.into()), Some(m.into())),
        _ => (None, None),
    }
}

/// gRPC's `grpc-message` is percent-encoded UTF-8.
/// A `%` not followed by two hex digits is kept as it is; bytes that are not
/// UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The gRPC facts of a finished stream: service and method from the path,
/// status and message from the trailers (or, trailers-only, the headers),
/// and the sizes of the messages seen each way.
pub(super) fn grpc_info(
    ex: &Exchange,
    req_messages: Vec<u32>,
    resp_messages: Vec<u32>,
) -> GrpcInfo {
    let (service, method) = ex.path.as_deref().map_or((None, None), grpc_service_method);
    let status_src =
        header(&ex.resp_trailers, "grpc-status").or_else(|| ex.resp_header("grpc-status"));
    let msg_src =
        header(&ex.resp_trailers, "grpc-message").or_else(|| ex.resp_header("grpc-message"));
    GrpcInfo {
        service,
        method,
        status: status_src.and_then(|v| v.trim().parse().ok()),
        message: msg_src.map(percent_decode),
        req_messages,
        resp_messages,
    }
}
