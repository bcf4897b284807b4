use super::*;
use crate::fixture::{self, Segment};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/http1/",
            $name,
            ".txt"
        ))
        .as_slice()
    };
}

const ALL: &[(&str, &[u8])] = &[
    ("keepalive", fixture!("keepalive")),
    ("keepalive_1k", fixture!("keepalive_1k")),
    ("chunked_trailers", fixture!("chunked_trailers")),
    ("chunked_upload", fixture!("chunked_upload")),
    ("post_body", fixture!("post_body")),
    ("head", fixture!("head")),
    ("no_content", fixture!("no_content")),
    ("not_modified", fixture!("not_modified")),
    ("expect_continue", fixture!("expect_continue")),
    ("pipelined", fixture!("pipelined")),
    ("gzip", fixture!("gzip")),
    ("close_delimited", fixture!("close_delimited")),
    ("h2c_upgrade", fixture!("h2c_upgrade")),
    ("nginx_gzip_304", fixture!("nginx_gzip_304")),
];

fn segs(bytes: &[u8]) -> Vec<Segment> {
    fixture::parse(bytes).expect("fixture parses")
}

fn run_with(limits: ParserLimits, segments: &[Segment]) -> (Vec<Exchange>, Progress) {
    let mut p = Http1Parser::new(limits);
    fixture::replay(&mut p, segments)
}

fn run(bytes: &[u8]) -> Vec<Exchange> {
    let (out, progress) = run_with(ParserLimits::default(), &segs(bytes));
    assert_eq!(progress, Progress::Continue);
    out
}

fn data(dir: Direction, b: &[u8]) -> Segment {
    Segment::Data(dir, b.to_vec())
}

fn eg(b: &[u8]) -> Segment {
    data(Direction::Egress, b)
}

fn ing(b: &[u8]) -> Segment {
    data(Direction::Ingress, b)
}

fn assert_timing_order(ex: &Exchange) {
    let t = ex.timing;
    assert!(t.req_first_ns <= t.req_last_ns, "{t:?}");
    if let (Some(f), Some(l)) = (t.resp_first_ns, t.resp_last_ns) {
        assert!(f <= l, "{t:?}");
        assert!(t.req_first_ns <= f, "{t:?}");
    }
}

fn clean(ex: &Exchange) {
    assert_eq!(ex.error, None, "{ex:#?}");
    assert_timing_order(ex);
}

#[test]
fn keepalive_three_requests() {
    let out = run(fixture!("keepalive"));
    assert_eq!(out.len(), 3);
    let paths: Vec<_> = out.iter().map(|e| e.path.as_deref().unwrap()).collect();
    assert_eq!(paths, ["/hello", "/kb/1", "/missing"]);
    let statuses: Vec<_> = out.iter().map(|e| e.status.unwrap()).collect();
    assert_eq!(statuses, [200, 200, 404]);
    for ex in &out {
        clean(ex);
        assert_eq!(ex.protocol, Protocol::Http11);
        assert_eq!(ex.method.as_deref(), Some("GET"));
        assert_eq!(ex.authority.as_deref(), Some("127.0.0.1:18180"));
        assert_eq!(ex.scheme, None);
        assert_eq!(ex.req_header("user-agent"), Some("curl/7.88.1"));
    }
    assert_eq!(out[0].resp_body.captured, b"hello, world\n");
    assert_eq!(out[0].resp_body.total, 13);
    assert_eq!(out[1].resp_body.total, 1024);
    assert!(!out[1].resp_body.truncated);
    assert_eq!(out[2].resp_body.captured, b"not found\n");
    // Each exchange starts after the previous one's response ended.
    assert!(out[1].timing.req_first_ns > out[0].timing.resp_last_ns.unwrap());
}

#[test]
fn chunked_response_with_trailers() {
    let out = run(fixture!("chunked_trailers"));
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    clean(ex);
    assert_eq!(
        ex.resp_body.captured,
        b"first chunk\nsecond, a bit longer chunk\nthird\n"
    );
    assert_eq!(ex.resp_body.total, 45);
    assert_eq!(
        ex.resp_trailers,
        vec![
            ("X-Checksum".to_string(), "abc123".to_string()),
            ("X-Rows".to_string(), "3".to_string())
        ]
    );
    assert_eq!(ex.resp_header("trailer"), Some("X-Checksum, X-Rows"));
}

