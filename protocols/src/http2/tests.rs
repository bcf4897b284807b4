//! Tests for the HTTP/2 parser: captured fixtures, synthetic traffic and
//! hostile input.

use super::sync::HUNT_BUF_MAX;
use super::*;
use crate::fixture::{self, Segment};

const GET: &[u8] = include_bytes!("../../tests/fixtures/http2/get.txt");
const POST: &[u8] = include_bytes!("../../tests/fixtures/http2/post.txt");
const LARGE: &[u8] = include_bytes!("../../tests/fixtures/http2/large.txt");
const CONCURRENT: &[u8] = include_bytes!("../../tests/fixtures/http2/concurrent.txt");
const SEQUENTIAL: &[u8] = include_bytes!("../../tests/fixtures/http2/sequential.txt");
const SERVER_RESET: &[u8] = include_bytes!("../../tests/fixtures/http2/server_reset.txt");
const CLIENT_CANCEL: &[u8] = include_bytes!("../../tests/fixtures/http2/client_cancel.txt");
const UPGRADE: &[u8] = include_bytes!("../../tests/fixtures/http2/upgrade_h2c.txt");
const GRPC_UNARY: &[u8] = include_bytes!("../../tests/fixtures/http2/grpc_unary.txt");
const GRPC_FAIL: &[u8] = include_bytes!("../../tests/fixtures/http2/grpc_fail_trailers_only.txt");
const GRPC_STREAM: &[u8] = include_bytes!("../../tests/fixtures/http2/grpc_server_stream.txt");
const GRPC_STREAM_FAIL: &[u8] = include_bytes!("../../tests/fixtures/http2/grpc_stream_fail.txt");

const ALL: &[(&str, &[u8])] = &[
    ("get", GET),
    ("post", POST),
    ("large", LARGE),
    ("concurrent", CONCURRENT),
    ("sequential", SEQUENTIAL),
    ("server_reset", SERVER_RESET),
    ("client_cancel", CLIENT_CANCEL),
    ("grpc_unary", GRPC_UNARY),
    ("grpc_fail", GRPC_FAIL),
    ("grpc_stream", GRPC_STREAM),
    ("grpc_stream_fail", GRPC_STREAM_FAIL),
];

fn segs(b: &[u8]) -> Vec<Segment> {
    fixture::parse(b).expect("fixture parses")
}

fn run(b: &[u8]) -> Vec<Exchange> {
    let mut p = Http2Parser::new(ParserLimits::default());
    fixture::replay(&mut p, &segs(b)).0
}

fn by_path<'a>(ex: &'a [Exchange], path: &str) -> &'a Exchange {
    ex.iter()
        .find(|e| e.path.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no exchange for {path}"))
}

fn assert_timing(e: &Exchange) {
    let t = e.timing;
    assert!(t.req_first_ns > 0);
    assert!(t.req_first_ns <= t.req_last_ns, "{t:?}");
    let rf = t.resp_first_ns.expect("resp_first");
    let rl = t.resp_last_ns.expect("resp_last");
    assert!(t.req_first_ns <= rf && rf <= rl, "{t:?}");
}

// ---- fixtures ---------------------------------------------------------

#[test]
fn simple_get() {
    let ex = run(GET);
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.protocol, Protocol::Http2);
    assert_eq!(e.stream_id, Some(1));
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(e.scheme.as_deref(), Some("http"));
    assert_eq!(e.authority.as_deref(), Some("127.0.0.1:18081"));
    assert_eq!(e.path.as_deref(), Some("/hello"));
    assert_eq!(e.status, Some(200));
    assert_eq!(e.req_header("user-agent"), Some("curl/7.88.1"));
    assert_eq!(e.resp_header("x-served-by"), Some("h2_server"));
    assert_eq!(e.resp_body.captured, b"hello from /hello\n");
    assert_eq!(e.error, None);
    assert!(e.grpc.is_none());
    assert_timing(e);
}

#[test]
fn post_with_body() {
    let ex = run(POST);
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.method.as_deref(), Some("POST"));
    assert_eq!(e.path.as_deref(), Some("/submit"));
    assert_eq!(e.req_body.captured, b"name=qmon&payload=0123456789abcdef");
    assert_eq!(e.req_body.total, 34);
    assert_eq!(e.resp_body.captured, b"got 34 bytes\n");
    assert_eq!(e.error, None);
    assert_timing(e);
}

#[test]
fn large_response_many_data_frames() {
    let ex = run(LARGE);
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.status, Some(200));
    assert_eq!(e.resp_body.total, 204_800);
    assert_eq!(
        e.resp_body.captured.len(),
        ParserLimits::default().body_bytes
    );
    assert!(e.resp_body.truncated);
    assert_eq!(&e.resp_body.captured[..4], &[0, 1, 2, 3]);
    assert_eq!(e.error, None);
    assert_timing(e);
}

