//! Captured byte streams kept as test fixtures, and a driver that replays
//! them through a [`Parser`].
//!
//! Format (one file per capture, under `protocols/tests/fixtures/<protocol>/`):
//! a sequence of segments, each a header line then raw bytes then `\n`:
//!
//! ```text
//! > 78           egress (client → server) segment of 78 bytes
//! < 120          ingress (server → client) segment of 120 bytes
//! ! > 4096       gap: 4096 egress bytes were lost (no payload follows)
//! ! <  10        gap on ingress
//! . close        the connection closed
//! # comment      ignored
//! ```
//!
//! Segments appear in the order the bytes crossed the wire, so interleaving
//! (pipelining, concurrent streams) is preserved.

use crate::{Direction, Exchange, Parser, Progress};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
    Close,
}

#[derive(Debug, thiserror::Error)]
#[error("fixture line {line}: {msg}")]
pub struct FixtureError {
    pub line: usize,
    pub msg: String,
}

/// Parse a fixture file's bytes into segments.
pub fn parse(bytes: &[u8]) -> Result<Vec<Segment>, FixtureError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut line = 0;
    while pos < bytes.len() {
        line += 1;
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i)
            .unwrap_or(bytes.len());
        let head = String::from_utf8_lossy(&bytes[pos..end]).trim().to_string();
        pos = (end + 1).min(bytes.len());
        let err = |msg: &str| FixtureError {
            line,
            msg: msg.to_string(),
        };
        let mut words = head.split_whitespace();
        let dir_of = |w: Option<&str>| match w {
            Some(">") => Ok(Direction::Egress),
            Some("<") => Ok(Direction::Ingress),
            _ => Err(err("expected > or <")),
        };
        match words.next() {
            None | Some("#") => continue,
            Some(w) if w.starts_with('#') => continue,
            Some(".") => out.push(Segment::Close),
            Some("!") => {
                let dir = dir_of(words.next())?;
                let len = words
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| err("gap needs a length"))?;
                out.push(Segment::Gap(dir, len));
            }
            Some(w @ (">" | "<")) => {
                let dir = dir_of(Some(w))?;
                let len: usize = words
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| err("segment needs a length"))?;
                if pos + len > bytes.len() {
                    return Err(err("segment runs past end of file"));
                }
                out.push(Segment::Data(dir, bytes[pos..pos + len].to_vec()));
                pos += len;
                // The newline that ends the payload is optional at EOF.
                if bytes.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
            }
            Some(_) => return Err(err("unknown segment kind")),
        }
    }
    Ok(out)
}

/// Serialise segments in the fixture format (used by capture tools).
pub fn write(segments: &[Segment]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segments {
        match s {
            Segment::Data(d, b) => {
                out.extend_from_slice(format!("{} {}\n", arrow(*d), b.len()).as_bytes());
                out.extend_from_slice(b);
                out.push(b'\n');
            }
            Segment::Gap(d, n) => {
                out.extend_from_slice(format!("! {} {n}\n", arrow(*d)).as_bytes())
            }
            Segment::Close => out.extend_from_slice(b". close\n"),
        }
    }
    out
}

fn arrow(d: Direction) -> &'static str {
    match d {
        Direction::Egress => ">",
        Direction::Ingress => "<",
    }
}

/// Replay segments through a parser, 1 ms apart, and collect every exchange.
/// Stops feeding a parser that asks for an upgrade and returns the progress.
pub fn replay(parser: &mut dyn Parser, segments: &[Segment]) -> (Vec<Exchange>, Progress) {
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    for s in segments {
        ts += 1_000_000;
        match s {
            Segment::Data(d, b) => {
                let p = parser.data(*d, ts, b, &mut out);
                if p != Progress::Continue {
                    return (out, p);
                }
            }
            Segment::Gap(d, n) => parser.gap(*d, *n, ts, &mut out),
            Segment::Close => parser.close(ts, &mut out),
        }
    }
    (out, Progress::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let segs = vec![
            Segment::Data(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Segment::Gap(Direction::Ingress, 7),
            Segment::Data(Direction::Ingress, b"\nbinary\n\x00".to_vec()),
            Segment::Close,
        ];
        assert_eq!(parse(&write(&segs)).unwrap(), segs);
    }

    #[test]
    fn rejects_short_payload() {
        assert!(parse(b"> 10\nabc").is_err());
    }
}