#[test]
fn chunked_request_body() {
    let out = run(fixture!("chunked_upload"));
    assert_eq!(out.len(), 1);
    clean(&out[0]);
    assert_eq!(out[0].method.as_deref(), Some("POST"));
    assert_eq!(out[0].req_body.captured, b"streamed request body");
    assert_eq!(out[0].resp_body.captured, b"got 21 bytes\n");
    assert_eq!(out[0].status, Some(201));
}

#[test]
fn post_with_body() {
    let out = run(fixture!("post_body"));
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    clean(ex);
    assert_eq!(ex.method.as_deref(), Some("POST"));
    assert_eq!(ex.path.as_deref(), Some("/upload"));
    assert_eq!(ex.req_body.captured, b"name=qmon&kind=monitor");
    assert_eq!(ex.req_body.total, 22);
    assert_eq!(ex.status, Some(201));
    assert_eq!(ex.resp_body.captured, b"got 22 bytes\n");
}

#[test]
fn head_has_no_body_despite_content_length() {
    let out = run(fixture!("head"));
    assert_eq!(out.len(), 1);
    clean(&out[0]);
    assert_eq!(out[0].method.as_deref(), Some("HEAD"));
    assert_eq!(out[0].resp_header("content-length"), Some("13"));
    assert_eq!(out[0].resp_body, Body::default());
}

#[test]
fn no_content_204() {
    let out = run(fixture!("no_content"));
    assert_eq!(out.len(), 1);
    clean(&out[0]);
    assert_eq!(out[0].method.as_deref(), Some("DELETE"));
    assert_eq!(out[0].status, Some(204));
    assert_eq!(out[0].resp_body.total, 0);
}

#[test]
fn not_modified_304_ignores_content_length() {
    let out = run(fixture!("not_modified"));
    assert_eq!(out.len(), 1);
    clean(&out[0]);
    assert_eq!(out[0].status, Some(304));
    assert_eq!(out[0].resp_body.total, 0);
    // Emitted when the 304 head arrived, not at close.
    assert!(out[0].timing.resp_last_ns.is_some());
}

#[test]
fn expect_100_continue_pairs_final_response() {
    let segments = segs(fixture!("expect_continue"));
    let (out, _) = run_with(ParserLimits::default(), &segments);
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    clean(ex);
    assert_eq!(ex.req_header("expect"), Some("100-continue"));
    assert_eq!(ex.status, Some(201));
    assert_eq!(ex.req_body.total, 2000);
    assert_eq!(ex.req_body.captured.len(), 2000);
    assert_eq!(ex.resp_body.captured, b"got 2000 bytes\n");
    // resp_first is the interim 100 (segment 2), request ends at segment 3.
    let base = 1_700_000_000_000_000_000u64;
    assert_eq!(ex.timing.req_first_ns, base + 1_000_000);
    assert_eq!(ex.timing.resp_first_ns, Some(base + 2_000_000));
    assert_eq!(ex.timing.req_last_ns, base + 3_000_000);
    assert_eq!(ex.timing.resp_last_ns, Some(base + 4_000_000));
}