#[test]
fn concurrent_streams() {
    let ex = run(CONCURRENT);
    assert_eq!(ex.len(), 6);
    let mut ids: Vec<u32> = ex.iter().filter_map(|e| e.stream_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 3, 5, 7, 9, 11]);
    for e in &ex {
        assert_eq!(e.error, None, "{e:?}");
        assert_eq!(e.status, Some(200));
        assert_eq!(e.authority.as_deref(), Some("api.example.test"));
        assert_eq!(e.req_header("x-tenant"), Some("acme-corp"));
        assert_timing(e);
    }
    let post = by_path(&ex, "/v1/items");
    assert_eq!(post.method.as_deref(), Some("POST"));
    assert_eq!(post.req_body.captured, br#"{"name":"widget","qty":3}"#);
    assert_eq!(post.resp_body.captured, b"got 25 bytes\n");
    // The slow one finished last.
    assert_eq!(ex.last().and_then(|e| e.path.as_deref()), Some("/slow"));
    assert_eq!(
        by_path(&ex, "/v1/items/3").resp_body.captured,
        b"hello from /v1/items/3\n"
    );
}

#[test]
fn sequential_requests_use_dynamic_table() {
    let ex = run(SEQUENTIAL);
    assert_eq!(ex.len(), 6);
    for (i, e) in ex.iter().enumerate() {
        assert_eq!(e.path.as_deref(), Some(format!("/v1/users/{i}").as_str()));
        assert_eq!(e.authority.as_deref(), Some("api.example.test"));
        assert_eq!(
            e.req_header("authorization"),
            Some("Bearer token-abcdef0123456789")
        );
        assert_eq!(e.resp_header("content-type"), Some("text/plain"));
        assert_eq!(e.error, None);
    }
}

#[test]
fn server_rst_stream() {
    let ex = run(SERVER_RESET);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].path.as_deref(), Some("/reset"));
    assert_eq!(ex[0].error, Some(CallError::Reset(2)));
    assert_eq!(ex[0].status, None);
    assert!(ex[0].timing.resp_last_ns.is_some());
}

#[test]
fn client_cancel_rst_stream() {
    let ex = run(CLIENT_CANCEL);
    assert_eq!(ex.len(), 2);
    let fast = by_path(&ex, "/v1/fast");
    assert_eq!(fast.error, None);
    assert_eq!(fast.status, Some(200));
    let slow = by_path(&ex, "/slow");
    assert_eq!(slow.error, Some(CallError::Reset(8)));
    assert_eq!(slow.status, None);
}

#[test]
fn upgrade_h2c() {
    let s = segs(UPGRADE);
    let (Segment::Data(Direction::Egress, req), Segment::Data(Direction::Ingress, resp)) =
        (&s[0], &s[1])
    else {
        panic!("unexpected fixture shape");
    };
    // What the HTTP/1 parser would hand over.
    let mut request = Exchange::new(Protocol::Http11);
    request.method = Some("GET".into());
    request.path = Some("/upgraded".into());
    request.authority = Some("127.0.0.1:18081".into());
    request.req_headers.push(("Upgrade".into(), "h2c".into()));
    request.timing.req_first_ns = 1;
    request.timing.req_last_ns = 1;
    assert!(req.starts_with(b"GET /upgraded HTTP/1.1"));
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("101 head")
        + 4;
    let mut p = Http2Parser::upgraded(ParserLimits::default(), request);
    let mut out = Vec::new();
    assert!(looks_like_preface(match &s[2] {
        Segment::Data(_, b) => b,
        _ => panic!(),
    }));
    p.data(Direction::Ingress, 2, &resp[end..], &mut out);
    for seg in &s[2..] {
        match seg {
            Segment::Data(d, b) => {
                p.data(*d, 3, b, &mut out);
            }
            Segment::Close => p.close(4, &mut out),
            Segment::Gap(..) => unreachable!(),
        }
    }
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(e.stream_id, Some(1));
    assert_eq!(e.protocol, Protocol::Http2);
    assert_eq!(e.path.as_deref(), Some("/upgraded"));
    assert_eq!(e.status, Some(200));
    assert_eq!(e.resp_body.captured, b"hello from /upgraded\n");
    assert_eq!(e.error, None);
}

#[test]
fn grpc_unary_ok() {
    let ex = run(GRPC_UNARY);
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.path.as_deref(), Some("/demo.v1.Greeter/SayHello"));
    assert_eq!(e.method.as_deref(), Some("POST"));
    let g = e.grpc.as_ref().expect("grpc");
    assert_eq!(g.service.as_deref(), Some("demo.v1.Greeter"));
    assert_eq!(g.method.as_deref(), Some("SayHello"));
    assert_eq!(g.status, Some(0));
    assert_eq!(g.req_messages, vec![4]);
    assert_eq!(g.resp_messages, vec![11]);
    assert!(crate::header(&e.resp_trailers, "grpc-status").is_some());
    assert_eq!(e.error, None);
    assert_timing(e);
}

