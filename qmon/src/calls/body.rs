//! What of a captured body goes into the store.
//!
//! Textual bodies compressed with gzip or deflate are stored decoded so they
//! can be read and queried (`json_extract(resp_body, …)`). Everything else is
//! stored as captured. Decoding is bounded: a captured prefix of a larger
//! body decodes as far as it goes, and decoded output is capped so a
//! compression bomb cannot inflate memory.

use std::io::Read;

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};

use super::Body;

/// Default cap on decoded output: 4 × the default captured body limit.
pub const DEFAULT_DECODED_LIMIT: usize = 4 * 4096;

/// The body bytes to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBody {
    pub bytes: Vec<u8>,
    /// `bytes` are the decompressed content, not the wire bytes.
    pub decoded: bool,
    /// Decoding stopped early: the decoded output hit the cap, or the input
    /// was a truncated / corrupt stream and `bytes` is what decoded.
    pub partial: bool,
}

/// [`decode_for_storage_with_limit`] with [`DEFAULT_DECODED_LIMIT`].
pub fn decode_for_storage(
    body: &Body,
    content_encoding: Option<&str>,
    content_type: Option<&str>,
) -> StoredBody {
    decode_for_storage_with_limit(body, content_encoding, content_type, DEFAULT_DECODED_LIMIT)
}

/// Decode a gzip/deflate body of a textual content type, keeping at most
/// `max_decoded` bytes of output. Anything not decodable is stored raw.
pub fn decode_for_storage_with_limit(
    body: &Body,
    content_encoding: Option<&str>,
    content_type: Option<&str>,
    max_decoded: usize,
) -> StoredBody {
    let raw = || StoredBody {
        bytes: body.captured.clone(),
        decoded: false,
        partial: false,
    };
    let Some(encoding) = content_encoding.map(|e| e.trim().to_ascii_lowercase()) else {
        return raw();
    };
    if body.captured.is_empty() || !content_type.is_some_and(is_textual) {
        return raw();
    }
    let input = body.captured.as_slice();
    let result = match encoding.as_str() {
        "gzip" | "x-gzip" => read_bounded(GzDecoder::new(input), max_decoded),
        "deflate" => {
            if looks_like_zlib(input) {
                read_bounded(ZlibDecoder::new(input), max_decoded)
            } else {
                read_bounded(DeflateDecoder::new(input), max_decoded)
            }
        }
        // identity, br, zstd, stacked encodings: stored as captured.
        _ => return raw(),
    };
    match result {
        // Nothing decoded: not really compressed, keep the wire bytes.
        (bytes, _) if bytes.is_empty() => raw(),
        (bytes, complete) => StoredBody {
            bytes,
            decoded: true,
            partial: !complete || body.truncated,
        },
    }
}

/// Whether a content type is text that is worth decoding and storing as such.
/// gRPC (even `application/grpc+json`) is framed binary, never text.
pub fn is_textual(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct.starts_with("application/grpc") {
        return false;
    }
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("ecmascript")
        || ct == "application/x-www-form-urlencoded"
        || ct == "application/graphql"
        || ct == "application/x-ndjson"
        || ct == "application/yaml"
        || ct == "application/x-yaml"
}

