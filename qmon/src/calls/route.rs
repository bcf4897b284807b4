//! Route templates: a request path with the parts that vary per call (ids,
//! UUIDs, hashes, tokens) replaced by placeholders, so calls to the same
//! endpoint group together (`/repos/{id}/…` style aggregation in SQL).
//!
//! The result is bounded: at most [`MAX_SEGMENTS`] segments (the rest become
//! `/…`), each at most [`MAX_SEGMENT_LEN`] bytes, the whole at most
//! [`MAX_ROUTE_LEN`] bytes.

/// Segments kept; deeper paths end in `/…`.
pub const MAX_SEGMENTS: usize = 10;
/// Longest segment kept verbatim; longer ones are cut and end in `…`.
pub const MAX_SEGMENT_LEN: usize = 64;
/// Longest route returned.
pub const MAX_ROUTE_LEN: usize = 256;

const ELLIPSIS: &str = "…";

/// The route template of a request path (origin-form, absolute-form or `*`).
pub fn route(path: &str) -> String {
    // Query and fragment never belong to the route.
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let mut path = &path[..end];

    // Absolute-form (forward proxies): drop scheme and authority.
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    if path == "*" {
        return "*".into();
    }

    let trailing_slash = path.len() > 1 && path.ends_with('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    let mut out = String::with_capacity(path.len().min(MAX_ROUTE_LEN) + 8);
    for seg in segments.iter().take(MAX_SEGMENTS) {
        out.push('/');
        push_segment(&mut out, seg);
    }
    if segments.len() > MAX_SEGMENTS {
        out.push('/');
        out.push_str(ELLIPSIS);
    } else if trailing_slash {
        out.push('/');
    }
    if out.is_empty() {
        out.push('/');
    }
    if out.len() > MAX_ROUTE_LEN {
        let cut = floor_char_boundary(&out, MAX_ROUTE_LEN - ELLIPSIS.len());
        out.truncate(cut);
        out.push_str(ELLIPSIS);
    }
    out
}

fn push_segment(out: &mut String, seg: &str) {
    if let Some(p) = placeholder(seg) {
        out.push_str(p);
        return;
    }
    // `123.json`, `in_1MzX…9.pdf`: classify the stem, keep a short extension.
    if let Some((stem, ext)) = seg.rsplit_once('.') {
        if !stem.is_empty()
            && (1..=5).contains(&ext.len())
            && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            if let Some(p) = placeholder(stem) {
                out.push_str(p);
                out.push('.');
                out.push_str(ext);
                return;
            }
        }
    }
    if is_jwt(seg) {
        out.push_str("{token}");
        return;
    }
    if seg.len() > MAX_SEGMENT_LEN {
        let cut = floor_char_boundary(seg, MAX_SEGMENT_LEN);
        out.push_str(&seg[..cut]);
        out.push_str(ELLIPSIS);
    } else {
        out.push_str(seg);
    }
}

fn placeholder(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(b) {
        return Some("{uuid}");
    }
    let has_digit = b.iter().any(u8::is_ascii_digit);
    let has_alpha = b.iter().any(u8::is_ascii_alphabetic);
    if b.iter().all(u8::is_ascii_hexdigit)
        && (b.len() >= 12 || (b.len() >= 8 && has_digit && has_alpha))
    {
        return Some("{hex}");
    }
    if is_token(b, has_digit, has_alpha) || is_jwt(seg) {
        return Some("{token}");
    }
    None
}