#[test]
fn grpc_failure_trailers_only() {
    let ex = run(GRPC_FAIL);
    assert_eq!(ex.len(), 1);
    let g = ex[0].grpc.as_ref().expect("grpc");
    assert_eq!(g.method.as_deref(), Some("Fail"));
    assert_eq!(g.status, Some(5));
    assert_eq!(
        g.message.as_deref(),
        Some("user 42 not found: caf\u{e9} 100%")
    );
    assert!(g.resp_messages.is_empty());
    assert!(
        ex[0].resp_trailers.is_empty(),
        "trailers-only lands in resp_headers"
    );
    assert_eq!(ex[0].status, Some(200));
}

#[test]
fn grpc_server_streaming() {
    let ex = run(GRPC_STREAM);
    assert_eq!(ex.len(), 1);
    let g = ex[0].grpc.as_ref().expect("grpc");
    assert_eq!(g.method.as_deref(), Some("Stream"));
    assert_eq!(g.status, Some(0));
    assert_eq!(g.resp_messages, vec![7, 17, 27, 37, 47]);
    assert_eq!(g.req_messages, vec![2]);
}

#[test]
fn grpc_stream_failure_with_trailers() {
    let ex = run(GRPC_STREAM_FAIL);
    assert_eq!(ex.len(), 1);
    let g = ex[0].grpc.as_ref().expect("grpc");
    assert_eq!(g.status, Some(14));
    assert_eq!(g.message.as_deref(), Some("backend went away"));
    assert_eq!(g.resp_messages, vec![5]);
    assert_eq!(
        crate::header(&ex[0].resp_trailers, "grpc-status"),
        Some("14")
    );
}

#[test]
fn mid_connection_never_guesses() {
    let full = run(SEQUENTIAL);
    let all = segs(SEQUENTIAL);
    // Drop the preface, SETTINGS and the first two exchanges.
    for skip in [7usize, 10, 12] {
        let mut p = Http2Parser::mid_connection(ParserLimits::default());
        let (ex, _) = fixture::replay(&mut p, &all[skip..]);
        assert!(!ex.is_empty(), "skip {skip}");
        let mut seen_requests = 0;
        for e in &ex {
            let id = e.stream_id.expect("id");
            let truth = full
                .iter()
                .find(|f| f.stream_id == Some(id))
                .expect("same stream");
            // Dynamic-table fields are dropped, never guessed.
            assert_eq!(e.error, Some(CallError::Degraded), "{e:?}");
            assert_eq!(e.authority, None);
            assert_eq!(e.req_header("x-tenant"), None);
            // What is known comes from the static table or literals; a
            // response whose request was never seen has no request fields.
            assert!(e.method.is_none() || e.method.as_deref() == Some("GET"));
            assert!(e.path.is_none() || e.path == truth.path);
            assert!(e.status.is_none() || e.status == Some(200));
            if e.path.is_some() {
                seen_requests += 1;
            }
            for h in &e.req_headers {
                assert!(truth.req_headers.contains(h), "{h:?}");
            }
            for h in &e.resp_headers {
                assert!(truth.resp_headers.contains(h), "{h:?}");
            }
            assert_eq!(e.resp_body, truth.resp_body);
        }
        assert!(p.stats().unresolved_fields > 0);
        assert!(seen_requests + 1 >= ex.len(), "skip {skip}");
    }
    // A fresh parser on a new connection decodes cleanly.
    assert!(run(SEQUENTIAL).iter().all(|e| e.error.is_none()));
}

#[test]
fn mid_connection_starting_inside_a_frame() {
    let all = segs(SEQUENTIAL);
    let mut cut = all[9..].to_vec();
    if let Segment::Data(d, b) = &cut[0] {
        cut[0] = Segment::Data(*d, b[5..].to_vec());
    }
    let mut p = Http2Parser::mid_connection(ParserLimits::default());
    let (ex, _) = fixture::replay(&mut p, &cut);
    let ids: Vec<u32> = ex.iter().filter_map(|e| e.stream_id).collect();
    assert!(ids.contains(&9) && ids.contains(&11), "{ids:?}");
}

/// Comparable view of an exchange: timing depends on how bytes were split.
fn strip(mut ex: Vec<Exchange>) -> Vec<Exchange> {
    for e in &mut ex {
        e.timing = Default::default();
    }
    ex.sort_by_key(|e| e.stream_id);
    ex
}