/// RFC 1950 header: CM = 8, and the 16-bit header is a multiple of 31.
fn looks_like_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Read at most `max` bytes; returns the output and whether the stream ended
/// cleanly within the cap.
fn read_bounded<R: Read>(reader: R, max: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(max.min(64 * 1024));
    // One byte past the cap tells "exactly max" from "more than max".
    let mut limited = reader.take(max as u64 + 1);
    let mut chunk = [0u8; 8192];
    loop {
        match limited.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > max {
                    out.truncate(max);
                    return (out, false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Truncated or corrupt input: keep what decoded.
            Err(_) => return (out, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn body(bytes: Vec<u8>) -> Body {
        Body {
            total: bytes.len() as u64,
            captured: bytes,
            truncated: false,
        }
    }

    const JSON: &str = "application/json; charset=utf-8";

    #[test]
    fn gzip_json_is_decoded() {
        let text = br#"{"hello":"world","n":[1,2,3]}"#;
        let s = decode_for_storage(&body(gzip(text)), Some("gzip"), Some(JSON));
        assert_eq!(s.bytes, text);
        assert!(s.decoded);
        assert!(!s.partial);
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let text = b"<xml>hello hello hello</xml>";
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(text).unwrap();
        let z = z.finish().unwrap();
        let s = decode_for_storage(&body(z), Some("deflate"), Some("text/xml"));
        assert_eq!(s.bytes, text);
        assert!(s.decoded);

        let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(text).unwrap();
        let d = d.finish().unwrap();
        let s = decode_for_storage(&body(d), Some("Deflate"), Some("application/xml"));
        assert_eq!(s.bytes, text);
        assert!(s.decoded);
    }

    #[test]
    fn non_text_and_unknown_encodings_stay_raw() {
        let gz = gzip(b"binary-ish");
        for (ce, ct) in [
            (Some("gzip"), Some("application/grpc")),
            (Some("gzip"), Some("application/grpc+json")),
            (Some("gzip"), Some("image/png")),
            (Some("gzip"), None),
            (Some("br"), Some(JSON)),
            (Some("gzip, br"), Some(JSON)),
            (None, Some(JSON)),
        ] {
            let s = decode_for_storage(&body(gz.clone()), ce, ct);
            assert_eq!(s.bytes, gz, "{ce:?} {ct:?}");
            assert!(!s.decoded);
        }
    }

    #[test]
    fn not_actually_compressed_stays_raw() {
        let s = decode_for_storage(&body(b"{\"plain\":1}".to_vec()), Some("gzip"), Some(JSON));
        assert_eq!(s.bytes, b"{\"plain\":1}");
        assert!(!s.decoded);
    }

    #[test]
    fn truncated_body_decodes_partially() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"i\":{i}}},").into_bytes())
            .collect();
        let gz = gzip(&text);
        let mut b = Body::default();
        b.push(&gz, gz.len() / 2);
        assert!(b.truncated);
        let s = decode_for_storage_with_limit(&b, Some("gzip"), Some(JSON), 1 << 20);
        assert!(s.decoded);
        assert!(s.partial);
        assert!(!s.bytes.is_empty());
        assert!(
            text.starts_with(&s.bytes),
            "decoded prefix must match the original"
        );
    }

    #[test]
    fn gzip_bomb_stays_bounded() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let gz = gzip(&zeros);
        assert!(
            gz.len() < 64 * 1024,
            "bomb compresses to {} bytes",
            gz.len()
        );
        let s = decode_for_storage(&body(gz), Some("gzip"), Some("text/plain"));
        assert!(s.decoded);
        assert!(s.partial);
        assert_eq!(s.bytes.len(), DEFAULT_DECODED_LIMIT);
        let s = decode_for_storage_with_limit(
            &body(gzip(&zeros)),
            Some("gzip"),
            Some("text/plain"),
            1000,
        );
        assert_eq!(s.bytes.len(), 1000);
    }

    #[test]
    fn exact_cap_is_complete() {
        let text = vec![b'a'; 1000];
        let s = decode_for_storage_with_limit(
            &body(gzip(&text)),
            Some("gzip"),
            Some("text/plain"),
            1000,
        );
        assert_eq!(s.bytes.len(), 1000);
        assert!(!s.partial);
    }

    #[test]
    fn textual_types() {
        for t in [
            "text/html",
            "application/json",
            "application/vnd.api+json",
            "application/problem+json; charset=utf-8",
            "application/xml",
            "application/javascript",
            "application/x-www-form-urlencoded",
            "TEXT/PLAIN",
        ] {
            assert!(is_textual(t), "{t}");
        }
        for t in [
            "application/grpc",
            "application/grpc+proto",
            "application/octet-stream",
            "image/jpeg",
            "",
        ] {
            assert!(!is_textual(t), "{t}");
        }
    }
}
