//! A [`Call`] turned into the values of one `call_records` row.

use rusqlite::types::Value;

use super::StoreOptions;
use crate::calls::body::decode_for_storage_with_limit;
use crate::calls::{header, Body, Call, Headers};

/// Identity of a `processes` row.
pub(super) type ProcessKey = (u32, String, Option<String>, Option<String>, Option<String>);

pub(super) struct Row {
    pub process: ProcessKey,
    pub values: Vec<Value>,
}

/// Column list matching [`Row::values`] (after `process_id`).
pub(super) const INSERT_SQL: &str = "INSERT INTO call_records (
    process_id, started_at, conn_id, remote_addr, tls, tls_lib, protocol, stream_id,
    method, scheme, authority, host, port, path, route, status, grpc_status, grpc_message,
    req_headers, resp_headers, req_trailers, resp_trailers,
    req_body, resp_body, req_body_decoded, resp_body_decoded,
    req_body_truncated, resp_body_truncated, req_bytes, resp_bytes,
    req_last_ns, resp_first_ns, resp_last_ns, error
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
          ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)";

fn text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.to_string()))
}

fn int(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |v| Value::Integer(super::to_i64(v)))
}

/// Headers as a JSON object: lowercase names in byte order; repeated headers
/// joined with `", "`, except `set-cookie`, joined with `"\n"`. The same text
/// serde_json writes for such a map, without building one: that was ~10% of
/// the store writer's CPU.
pub(crate) fn headers_json(headers: &Headers) -> String {
    let lower = |i: usize| headers[i].0.bytes().map(|b| b.to_ascii_lowercase());
    let mut order: Vec<usize> = (0..headers.len()).collect();
    // Stable: repeated names keep their order on the wire.
    order.sort_by(|&a, &b| lower(a).cmp(lower(b)));
    let mut out = String::with_capacity(
        2 + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        if i > 0 {
            out.push(',');
        }
        let name = headers[first].0.to_ascii_lowercase();
        push_json_str(&mut out, &name);
        out.push_str(":\"");
        let sep = if name == "set-cookie" { "\\n" } else { ", " };
        push_json_escaped(&mut out, &headers[first].1);
        i += 1;
        while i < order.len() && lower(order[i]).eq(lower(first)) {
            out.push_str(sep);
            push_json_escaped(&mut out, &headers[order[i]].1);
            i += 1;
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_escaped(out, s);
    out.push('"');
}

/// JSON string escaping as serde_json does it: short forms for the usual
/// controls, `\u00xx` for the rest below 0x20, everything else as is.
fn push_json_escaped(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Body value: NULL when nothing was captured, TEXT when UTF-8 (so
/// `json_extract` works on it), else BLOB. Returns (value, decoded, truncated).
fn body_value(body: &Body, headers: &Headers, limit: usize) -> (Value, bool, bool) {
    if body.captured.is_empty() {
        return (Value::Null, false, body.truncated);
    }
    let stored = decode_for_storage_with_limit(
        body,
        header(headers, "content-encoding"),
        header(headers, "content-type"),
        limit.saturating_mul(4),
    );
    let mut bytes = stored.bytes;
    let mut truncated = body.truncated || stored.partial;
    if !stored.decoded && bytes.len() > limit {
        bytes.truncate(limit);
        truncated = true;
    }
    let value = match String::from_utf8(bytes) {
        Ok(s) => Value::Text(s),
        Err(e) => Value::Blob(e.into_bytes()),
    };
    (value, stored.decoded, truncated)
}

pub(super) fn make_row(call: &Call, opts: &StoreOptions) -> Row {
    let p = &call.process;
    let ex = &call.exchange;
    let (req_body, req_dec, req_trunc) = body_value(&ex.req_body, &ex.req_headers, opts.body_limit);
    let (resp_body, resp_dec, resp_trunc) =
        body_value(&ex.resp_body, &ex.resp_headers, opts.body_limit);
    let trailers = |h: &Headers| {
        if h.is_empty() {
            Value::Null
        } else {
            Value::Text(headers_json(h))
        }
    };
    let grpc = ex.grpc.as_ref();
    let values = vec![
        Value::Integer(super::to_i64(ex.timing.req_first_ns)),
        Value::Integer(super::to_i64(call.conn.conn_id)),
        call.conn
            .remote
            .map_or(Value::Null, |a| Value::Text(a.to_string())),
        Value::Integer(call.conn.tls.into()),
        text(call.conn.tls_lib.as_deref()),
        Value::Text(ex.protocol.as_str().into()),
        int(ex.stream_id.map(u64::from)),
        text(ex.method.as_deref()),
        text(ex.scheme.as_deref()),
        text(ex.authority.as_deref()),
        Value::Text(call.host.clone()),
        int(call.port.map(u64::from)),
        text(ex.path.as_deref()),
        text(call.route.as_deref()),
        int(ex.status.map(u64::from)),
        grpc.and_then(|g| g.status)
            .map_or(Value::Null, |s| Value::Integer(s.into())),
        text(grpc.and_then(|g| g.message.as_deref())),
        Value::Text(headers_json(&ex.req_headers)),
        Value::Text(headers_json(&ex.resp_headers)),
        trailers(&ex.req_trailers),
        trailers(&ex.resp_trailers),
        req_body,
        resp_body,
        Value::Integer(req_dec.into()),
        Value::Integer(resp_dec.into()),
        Value::Integer(req_trunc.into()),
        Value::Integer(resp_trunc.into()),
        Value::Integer(super::to_i64(ex.req_body.total)),
        Value::Integer(super::to_i64(ex.resp_body.total)),
        int(Some(ex.timing.req_last_ns).filter(|&t| t != 0)),
        int(ex.timing.resp_first_ns),
        int(ex.timing.resp_last_ns),
        text(ex.error.as_ref().map(|e| e.as_text()).as_deref()),
    ];
    Row {
        process: (
            p.pid,
            p.comm.clone(),
            p.exe.clone(),
            (!p.args.is_empty()).then(|| p.args.join(" ")),
            p.container_id.clone(),
        ),
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::headers_json;
    use serde_json::{Map, Value as Json};

    /// What headers_json replaced: the same rules through a serde_json map.
    fn via_serde(headers: &[(String, String)]) -> String {
        let mut map = Map::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let sep = if name == "set-cookie" { "\n" } else { ", " };
            match map.get_mut(&name) {
                Some(Json::String(existing)) => {
                    existing.push_str(sep);
                    existing.push_str(value);
                }
                _ => {
                    map.insert(name, Json::String(value.clone()));
                }
            }
        }
        Json::Object(map).to_string()
    }

    #[test]
    fn headers_json_matches_serde_json() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("Content-Type", "application/json")],
            vec![
                ("Set-Cookie", "a=1"),
                ("X-B", "2"),
                ("set-cookie", "b=2"),
                ("Accept", "x"),
                ("SET-COOKIE", "c=3"),
            ],
            vec![("Vary", "a"), ("vary", "b"), ("VARY", "c"), ("Age", "1")],
            vec![
                ("x-q", "quote \" back \\ slash"),
                ("x-c", "\u{0}\u{1}\u{8}\t\n\u{c}\r\u{1f}\u{7f}"),
            ],
            vec![
                ("x-ü", "naïve ✓ 😀"),
                ("X-Ü", "dup"),
                ("Z", ""),
                ("", "empty name"),
            ],
            vec![("b", "1"), ("B_", "2"), ("a-", "3"), ("A", "4"), ("a", "5")],
        ];
        for case in cases {
            let headers: Vec<(String, String)> = case
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(headers_json(&headers), via_serde(&headers), "{case:?}");
        }
        // Every byte value that can appear in a header value.
        let all: String = (0u8..0x80).map(char::from).collect();
        let headers = vec![("X".to_string(), all)];
        assert_eq!(headers_json(&headers), via_serde(&headers));
    }
}