fn resplit(s: &[Segment], mut cut: impl FnMut(usize) -> usize) -> Vec<Segment> {
    let mut out = Vec::new();
    for seg in s {
        match seg {
            Segment::Data(d, b) => {
                let mut rest = &b[..];
                while !rest.is_empty() {
                    let n = cut(rest.len()).clamp(1, rest.len());
                    out.push(Segment::Data(*d, rest[..n].to_vec()));
                    rest = &rest[n..];
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

#[test]
fn splitting_anywhere_gives_same_exchanges() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (name, fx) in ALL {
        let s = segs(fx);
        let base = strip(run(fx));
        if fx.len() < 4096 {
            let mut p = Http2Parser::new(ParserLimits::default());
            let got = strip(fixture::replay(&mut p, &resplit(&s, |_| 1)).0);
            assert_eq!(got, base, "{name} byte by byte");
        }
        for _ in 0..20 {
            let mut p = Http2Parser::new(ParserLimits::default());
            let split = resplit(&s, |len| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % (len as u64 + 1)) as usize
            });
            let got = strip(fixture::replay(&mut p, &split).0);
            assert_eq!(got, base, "{name} random split");
        }
    }
}

#[test]
fn every_fixture_emits_on_close() {
    for (name, fx) in ALL {
        let mut s = segs(fx);
        s.retain(|x| !matches!(x, Segment::Close));
        let n = run(fx).len();
        // Cut the last ingress segment: something must come out as incomplete.
        let last_in = s
            .iter()
            .rposition(|x| matches!(x, Segment::Data(Direction::Ingress, _)));
        s.truncate(last_in.expect("ingress"));
        s.push(Segment::Close);
        let mut p = Http2Parser::new(ParserLimits::default());
        let got = fixture::replay(&mut p, &s).0;
        assert!(got.len() <= n, "{name}");
        assert_eq!(p.open_streams(), 0, "{name}");
    }
}

// ---- synthetic traffic --------------------------------------------------

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

struct Conn {
    p: Http2Parser,
    enc_c: loona_hpack::Encoder<'static>,
    enc_s: loona_hpack::Encoder<'static>,
    out: Vec<Exchange>,
    ts: u64,
}

impl Conn {
    fn new(limits: ParserLimits) -> Self {
        let mut c = Conn {
            p: Http2Parser::new(limits),
            enc_c: loona_hpack::Encoder::new(),
            enc_s: loona_hpack::Encoder::new(),
            out: Vec::new(),
            ts: 1000,
        };
        let mut pre = PREFACE.to_vec();
        pre.extend(frame(T_SETTINGS, 0, 0, &[]));
        c.send(Direction::Egress, &pre);
        c.send(Direction::Ingress, &frame(T_SETTINGS, 0, 0, &[]));
        c
    }
    fn send(&mut self, d: Direction, b: &[u8]) {
        self.ts += 1;
        self.p.data(d, self.ts, b, &mut self.out);
    }
    fn req_block(&mut self, path: &str) -> Vec<u8> {
        self.enc_c.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"https"),
            (b":authority", b"svc.test"),
            (b":path", path.as_bytes()),
            (b"x-trace", b"abc123"),
        ])
    }
    fn resp_block(&mut self, status: &str) -> Vec<u8> {
        self.enc_s.encode([
            (&b":status"[..], status.as_bytes()),
            (b"server", b"synthetic"),
            (b"x-backend", b"pool-7"),
        ])
    }
    fn get(&mut self, id: u32, path: &str) {
        let b = self.req_block(path);
        self.send(
            Direction::Egress,
            &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, id, &b),
        );
    }
    fn respond(&mut self, id: u32, body: &[u8]) {
        let b = self.resp_block("200");
        self.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, id, &b));
        self.send(Direction::Ingress, &frame(T_DATA, F_END_STREAM, id, body));
    }
}

#[test]
fn many_concurrent_streams() {
    let mut c = Conn::new(ParserLimits::default());
    let ids: Vec<u32> = (0..150).map(|i| 2 * i + 1).collect();
    for &id in &ids {
        c.get(id, &format!("/item/{id}"));
    }
    assert_eq!(c.p.open_streams(), 150);
    for &id in ids.iter().rev() {
        c.respond(id, format!("body {id}").as_bytes());
    }
    assert_eq!(c.out.len(), 150);
    for e in &c.out {
        let id = e.stream_id.expect("id");
        assert_eq!(e.path, Some(format!("/item/{id}")));
        assert_eq!(e.resp_body.captured, format!("body {id}").as_bytes());
        assert_eq!(e.authority.as_deref(), Some("svc.test"));
        assert_eq!(e.resp_header("server"), Some("synthetic"));
        assert_eq!(e.error, None);
    }
}

#[test]
fn stream_flood_is_bounded() {
    let limits = ParserLimits {
        pending: 16,
        ..Default::default()
    };
    let mut c = Conn::new(limits);
    for i in 0..100u32 {
        c.get(2 * i + 1, "/flood");
        assert!(c.p.open_streams() <= 16);
    }
    assert_eq!(c.p.stats().evicted_streams, 84);
    assert_eq!(c.out.len(), 84);
    assert!(c.out.iter().all(|e| e.error == Some(CallError::Incomplete)));
    // Late responses for evicted streams are ignored, not reopened.
    c.respond(1, b"late");
    assert_eq!(c.out.len(), 84);
    c.respond(199, b"ok");
    assert_eq!(c.out.len(), 85);
    assert_eq!(c.out[84].error, None);
}