fn is_uuid(b: &[u8]) -> bool {
    // 8-4-4-4-12, any case; also accept the 32-digit form via the hex rule.
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Long opaque identifiers: `cus_NffrFeUfNV2Hib`, `ch_3MmlLrLkdIwHu7ix0snN0B15`,
/// API keys in paths. Letters and digits must really interleave, so words
/// with a number on the end (`release-notes-2024`) stay as they are.
fn is_token(b: &[u8], has_digit: bool, has_alpha: bool) -> bool {
    if b.len() < 16 || !has_digit || !has_alpha {
        return false;
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'=' || *c == b'~')
    {
        return false;
    }
    let transitions = b
        .windows(2)
        .filter(|w| {
            (w[0].is_ascii_digit() && w[1].is_ascii_alphabetic())
                || (w[0].is_ascii_alphabetic() && w[1].is_ascii_digit())
        })
        .count();
    transitions >= 2
}

/// `eyJ…​.eyJ…​.sig` — three base64url parts, header starting `eyJ` (`{"`).
fn is_jwt(seg: &str) -> bool {
    let parts: Vec<&str> = seg.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[..2].iter().all(|p| p.len() >= 4)
        && parts.iter().all(|p| {
            p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'=')
        })
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(path: &str, want: &str) {
        assert_eq!(route(path), want, "route({path:?})");
    }

    #[test]
    fn plain_paths_are_kept() {
        check("/", "/");
        check("", "/");
        check("/v1/charges", "/v1/charges");
        check("/repos/rust-lang/rust/pulls", "/repos/rust-lang/rust/pulls");
        check("/api/v2/release-notes-2024", "/api/v2/release-notes-2024");
        check("/healthz", "/healthz");
        check("*", "*");
    }

    #[test]
    fn query_and_fragment_are_stripped() {
        check("/search?q=rust&page=2", "/search");
        check("/a/b#frag", "/a/b");
        check("/a?x=1#f", "/a");
        check("?only=query", "/");
    }

    #[test]
    fn github_paths() {
        check(
            "/repos/rust-lang/rust/issues/12345",
            "/repos/rust-lang/rust/issues/{id}",
        );
        check(
            "/repos/o/r/commits/3f786850e387550fdab836ed7e6dc881de23001b",
            "/repos/o/r/commits/{hex}",
        );
        check(
            "/repos/o/r/git/blobs/deadbeef12",
            "/repos/o/r/git/blobs/{hex}",
        );
        check("/user/repos?per_page=100", "/user/repos");
        check(
            "/repos/o/r/pulls/42/comments",
            "/repos/o/r/pulls/{id}/comments",
        );
    }

    #[test]
    fn stripe_paths() {
        check("/v1/customers/cus_NffrFeUfNV2Hib", "/v1/customers/{token}");
        check(
            "/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15/refunds",
            "/v1/charges/{token}/refunds",
        );
        check(
            "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm",
            "/v1/payment_intents/{token}/confirm",
        );
    }

    #[test]
    fn s3_paths() {
        check(
            "/my-bucket/photos/2023/IMG_1234.jpg",
            "/my-bucket/photos/{id}/IMG_1234.jpg",
        );
        check(
            "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
            "/bucket/key",
        );
        check(
            "/bucket/uploads/9f86d081884c7d659a2feaa0c55ad015.bin",
            "/bucket/uploads/{hex}.bin",
        );
        check("/bucket/123.json", "/bucket/{id}.json");
    }

    #[test]
    fn uuids() {
        check(
            "/api/users/550e8400-e29b-41d4-a716-446655440000/orders",
            "/api/users/{uuid}/orders",
        );
        check("/x/550E8400-E29B-41D4-A716-446655440000", "/x/{uuid}");
        check("/x/550e8400e29b41d4a716446655440000", "/x/{hex}");
    }

    #[test]
    fn hex_rules() {
        // 8 hex chars need both a digit and a letter…
        check("/c/a1b2c3d4", "/c/{hex}");
        // …so plain words made of hex letters survive.
        check("/c/deadbeef", "/c/deadbeef");
        check("/c/facade", "/c/facade");
        check("/c/abcdefabcdef", "/c/{hex}");
        check("/c/12345678", "/c/{id}");
    }

    #[test]
    fn tokens() {
        check(
            "/auth/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "/auth/{token}",
        );
        check("/keys/AKIAIOSFODNN7EXAMPLE", "/keys/{token}");
        check("/v1/keys/sk3Fq9ZtL0pWx7Yv2", "/v1/keys/{token}");
        // Long but plain words are kept.
        check(
            "/docs/getting-started-with-kubernetes",
            "/docs/getting-started-with-kubernetes",
        );
    }

    #[test]
    fn segment_limit() {
        check(
            "/1/2/3/4/5/6/7/8/9/10",
            "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}",
        );
        check("/a/b/c/d/e/f/g/h/i/j/k/l/m", "/a/b/c/d/e/f/g/h/i/j/…");
    }

    #[test]
    fn length_is_bounded() {
        let long = format!("/{}", "z".repeat(10_000));
        let r = route(&long);
        assert!(r.len() <= MAX_SEGMENT_LEN + 1 + ELLIPSIS.len());
        assert!(r.ends_with(ELLIPSIS));

        let many = "/".to_string() + &vec!["wordy-segment-name-here".repeat(3); 20].join("/");
        assert!(route(&many).len() <= MAX_ROUTE_LEN);

        let unicode = format!("/{}", "é".repeat(100));
        let r = route(&unicode);
        assert!(r.len() <= MAX_SEGMENT_LEN + 1 + ELLIPSIS.len());
    }

    #[test]
    fn absolute_form_and_slashes() {
        check("http://example.com/v1/items/7?x=1", "/v1/items/{id}");
        check("https://example.com", "/");
        check("//double//slash/", "/double/slash/");
        check("/trailing/", "/trailing/");
    }
}