#[test]
fn interim_103_is_skipped() {
    let s = vec![
        eg(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Some(200));
    assert_eq!(out[0].resp_header("link"), None);
    assert_eq!(out[0].resp_body.captured, b"ok");
}

#[test]
fn pipelined_requests_pair_in_order() {
    let out = run(fixture!("pipelined"));
    assert_eq!(out.len(), 3);
    let paths: Vec<_> = out.iter().map(|e| e.path.as_deref().unwrap()).collect();
    assert_eq!(paths, ["/hello", "/chunked", "/kb/1"]);
    for ex in &out {
        clean(ex);
        assert_eq!(ex.req_header("user-agent"), Some("pipeline"));
    }
    assert_eq!(out[0].resp_body.captured, b"hello, world\n");
    assert_eq!(out[1].resp_trailers.len(), 2);
    assert_eq!(out[2].resp_body.total, 1024);
    // All three requests came in one segment.
    assert_eq!(out[0].timing.req_first_ns, out[2].timing.req_first_ns);
}

#[test]
fn gzip_body_is_kept_compressed() {
    let out = run(fixture!("gzip"));
    assert_eq!(out.len(), 1);
    clean(&out[0]);
    assert_eq!(out[0].resp_header("content-encoding"), Some("gzip"));
    let body = &out[0].resp_body;
    assert_eq!(&body.captured[..2], b"\x1f\x8b");
    assert_eq!(
        body.total.to_string(),
        out[0].resp_header("content-length").unwrap()
    );
}

#[test]
fn close_delimited_http10() {
    let segments = segs(fixture!("close_delimited"));
    let (out, _) = run_with(ParserLimits::default(), &segments);
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    clean(ex);
    assert_eq!(ex.protocol, Protocol::Http10);
    assert_eq!(
        ex.resp_body.captured,
        b"close-delimited body, part one\nand part two\n"
    );
    // Without the close it is not emitted.
    let (none, _) = run_with(ParserLimits::default(), &segments[..segments.len() - 1]);
    assert!(none.is_empty());
}

#[test]
fn h2c_upgrade_keeps_request_for_http2() {
    let segments = segs(fixture!("h2c_upgrade"));
    let mut p = Http1Parser::new(ParserLimits::default());
    let (out, progress) = fixture::replay(&mut p, &segments);
    assert!(out.is_empty());
    let Segment::Data(Direction::Ingress, resp) = &segments[1] else {
        panic!("second segment is the 101");
    };
    let head_len = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        progress,
        Progress::Upgrade {
            to: UpgradeTo::H2c,
            consumed: head_len
        }
    );
    assert_eq!(&resp[head_len..], b"\0\0\0\x04\0\0\0\0\0");
    let ex = p.take_upgrade_request().expect("upgrade request kept");
    assert_eq!(ex.path.as_deref(), Some("/h2c"));
    assert_eq!(ex.status, Some(101));
    assert!(p.take_upgrade_request().is_none());
}