#[test]
fn padding_priority_and_trailers() {
    let mut c = Conn::new(ParserLimits::default());
    let b = c.req_block("/upload");
    // HEADERS with PADDED and PRIORITY.
    let mut p = vec![3u8];
    p.extend([0, 0, 0, 0, 16]);
    p.extend(&b);
    p.extend([0, 0, 0]);
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_PADDED | F_PRIORITY, 1, &p),
    );
    // Padded DATA: padding excluded from the body.
    let mut d = vec![4u8];
    d.extend(b"abc");
    d.extend([0; 4]);
    c.send(Direction::Egress, &frame(T_DATA, F_PADDED, 1, &d));
    let tr = c.enc_c.encode([(&b"x-checksum"[..], &b"42"[..])]);
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &tr),
    );
    c.send(
        Direction::Ingress,
        &frame(T_PRIORITY, 0, 1, &[0, 0, 0, 0, 1]),
    );
    c.send(Direction::Ingress, &frame(0xfa, 0, 1, b"unknown type"));
    let rb = c.resp_block("200");
    c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, 1, &rb));
    c.send(Direction::Ingress, &frame(T_DATA, 0, 1, b"done"));
    let rt = c.enc_s.encode([(&b"x-final"[..], &b"yes"[..])]);
    c.send(
        Direction::Ingress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &rt),
    );
    assert_eq!(c.out.len(), 1);
    let e = &c.out[0];
    assert_eq!(e.path.as_deref(), Some("/upload"));
    assert_eq!(e.req_body.captured, b"abc");
    assert_eq!(
        e.req_trailers,
        vec![("x-checksum".to_string(), "42".to_string())]
    );
    assert_eq!(
        e.resp_trailers,
        vec![("x-final".to_string(), "yes".to_string())]
    );
    assert_eq!(e.resp_body.captured, b"done");
    assert_eq!(e.error, None);
}

#[test]
fn continuation_frames_join_header_block() {
    let mut c = Conn::new(ParserLimits::default());
    let b = c.req_block("/split");
    let (a, rest) = b.split_at(5);
    let (m, z) = rest.split_at(3);
    c.send(Direction::Egress, &frame(T_HEADERS, F_END_STREAM, 1, a));
    c.send(Direction::Egress, &frame(T_CONTINUATION, 0, 1, m));
    c.send(
        Direction::Egress,
        &frame(T_CONTINUATION, F_END_HEADERS, 1, z),
    );
    c.respond(1, b"x");
    assert_eq!(c.out.len(), 1);
    assert_eq!(c.out[0].path.as_deref(), Some("/split"));
    assert_eq!(c.out[0].error, None);
}

#[test]
fn goaway_covers_newer_streams() {
    let mut c = Conn::new(ParserLimits::default());
    for id in [1, 3, 5, 7] {
        c.get(id, "/g");
    }
    let mut g = 3u32.to_be_bytes().to_vec();
    g.extend(0u32.to_be_bytes());
    c.send(Direction::Ingress, &frame(T_GOAWAY, 0, 0, &g));
    assert_eq!(c.out.len(), 2);
    assert!(c.out.iter().all(|e| e.error == Some(CallError::GoAway(0))));
    let mut late: Vec<u32> = c.out.iter().filter_map(|e| e.stream_id).collect();
    late.sort_unstable();
    assert_eq!(late, vec![5, 7]);
    c.respond(1, b"a");
    c.respond(3, b"b");
    assert_eq!(c.out.len(), 4);
    assert_eq!(c.out[2].error, None);
    assert_eq!(c.out[3].error, None);
}

#[test]
fn close_emits_pending_as_incomplete() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/a");
    c.get(3, "/b");
    let rb = c.resp_block("200");
    c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, 3, &rb));
    c.p.close(5000, &mut c.out);
    assert_eq!(c.out.len(), 2);
    assert!(c.out.iter().all(|e| e.error == Some(CallError::Incomplete)));
    assert_eq!(c.out[1].status, Some(200));
}

/// curl stops reading once Content-Length bytes arrived; a server that sends
/// END_STREAM in a separate empty DATA frame then never gets it read. The
/// exchange is complete as the client saw it; without the Content-Length
/// match (or with a short body) it stays incomplete.
#[test]
fn close_after_full_content_length_is_complete() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/full");
    c.get(3, "/short");
    c.get(5, "/unknown-length");
    for (id, len, body) in [
        (1u32, "5", &b"hello"[..]),
        (3, "10", b"hello"),
        (5, "", b"hello"),
    ] {
        let mut h = vec![(&b":status"[..], &b"200"[..])];
        if !len.is_empty() {
            h.push((b"content-length", len.as_bytes()));
        }
        let b = c.enc_s.encode(h);
        c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, id, &b));
        c.send(Direction::Ingress, &frame(T_DATA, 0, id, body));
    }
    let data_ts = c.ts;
    c.p.close(9_000_000, &mut c.out);
    let full = by_path(&c.out, "/full");
    assert_eq!(full.error, None, "{full:?}");
    assert!(full.timing.resp_last_ns.is_some_and(|t| t <= data_ts));
    assert_eq!(by_path(&c.out, "/short").error, Some(CallError::Incomplete));
    assert_eq!(
        by_path(&c.out, "/unknown-length").error,
        Some(CallError::Incomplete)
    );
}

