//! Per-stream state: the [`Exchange`] each open stream is rebuilt into, how
//! streams open (degraded ones too, on a partial connection), end, are
//! evicted when too many are open and are emitted, and which error wins.

use super::grpc::{grpc_info, GrpcFramer};
use super::Http2Parser;
use crate::{CallError, Direction, Exchange, Protocol};

/// Finished stream ids remembered, so late frames do not reopen them.
const RECENT_CLOSED: usize = 1024;

#[derive(Debug)]
pub(super) struct Stream {
    pub(super) ex: Exchange,
    pub(super) req_headers_done: bool,
    pub(super) req_ended: bool,
    pub(super) resp_headers_done: bool,
    pub(super) resp_ended: bool,
    /// When the last response DATA arrived.
    pub(super) resp_data_ns: Option<u64>,
    pub(super) grpc: bool,
    pub(super) req_msgs: Vec<u32>,
    pub(super) resp_msgs: Vec<u32>,
    pub(super) req_framer: GrpcFramer,
    pub(super) resp_framer: GrpcFramer,
}

impl Stream {
    pub(super) fn new(id: u32, ts: u64) -> Self {
        let mut ex = Exchange::new(Protocol::Http2);
        ex.stream_id = Some(id);
        ex.timing.req_first_ns = ts;
        ex.timing.req_last_ns = ts;
        Self {
            ex,
            req_headers_done: false,
            req_ended: false,
            resp_headers_done: false,
            resp_ended: false,
            resp_data_ns: None,
            grpc: false,
            req_msgs: Vec::new(),
            resp_msgs: Vec::new(),
            req_framer: GrpcFramer::default(),
            resp_framer: GrpcFramer::default(),
        }
    }

    pub(super) fn lost_data(&mut self) {
        set_error(&mut self.ex, CallError::DataLost);
        self.req_framer.broken = true;
        self.resp_framer.broken = true;
    }
}

/// Which error wins when several apply: the most specific fact.
fn rank(e: &CallError) -> u8 {
    match e {
        CallError::Degraded => 1,
        CallError::Incomplete => 2,
        CallError::DataLost => 3,
        CallError::GoAway(_) => 4,
        CallError::Reset(_) => 5,
        CallError::Malformed(_) => 6,
    }
}

/// The response announced a Content-Length and exactly that much body
/// arrived, with nothing lost on the way (loss sets an error).
pub(super) fn content_length_complete(s: &Stream) -> bool {
    s.resp_headers_done
        && s.ex.error.is_none()
        && s.ex
            .resp_header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n == s.ex.resp_body.total && s.resp_data_ns.is_some())
}

/// A reset that ends a stream whose response was already whole is not a
/// failure: the client read every byte its Content-Length announced and
/// reset the stream (curl: STREAM_CLOSED) before a separate END_STREAM
/// frame arrived, or the server, done answering, tells the client to stop
/// sending the request with NO_ERROR (RFC 9113 8.1).
pub(super) fn finished_before_reset(s: &Stream, d: Direction, code: u32) -> bool {
    match d {
        Direction::Egress => content_length_complete(s),
        Direction::Ingress => code == 0 && s.resp_ended && s.ex.error.is_none(),
    }
}

pub(super) fn set_error(ex: &mut Exchange, e: CallError) {
    if ex.error.as_ref().is_none_or(|cur| rank(&e) > rank(cur)) {
        ex.error = Some(e);
    }
}

impl Http2Parser {
    pub(super) fn end_side(&mut self, d: Direction, id: u32, ts: u64, out: &mut Vec<Exchange>) {
        let Some(s) = self.stream_for(d, id, ts, out) else {
            return;
        };
        match d {
            Direction::Egress => {
                s.req_ended = true;
                s.ex.timing.req_last_ns = ts;
            }
            Direction::Ingress => {
                s.resp_ended = true;
                s.ex.timing.resp_first_ns.get_or_insert(ts);
                s.ex.timing.resp_last_ns = Some(ts);
            }
        }
        if s.req_ended && s.resp_ended {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, out);
            }
        }
    }

    /// The open stream `id`, or a new degraded one when the connection is
    /// partial (start unseen or bytes lost) and `id` is not known finished.
    pub(super) fn stream_for(
        &mut self,
        d: Direction,
        id: u32,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if !self.partial || id % 2 == 0 || id == 0 || self.recent_set.contains(&id) {
                return None;
            }
            let mut s = Stream::new(id, ts);
            // The request (or its start) was never seen.
            s.req_headers_done = true;
            s.req_ended = d == Direction::Ingress;
            if d == Direction::Ingress {
                s.ex.timing.resp_first_ns = Some(ts);
            }
            set_error(
                &mut s.ex,
                if self.mid {
                    CallError::Degraded
                } else {
                    CallError::DataLost
                },
            );
            s.req_framer.broken = true;
            s.resp_framer.broken = true;
            self.open(id, s, out);
        }
        self.streams.get_mut(&id)
    }

    pub(super) fn open(&mut self, id: u32, s: Stream, out: &mut Vec<Exchange>) {
        let cap = self.limits.pending.max(1);
        while self.streams.len() >= cap {
            let Some((_, mut old)) = self.streams.pop_first() else {
                break;
            };
            self.stats.evicted_streams += 1;
            set_error(&mut old.ex, CallError::Incomplete);
            self.emit(old, out);
        }
        if id % 2 == 1 {
            self.max_client_stream = self.max_client_stream.max(id);
        }
        self.streams.insert(id, s);
    }

    pub(super) fn mark(&mut self, id: u32, e: CallError) {
        if let Some(s) = self.streams.get_mut(&id) {
            set_error(&mut s.ex, e);
        }
    }

    pub(super) fn mark_or_open(
        &mut self,
        d: Direction,
        id: u32,
        ts: u64,
        e: CallError,
        out: &mut Vec<Exchange>,
    ) {
        if d == Direction::Egress
            && id % 2 == 1
            && !self.streams.contains_key(&id)
            && !self.recent_set.contains(&id)
        {
            let mut s = Stream::new(id, ts);
            s.req_headers_done = true;
            self.open(id, s, out);
        }
        self.mark(id, e);
    }

    pub(super) fn remember(&mut self, id: u32) {
        if self.recent_set.insert(id) {
            self.recent.push_back(id);
            while self.recent.len() > RECENT_CLOSED {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    pub(super) fn emit(&mut self, s: Stream, out: &mut Vec<Exchange>) {
        let Stream {
            mut ex,
            grpc,
            req_msgs,
            resp_msgs,
            ..
        } = s;
        if let Some(id) = ex.stream_id {
            self.remember(id);
        }
        if grpc {
            ex.grpc = Some(grpc_info(&ex, req_msgs, resp_msgs));
        }
        out.push(ex);
    }
}