#[test]
fn websocket_upgrade_is_emitted() {
    let s = vec![
        eg(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        ing(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"),
    ];
    let mut p = Http1Parser::new(ParserLimits::default());
    let (out, progress) = fixture::replay(&mut p, &s);
    assert_eq!(
        progress,
        Progress::Upgrade {
            to: UpgradeTo::Other,
            consumed: 56
        }
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Some(101));
    assert!(p.take_upgrade_request().is_none());
}

#[test]
fn body_limit_keeps_prefix_and_counts_total() {
    let mib = 1 << 20;
    let mut s = vec![
        eg(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(format!("HTTP/1.1 200 OK\r\nContent-Length: {mib}\r\n\r\n").as_bytes()),
    ];
    for i in 0..16u8 {
        s.push(ing(&vec![b'a' + i; mib / 16]));
    }
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    let body = &out[0].resp_body;
    assert_eq!(body.captured.len(), 4096);
    assert_eq!(body.total, mib as u64);
    assert!(body.truncated);
    assert!(body.captured.iter().all(|&b| b == b'a'));
    assert_eq!(out[0].error, None);
}

#[test]
fn huge_content_length_streams_without_buffering() {
    let s = vec![
        eg(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc"),
        Segment::Close,
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some(CallError::Incomplete));
    assert_eq!(out[0].resp_body.captured, b"abc");
    // One past u64::MAX is not a length at all.
    let s = vec![
        eg(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\nabc"),
        Segment::Close,
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].error,
        Some(CallError::Malformed("bad_content_length"))
    );
}

#[test]
fn chunk_size_overflow_is_malformed_then_resyncs() {
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nxx\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert_eq!(out[0].error, Some(CallError::Malformed("bad_chunk_size")));
    assert_eq!(out[1].path.as_deref(), Some("/b"));
    assert_eq!(out[1].error, None);
    assert_eq!(out[1].resp_body.captured, b"b");
}

#[test]
fn header_flood_is_bounded() {
    let mut req = b"GET /flood HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100_000 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut p = Http1Parser::new(ParserLimits::default());
    let mut out = Vec::new();
    for piece in req.chunks(1000) {
        p.data(Direction::Egress, 1, piece, &mut out);
        assert!(p.eg.head.len() <= ParserLimits::default().header_bytes);
        assert!(p.eg.rs.len() <= ParserLimits::default().header_bytes);
    }
    p.data(
        Direction::Ingress,
        2,
        b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    p.data(
        Direction::Ingress,
        3,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].error, Some(CallError::Malformed("header_too_large")));
    assert_eq!(out[0].path.as_deref(), Some("/flood"));
    assert_eq!(out[0].status, Some(431));
    assert_eq!(out[1].path.as_deref(), Some("/next"));
    assert_eq!(out[1].status, Some(200));
    assert_eq!(out[1].error, None);
}

#[test]
fn headers_kept_are_capped() {
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..500 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let limits = ParserLimits {
        headers: 10,
        ..ParserLimits::default()
    };
    let (out, _) = run_with(
        limits,
        &[
            eg(&req),
            ing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].req_headers.len(), 10);
    assert_eq!(out[0].authority.as_deref(), Some("a"));
}

#[test]
fn gap_inside_known_length_body_is_accounted() {
    let s = vec![
        eg(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        Segment::Gap(Direction::Ingress, 80),
        ing(b"abcdefghij"),
        eg(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].error, Some(CallError::DataLost));
    assert_eq!(out[0].resp_body.total, 100);
    assert!(out[0].resp_body.truncated);
    assert_eq!(out[0].resp_body.captured, b"0123456789abcdefghij");
    assert_eq!(out[1].error, None);
    assert_eq!(out[1].path.as_deref(), Some("/2"));
}

#[test]
fn gap_in_request_body_is_accounted() {
    let s = vec![
        eg(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"),
        Segment::Gap(Direction::Egress, 6),
        eg(b"ij"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].req_body.total, 10);
    assert_eq!(out[0].req_body.captured, b"abij");
    assert_eq!(out[0].error, Some(CallError::DataLost));
    assert_eq!(out[0].status, Some(200));
}

#[test]
fn gap_in_chunked_body_resyncs_to_next_response() {
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
        Segment::Gap(Direction::Ingress, 500),
        ing(b"lo junk\r\n0\r\n\r\n"),
        eg(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert_eq!(out[0].error, Some(CallError::DataLost));
    assert_eq!(out[1].path.as_deref(), Some("/b"));
    assert_eq!(out[1].error, None);
    assert_eq!(out[1].resp_body.captured, b"ok");
}

#[test]
fn egress_gap_in_head_resyncs_and_pairs_placeholder() {
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHo"),
        Segment::Gap(Direction::Egress, 40),
        eg(b"ost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].error, Some(CallError::DataLost));
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert_eq!(out[0].resp_body.captured, b"a");
    assert_eq!(out[1].path.as_deref(), Some("/b"));
    assert_eq!(out[1].resp_body.captured, b"b");
    assert_eq!(out[1].error, None);
}

#[test]
fn ingress_gap_between_responses_marks_lost_response() {
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        Segment::Gap(Direction::Ingress, 37),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert_eq!(out[0].error, Some(CallError::DataLost));
    assert_eq!(out[0].status, None);
    assert_eq!(out[1].path.as_deref(), Some("/b"));
    assert_eq!(out[1].status, Some(200));
    assert_eq!(out[1].error, None);
}

#[test]
fn garbage_is_skipped_then_resyncs() {
    let mut junk = vec![0u8, 0xff, b'\r', b'\n', b'\n'];
    junk.extend((0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    junk.extend_from_slice(b"\r\n\r\n");
    let mut stream = junk.clone();
    stream.extend_from_slice(b"\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    let s = vec![
        eg(&stream),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    let ok: Vec<_> = out.iter().filter(|e| e.error.is_none()).collect();
    assert_eq!(ok.len(), 1, "{out:#?}");
    assert_eq!(ok[0].path.as_deref(), Some("/ok"));
}

#[test]
fn bad_request_line_is_malformed() {
    let s = vec![
        eg(b"GET /a HTTP/9.9\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some(CallError::Malformed("bad_request")));
    assert_eq!(out[0].status, Some(400));
}

#[test]
fn unpaired_response_is_recorded() {
    let (out, _) = run_with(
        ParserLimits::default(),
        &[ing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].error,
        Some(CallError::Malformed("unpaired_response"))
    );
}

#[test]
fn close_emits_pending_as_incomplete() {
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        Segment::Close,
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert_eq!(out[0].error, Some(CallError::Incomplete));
    assert_eq!(out[0].resp_body.captured, b"abc");
    assert_eq!(out[1].path.as_deref(), Some("/b"));
    assert_eq!(out[1].error, Some(CallError::Incomplete));
    assert_eq!(out[1].status, None);
}

#[test]
fn pending_queue_is_bounded() {
    let limits = ParserLimits {
        pending: 4,
        ..ParserLimits::default()
    };
    let mut p = Http1Parser::new(limits);
    let mut out = Vec::new();
    for i in 0..10 {
        let req = format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n");
        p.data(Direction::Egress, i, req.as_bytes(), &mut out);
    }
    assert_eq!(p.queue.len(), 4);
    assert_eq!(out.len(), 6);
    assert!(out.iter().all(|e| e.error == Some(CallError::Incomplete)));
    assert_eq!(out[0].path.as_deref(), Some("/0"));
    p.data(
        Direction::Ingress,
        11,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    assert_eq!(out[6].path.as_deref(), Some("/6"));
}

#[test]
fn looks_like_request_detects_methods() {
    assert!(looks_like_request(b"GET / HTTP/1.1\r\n"));
    assert!(looks_like_request(b"POST "));
    assert!(looks_like_request(b"OPTIONS * HTTP/1.1"));
    assert!(!looks_like_request(b"GET"));
    assert!(!looks_like_request(b"GETX / HTTP/1.1"));
    assert!(!looks_like_request(b"PRI * HTTP/2.0\r\n"));
    assert!(!looks_like_request(b"\x16\x03\x01\x02\x00"));
    assert!(!looks_like_request(b""));
}

fn without_timing(mut v: Vec<Exchange>) -> Vec<Exchange> {
    for e in &mut v {
        e.timing = Default::default();
    }
    v
}

/// Split every data segment of `s` at `at` (or into single bytes).
fn split_segments(s: &[Segment], which: usize, at: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    for (i, seg) in s.iter().enumerate() {
        match seg {
            Segment::Data(d, b) if i == which && at > 0 && at < b.len() => {
                out.push(Segment::Data(*d, b[..at].to_vec()));
                out.push(Segment::Data(*d, b[at..].to_vec()));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

#[test]
fn every_split_point_gives_identical_exchanges() {
    for (name, bytes) in ALL {
        let s = segs(bytes);
        let (want, want_p) = run_with(ParserLimits::default(), &s);
        assert!(
            !want.is_empty() || matches!(want_p, Progress::Upgrade { .. }),
            "{name}"
        );
        let want = without_timing(want);
        for (i, seg) in s.iter().enumerate() {
            let Segment::Data(_, b) = seg else { continue };
            for at in 1..b.len() {
                let (got, got_p) = run_with(ParserLimits::default(), &split_segments(&s, i, at));
                assert_eq!(
                    without_timing(got),
                    want,
                    "{name}: segment {i} split at {at}"
                );
                assert_eq!(
                    matches!(got_p, Progress::Upgrade { .. }),
                    matches!(want_p, Progress::Upgrade { .. }),
                    "{name}"
                );
            }
        }
        // And byte by byte throughout.
        let bytewise: Vec<Segment> = s
            .iter()
            .flat_map(|seg| match seg {
                Segment::Data(d, b) => b.iter().map(|&x| Segment::Data(*d, vec![x])).collect(),
                other => vec![other.clone()],
            })
            .collect();
        let (got, _) = run_with(ParserLimits::default(), &bytewise);
        assert_eq!(without_timing(got), want, "{name}: bytewise");
    }
}

/// Small deterministic PRNG (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_input_never_panics_and_stays_bounded() {
    let limits = ParserLimits {
        body_bytes: 64,
        header_bytes: 512,
        headers: 8,
        pending: 8,
    };
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let corpus: Vec<Vec<u8>> = ALL
        .iter()
        .flat_map(|(_, b)| segs(b))
        .filter_map(|s| match s {
            Segment::Data(_, b) => Some(b),
            _ => None,
        })
        .collect();
    for _ in 0..400 {
        let mut p = Http1Parser::new(limits);
        let mut out = Vec::new();
        for _ in 0..rng.below(30) {
            let dir = if rng.next() & 1 == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            match rng.below(10) {
                0 => p.gap(dir, rng.next() >> rng.below(64), 1, &mut out),
                1..=4 => {
                    let len = rng.below(300);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    p.data(dir, 1, &bytes, &mut out);
                }
                _ => {
                    // Mutated slices of real traffic.
                    let src = &corpus[rng.below(corpus.len())];
                    let a = rng.below(src.len());
                    let b = a + rng.below(src.len() - a + 1);
                    let mut bytes = src[a..b].to_vec();
                    if !bytes.is_empty() && rng.below(3) == 0 {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    p.data(dir, 1, &bytes, &mut out);
                }
            }
            assert!(p.eg.head.len() <= limits.header_bytes);
            assert!(p.ing.head.len() <= limits.header_bytes);
            assert!(p.queue.len() <= limits.pending);
            for e in &out {
                assert!(e.req_body.captured.len() <= limits.body_bytes);
                assert!(e.resp_body.captured.len() <= limits.body_bytes);
                assert!(e.req_headers.len() <= limits.headers);
            }
        }
        p.close(2, &mut out);
    }
}

#[test]
fn upgrade_index_is_right_after_resync() {
    let chunk = b"tail of lost body\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nXYZ";
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n"),
        Segment::Gap(Direction::Ingress, 5),
        ing(chunk),
    ];
    let mut p = Http1Parser::new(ParserLimits::default());
    let (out, progress) = fixture::replay(&mut p, &s);
    let Progress::Upgrade { to, consumed } = progress else {
        panic!("expected upgrade, got {progress:?} / {out:#?}");
    };
    assert_eq!(to, UpgradeTo::H2c);
    assert_eq!(&chunk[consumed..], b"XYZ");
    // The gap took /a's response start; the 101 found after resync is
    // unpaired, so it is recorded as lost data, never as /a's answer.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some(CallError::DataLost));
    let up = p.take_upgrade_request().unwrap();
    assert_eq!(up.status, Some(101));
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let s = vec![
        eg(b"GET /lf HTTP/1.1\nHost: a\n\n"),
        ing(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\nX-T: 1\n\n"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].error, None);
    assert_eq!(out[0].path.as_deref(), Some("/lf"));
    assert_eq!(out[0].resp_body.captured, b"ok");
    assert_eq!(out[0].resp_trailers, vec![("X-T".into(), "1".into())]);
}

#[test]
fn connect_tunnel_is_an_upgrade() {
    let s = vec![
        eg(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ing(b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01"),
    ];
    let (out, progress) = run_with(ParserLimits::default(), &s);
    assert_eq!(
        progress,
        Progress::Upgrade {
            to: UpgradeTo::Other,
            consumed: 39
        }
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path.as_deref(), Some("example.com:443"));
    assert_eq!(out[0].status, Some(200));
}

#[test]
fn nginx_chunked_gzip_then_304() {
    let out = run(fixture!("nginx_gzip_304"));
    assert_eq!(out.len(), 2);
    for ex in &out {
        clean(ex);
        assert_eq!(ex.path.as_deref(), Some("/data.txt"));
        assert_eq!(ex.resp_header("server"), Some("nginx/1.22.1"));
    }
    let gz = &out[0];
    assert_eq!(gz.status, Some(200));
    assert_eq!(gz.resp_header("transfer-encoding"), Some("chunked"));
    assert_eq!(&gz.resp_body.captured[..3], b"\x1f\x8b\x08");
    assert!(gz.resp_body.total > 100 && gz.resp_body.total < 1037);
    assert_eq!(gz.resp_body.captured.len() as u64, gz.resp_body.total);
    assert_eq!(out[1].status, Some(304));
    assert_eq!(out[1].resp_body.total, 0);
}

#[test]
fn silent_desync_recovers_at_next_status_line() {
    // Real capture: capture paused with no gap reported, so one response's
    // body runs into the middle of a later one. Bodies end without a
    // newline; before the status line was searched for mid-line, every
    // later call on the connection was left incomplete.
    let out = run(fixture!("desync_no_newline"));
    let statuses: Vec<_> = out.iter().map(|e| (e.status, e.error.clone())).collect();
    assert_eq!(out.len(), 7, "{statuses:?}");
    // The three calls before the pause, the last of them the one it cut
    // (its body counted from the wrong bytes, which nothing on the wire
    // can show).
    for e in &out[..3] {
        assert_eq!((e.status, &e.error), (Some(200), &None), "{statuses:?}");
    }
    // The first request after it pairs with the leftover bytes plus the
    // next head: marked, not guessed.
    assert_eq!(out[3].error, Some(CallError::Malformed("bad_response")));
    assert_eq!(out[3].path.as_deref(), Some("/16k"));
    // Every call after that is whole again.
    for e in &out[4..] {
        assert_eq!((e.status, &e.error), (Some(200), &None), "{statuses:?}");
        assert_eq!(e.resp_body.total, 16384);
        assert_eq!(e.path.as_deref(), Some("/16k"));
    }
}

#[test]
fn ingress_resync_finds_status_line_after_body_without_newline() {
    let tail = b"ngth: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for split in 0..=tail.len() {
        let s = vec![
            eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
            ing(b"HTTP/1.1 200 OK\r\nContent-Le"),
            Segment::Gap(Direction::Ingress, 20),
            ing(&tail[..split]),
            ing(&tail[split..]),
        ];
        let (out, _) = run_with(ParserLimits::default(), &s);
        assert_eq!(out.len(), 2, "split {split}: {out:#?}");
        assert_eq!(out[0].path.as_deref(), Some("/a"));
        assert_eq!(out[0].error, Some(CallError::DataLost));
        assert_eq!(out[1].path.as_deref(), Some("/b"), "split {split}");
        assert_eq!(out[1].error, None, "split {split}");
        assert_eq!(out[1].resp_body.captured, b"ok", "split {split}");
    }
}

#[test]
fn egress_resync_finds_request_line_after_body_without_newline() {
    let tail = b"ngth: 3\r\n\r\nabcPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy";
    for split in 0..=tail.len() {
        let s = vec![
            eg(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Le"),
            Segment::Gap(Direction::Egress, 10),
            eg(&tail[..split]),
            eg(&tail[split..]),
            ing(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
            ing(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"),
        ];
        let (out, _) = run_with(ParserLimits::default(), &s);
        assert_eq!(out.len(), 2, "split {split}: {out:#?}");
        assert_eq!(out[0].error, Some(CallError::DataLost), "split {split}");
        assert_eq!(out[1].path.as_deref(), Some("/b"), "split {split}");
        assert_eq!(out[1].method.as_deref(), Some("POST"), "split {split}");
        assert_eq!(out[1].req_body.captured, b"xy", "split {split}");
        assert_eq!(out[1].status, Some(202), "split {split}");
        assert_eq!(out[1].error, None, "split {split}");
    }
}

#[test]
fn resync_ignores_look_alikes() {
    // Not status lines: no digits, a fourth digit, HTTP/2. Not request
    // lines: a method with no target, an unknown method mid-line.
    let s = vec![
        eg(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"HTTP/1.1 200 OK\r\nContent-Le"),
        Segment::Gap(Direction::Ingress, 20),
        ing(b"xHTTP/1.1 OK xHTTP/1.1 2000 xHTTP/2 200 x"),
        ing(b"HTTP/1.1 204 No Content\r\n\r\n"),
    ];
    let (out, _) = run_with(ParserLimits::default(), &s);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[1].status, Some(204));
    assert_eq!(out[1].error, None);
    assert!(request_line_start(b"xGET  HTTP/1.1\r", false).is_none());
    assert!(request_line_start(b"xFETCH /a HTTP/1.1\r", false).is_none());
    assert_eq!(request_line_start(b"xGET /a HTTP/1.1\r", false), Some(1));
    assert_eq!(request_line_start(b"FETCH /a HTTP/1.1\r", true), Some(0));
}

#[test]
fn mid_stream_parser_skips_leftover_body_bytes() {
    // Joined mid-response: the leftover body is skipped, so the next
    // response pairs with the next request and nothing is marked.
    let s = vec![
        ing(b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        eg(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
        ing(b"bbbbHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let mut p = Http1Parser::mid_stream(ParserLimits::default());
    let (out, _) = fixture::replay(&mut p, &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].path.as_deref(), Some("/next"));
    assert_eq!((out[0].status, &out[0].error), (Some(200), &None));
    assert_eq!(out[0].resp_body.captured, b"ok");
    // A stream that starts cleanly parses exactly as with `new`.
    for (name, bytes) in ALL {
        let segs = segs(bytes);
        let mut p = Http1Parser::mid_stream(ParserLimits::default());
        let (mid, _) = fixture::replay(&mut p, &segs);
        let (new, _) = run_with(ParserLimits::default(), &segs);
        assert_eq!(format!("{mid:?}"), format!("{new:?}"), "{name}");
    }
}