#[test]
fn informational_response_is_skipped() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/");
    let b = c.resp_block("103");
    c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, 1, &b));
    c.respond(1, b"");
    assert_eq!(c.out[0].status, Some(200));
}

#[test]
fn server_push_is_ignored_but_keeps_hpack_in_step() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/page");
    // PUSH_PROMISE on stream 1 for stream 2; its block inserts into the
    // server encoder's table, which later blocks reference.
    let pb = c.enc_s.encode([
        (&b":method"[..], &b"GET"[..]),
        (b":path", b"/style.css"),
        (b"x-pushed", b"1"),
    ]);
    let mut pp = 2u32.to_be_bytes().to_vec();
    pp.extend(&pb);
    c.send(
        Direction::Ingress,
        &frame(T_PUSH_PROMISE, F_END_HEADERS, 1, &pp),
    );
    let hb = c
        .enc_s
        .encode([(&b":status"[..], &b"200"[..]), (b"x-pushed", b"1")]);
    c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, 2, &hb));
    c.send(Direction::Ingress, &frame(T_DATA, F_END_STREAM, 2, b"css"));
    let rb = c
        .enc_s
        .encode([(&b":status"[..], &b"200"[..]), (b"x-pushed", b"1")]);
    c.send(
        Direction::Ingress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &rb),
    );
    assert_eq!(c.out.len(), 1);
    assert_eq!(c.out[0].stream_id, Some(1));
    assert_eq!(c.out[0].resp_header("x-pushed"), Some("1"));
    assert_eq!(c.out[0].error, None);
}

#[test]
fn header_table_size_setting_applies_to_the_other_direction() {
    // Size update to 8192 from the server encoder: allowed only after the
    // client advertised SETTINGS_HEADER_TABLE_SIZE >= 8192 (egress).
    let mut c = Conn::new(ParserLimits::default());
    let mut s = 1u16.to_be_bytes().to_vec();
    s.extend(8192u32.to_be_bytes());
    c.send(Direction::Egress, &frame(T_SETTINGS, 0, 0, &s));
    c.get(1, "/");
    let mut b = vec![0x3f, 0xe1, 0x3f]; // size update 8192
    b.extend(c.resp_block("200"));
    c.send(
        Direction::Ingress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    assert_eq!(c.out[0].error, None);
    assert_eq!(c.out[0].status, Some(200));

    // The same update from the client encoder: the server never allowed it.
    let mut c = Conn::new(ParserLimits::default());
    let mut b = vec![0x3f, 0xe1, 0x3f];
    b.extend(c.req_block("/"));
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    c.respond(1, b"");
    assert_eq!(
        c.out[0].error,
        Some(CallError::Malformed("hpack table size update too large"))
    );
}

// ---- hostile input ------------------------------------------------------

#[test]
fn continuation_without_headers() {
    let mut c = Conn::new(ParserLimits::default());
    let b = c.req_block("/x");
    c.send(Direction::Egress, &frame(T_HEADERS, F_END_HEADERS, 1, &b));
    c.send(
        Direction::Egress,
        &frame(T_CONTINUATION, F_END_HEADERS, 1, b"\x82"),
    );
    c.send(Direction::Egress, &frame(T_DATA, F_END_STREAM, 1, b""));
    c.respond(1, b"");
    assert_eq!(
        c.out[0].error,
        Some(CallError::Malformed("CONTINUATION without HEADERS"))
    );
}

#[test]
fn interleaved_frame_in_header_block() {
    let mut c = Conn::new(ParserLimits::default());
    let b = c.req_block("/x");
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    let b3 = c.req_block("/y");
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_STREAM, 3, &b3[..4]),
    );
    c.send(Direction::Egress, &frame(T_DATA, 0, 1, b"oops"));
    c.send(
        Direction::Egress,
        &frame(T_CONTINUATION, F_END_HEADERS, 3, &b3[4..]),
    );
    c.respond(1, b"");
    c.p.close(9999, &mut c.out);
    assert_eq!(
        c.out.len(),
        1,
        "stream 3 never got its headers: {:?}",
        c.out
    );
    // The block was abandoned; its insertions are lost, so the egress table
    // is no longer trusted.
    assert!(!c.p.dirs[0].hpack.is_reliable());
}

#[test]
fn endless_continuation_is_bounded() {
    let limits = ParserLimits {
        header_bytes: 1024,
        ..Default::default()
    };
    let mut c = Conn::new(limits);
    let b = c.req_block("/bomb");
    c.send(Direction::Egress, &frame(T_HEADERS, 0, 1, &b));
    let cont = frame(T_CONTINUATION, 0, 1, &[0x82; 1000]);
    for _ in 0..10_000 {
        c.send(Direction::Egress, &cont);
    }
    let blk = c.p.dirs[0].block.as_ref().expect("open block");
    assert!(blk.buf.capacity() <= 1024 + 1000, "{}", blk.buf.capacity());
    c.p.close(1, &mut c.out);
    assert_eq!(c.out.len(), 1);
    assert_eq!(
        c.out[0].error,
        Some(CallError::Malformed("header block too large"))
    );
}

#[test]
fn hpack_bomb_decoded_size() {
    // A 4000-byte entry referenced 100 times: 400 kB decoded from 100 bytes.
    let mut c = Conn::new(ParserLimits::default());
    let big = vec![b'a'; 4000];
    let mut b = c.req_block("/bomb");
    b.extend(c.enc_c.encode([(&b"x-big"[..], &big[..])]));
    for _ in 0..100 {
        b.extend(c.enc_c.encode([(&b"x-big"[..], &big[..])]));
    }
    // Header block itself is small enough? It is not: the first literal is
    // 4 kB. Raise the frame size the server accepts.
    let mut s = 5u16.to_be_bytes().to_vec();
    s.extend(65536u32.to_be_bytes());
    c.send(Direction::Ingress, &frame(T_SETTINGS, 0, 0, &s));
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    c.respond(1, b"");
    let e = &c.out[0];
    assert_eq!(e.error, Some(CallError::Malformed("header list too large")));
    assert_eq!(e.path.as_deref(), Some("/bomb"));
    assert!(e.req_headers.len() < 20);
}

#[test]
fn too_many_headers() {
    let limits = ParserLimits {
        headers: 8,
        ..Default::default()
    };
    let mut c = Conn::new(limits);
    let mut b = c.req_block("/many");
    for i in 0..20 {
        let name = format!("x-h{i}");
        b.extend(c.enc_c.encode([(name.as_bytes(), &b"v"[..])]));
    }
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    c.respond(1, b"");
    assert_eq!(
        c.out[0].error,
        Some(CallError::Malformed("too many headers"))
    );
    assert!(c.out[0].req_headers.len() <= 8);
}

#[test]
fn bad_frame_length_resyncs() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/before");
    c.send(Direction::Egress, &frame(T_PING, 0, 0, &[0; 7]));
    assert!(matches!(c.p.dirs[0].mode, Mode::Hunting));
    // Later well-formed frames are found again (static/literal fields only).
    let mut more = Vec::new();
    for id in [3u32, 5, 7] {
        more.extend(frame(
            T_HEADERS,
            F_END_HEADERS | F_END_STREAM,
            id,
            &[0x82, 0x87, 0x84],
        ));
    }
    c.send(Direction::Egress, &more);
    for id in [3u32, 5, 7] {
        let rb = [0x88];
        c.send(
            Direction::Ingress,
            &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, id, &rb),
        );
    }
    c.respond(1, b"x");
    let e1 = c.out.iter().find(|e| e.stream_id == Some(1)).expect("1");
    assert_eq!(e1.error, Some(CallError::Malformed("bad PING")));
    for id in [3u32, 5, 7] {
        let e = c
            .out
            .iter()
            .find(|e| e.stream_id == Some(id))
            .expect("resynced");
        assert_eq!(e.path.as_deref(), Some("/"));
        assert_eq!(e.status, Some(200));
    }
}

#[test]
fn oversized_frame_is_malformed() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/");
    // 16 MiB - 1 DATA frame against the default 16 kB limit.
    let mut h = vec![0xff, 0xff, 0xff, T_DATA, 0];
    h.extend(1u32.to_be_bytes());
    c.send(Direction::Egress, &h);
    c.p.close(1, &mut c.out);
    assert_eq!(
        c.out[0].error,
        Some(CallError::Malformed("frame too large"))
    );
    assert_eq!(c.p.stats().malformed, 1);
}

#[test]
fn garbage_gives_up_gracefully() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/");
    let mut x = 12345u32;
    let mut junk = Vec::new();
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x as u8);
    }
    for chunk in junk.chunks(1000) {
        c.send(Direction::Ingress, chunk);
        c.send(Direction::Egress, chunk);
    }
    c.p.close(1, &mut c.out);
    assert_eq!(c.p.open_streams(), 0);
    assert!(c.p.dirs.iter().all(|d| d.hunt.len() <= HUNT_BUF_MAX + 1000));
}

#[test]
fn gap_marks_in_flight_streams_and_resyncs() {
    let mut c = Conn::new(ParserLimits::default());
    c.get(1, "/a");
    c.get(3, "/b");
    let rb = c.resp_block("200");
    c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, 1, &rb));
    c.p.gap(Direction::Ingress, 500, 1, &mut c.out);
    // The response block for 3 references the server's dynamic table
    // ("x-backend: pool-7" was indexed): dropped, not guessed.
    let rb3 = c.resp_block("200");
    let mut tail = frame(T_HEADERS, F_END_HEADERS, 3, &rb3);
    tail.extend(frame(T_DATA, F_END_STREAM, 3, b"b"));
    tail.extend(frame(T_DATA, F_END_STREAM, 1, b"a"));
    c.send(Direction::Ingress, &tail);
    assert_eq!(c.out.len(), 2);
    for e in &c.out {
        assert_eq!(e.error, Some(CallError::DataLost));
    }
    let e3 = c.out.iter().find(|e| e.stream_id == Some(3)).expect("3");
    assert_eq!(e3.status, Some(200));
    assert_eq!(e3.resp_header("x-backend"), None);
    assert_eq!(e3.resp_header("server"), Some("synthetic")); // literal
                                                             // The egress direction is unaffected.
    c.get(5, "/c");
    c.send(
        Direction::Ingress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 5, &[0x88]),
    );
    let e5 = c.out.last().expect("5");
    assert_eq!(e5.authority.as_deref(), Some("svc.test"));
    assert_eq!(e5.req_header("x-trace"), Some("abc123"));
    assert_eq!(e5.error, None);
}

#[test]
fn invalid_path_is_not_kept() {
    let mut c = Conn::new(ParserLimits::default());
    let b = c
        .enc_c
        .encode([(&b":method"[..], &b"GET"[..]), (b":path", b"no-slash\x01")]);
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &b),
    );
    c.respond(1, b"");
    assert_eq!(c.out[0].path, None);
    assert_eq!(c.out[0].error, Some(CallError::Malformed("invalid :path")));
}

#[test]
fn bad_hpack_is_malformed() {
    let mut c = Conn::new(ParserLimits::default());
    // Index 0 and a truncated integer.
    c.send(
        Direction::Egress,
        &frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, &[0x82, 0x80]),
    );
    c.respond(1, b"");
    assert_eq!(c.out[0].error, Some(CallError::Malformed("hpack index 0")));
    assert_eq!(c.out[0].method.as_deref(), Some("GET"));
}

#[test]
fn detection_helpers() {
    assert!(looks_like_preface(PREFACE));
    assert!(looks_like_preface(b"PRI * HTTP/2.0\r\n"));
    assert!(!looks_like_preface(b"PRI"));
    assert!(!looks_like_preface(b"POST / HTTP/1.1\r\n"));
    assert!(!looks_like_preface(b"GET / HTTP/1.1\r\n"));
    let mut f = frame(T_HEADERS, F_END_HEADERS, 1, &[0x82, 0x84]);
    f.extend(frame(T_DATA, 0, 1, b"hi"));
    assert!(looks_like_frames(&f));
    assert!(looks_like_frames(&f[..12]));
    assert!(!looks_like_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!looks_like_frames(&f[..5]));
    assert!(!looks_like_frames(&frame(T_PING, 0, 3, &[0; 8])));
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    assert_eq!(percent_decode("caf%C3%A9"), "caf\u{e9}");
}

/// A reset after the whole response is the stream's end, not a failure: the
/// client resetting once Content-Length bytes arrived (any code), or the
/// server's NO_ERROR reset after its END_STREAM. A client reset before the
/// body is whole, or a server reset with an error code, stays a reset.
#[test]
fn reset_after_whole_response_is_not_an_error() {
    let mut c = Conn::new(ParserLimits::default());
    for (id, path) in [(1, "/full"), (3, "/short"), (5, "/cancel")] {
        c.get(id, path);
        let b = c
            .enc_s
            .encode([(&b":status"[..], &b"200"[..]), (b"content-length", b"5")]);
        c.send(Direction::Ingress, &frame(T_HEADERS, F_END_HEADERS, id, &b));
    }
    c.send(Direction::Ingress, &frame(T_DATA, 0, 1, b"hello"));
    let data_ts = c.ts;
    c.send(Direction::Ingress, &frame(T_DATA, 0, 3, b"hel"));
    c.send(Direction::Ingress, &frame(T_DATA, 0, 5, b"hello"));
    c.send(
        Direction::Egress,
        &frame(T_RST_STREAM, 0, 1, &5u32.to_be_bytes()),
    );
    c.send(
        Direction::Egress,
        &frame(T_RST_STREAM, 0, 3, &5u32.to_be_bytes()),
    );
    c.send(
        Direction::Egress,
        &frame(T_RST_STREAM, 0, 5, &8u32.to_be_bytes()),
    );

    // The server answers before the request body ends, then resets.
    for (id, path, code) in [(7, "/early", 0u32), (9, "/refused", 7)] {
        let b = c.req_block(path);
        c.send(Direction::Egress, &frame(T_HEADERS, F_END_HEADERS, id, &b));
        c.send(Direction::Egress, &frame(T_DATA, 0, id, b"partial"));
        c.respond(id, b"no");
        c.send(
            Direction::Ingress,
            &frame(T_RST_STREAM, 0, id, &code.to_be_bytes()),
        );
    }
    assert_eq!(c.out.len(), 5, "{:#?}", c.out);
    let full = by_path(&c.out, "/full");
    assert_eq!(full.error, None, "{full:?}");
    assert_eq!(full.timing.resp_last_ns, Some(data_ts));
    assert_eq!(by_path(&c.out, "/short").error, Some(CallError::Reset(5)));
    assert_eq!(by_path(&c.out, "/cancel").error, None);
    let early = by_path(&c.out, "/early");
    assert_eq!((early.error.clone(), early.status), (None, Some(200)));
    assert_eq!(by_path(&c.out, "/refused").error, Some(CallError::Reset(7)));
}
