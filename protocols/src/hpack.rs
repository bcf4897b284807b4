//! HPACK (RFC 7541) header block decoder for passive observation.
//!
//! Why not `loona-hpack`'s `Decoder` (which was evaluated, and is still used
//! as the *encoder* in tests and as a differential oracle in the fuzz
//! target): a passive monitor must keep decoding a block after a
//! dynamic-table reference it cannot resolve (capture started mid-connection,
//! or bytes were lost), drop exactly that field, and keep going so the static
//! and literal fields still come out. `loona_hpack::Decoder` stops at the
//! first unresolved index, offers no "static table only" mode, asserts (panics)
//! in `set_max_table_size` above the allowed size, and builds a `HashMap`
//! Huffman table per string. The wire format is small; this decoder is
//! written for exactly our needs: never guess, bounded memory, no panics.
//!
//! The Huffman code table is RFC 7541 Appendix B (as transcribed in
//! loona-hpack, MIT).

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Largest dynamic table this decoder keeps, whatever SETTINGS allow. If a
/// peer uses a larger table, entries we evicted early are simply unresolvable
/// (reported as degraded), never wrong: our table is always the newest
/// entries of the real one.
pub(crate) const MAX_TRACKED_TABLE: usize = 64 * 1024;

/// Default `SETTINGS_HEADER_TABLE_SIZE`.
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HpackError {
    #[error("hpack integer overflow or truncated")]
    Integer,
    #[error("hpack string truncated")]
    String,
    #[error("hpack huffman coding invalid")]
    Huffman,
    #[error("hpack table size update above the SETTINGS limit")]
    TableSizeTooLarge,
    #[error("hpack table size update after a header field")]
    SizeUpdatePosition,
    #[error("hpack index 0")]
    ZeroIndex,
}

impl HpackError {
    pub(crate) fn as_static(self) -> &'static str {
        match self {
            HpackError::Integer => "hpack integer",
            HpackError::String => "hpack string",
            HpackError::Huffman => "hpack huffman",
            HpackError::TableSizeTooLarge => "hpack table size update too large",
            HpackError::SizeUpdatePosition => "hpack table size update position",
            HpackError::ZeroIndex => "hpack index 0",
        }
    }
}

/// What decoding one header block produced besides the fields themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BlockOutcome {
    /// Fields dropped because they referenced dynamic-table state we do not
    /// have. Never guessed.
    pub unresolved: usize,
    /// The decoded list exceeded the byte or count bound; the rest of the
    /// block was still walked (to keep the table in sync) but not kept.
    pub oversize: bool,
    pub too_many: bool,
}

/// Bounds applied to one decoded header list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListLimits {
    /// Decoded bytes (name + value + 32 per field, as RFC 7540 counts).
    pub bytes: usize,
    pub count: usize,
}

type Entry = (Box<[u8]>, Box<[u8]>);
type Field<'a> = (&'a [u8], &'a [u8]);

#[derive(Debug)]
pub(crate) struct HpackDecoder {
    table: VecDeque<Entry>,
    size: usize,
    /// Current dynamic table size as set by the encoder (size updates).
    max_size: usize,
    /// Upper bound the decoding endpoint advertised (SETTINGS); `None` when
    /// unknown (capture started mid-connection).
    allowed: Option<usize>,
    /// False once any part of this direction's header stream was missed: from
    /// then on only static-table and literal fields are trusted.
    reliable: bool,
}

impl HpackDecoder {
    pub(crate) fn new(reliable: bool) -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
            allowed: if reliable {
                Some(DEFAULT_TABLE_SIZE)
            } else {
                None
            },
            reliable,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// The table state is no longer known. Permanent for this connection:
    /// the dynamic table is only ever rebuilt implicitly by the peer, so we
    /// cannot know when it again matches ours.
    pub(crate) fn set_unreliable(&mut self) {
        self.reliable = false;
        self.table.clear();
        self.size = 0;
    }

    /// The decoding endpoint advertised `SETTINGS_HEADER_TABLE_SIZE`.
    pub(crate) fn set_allowed(&mut self, v: u32) {
        let v = usize::try_from(v).unwrap_or(usize::MAX);
        self.allowed = Some(v);
        // RFC 7541 4.2: the encoder must follow with a size update; shrink
        // now so memory follows the smaller bound either way.
        if self.max_size > v {
            self.max_size = v;
            self.evict();
        }
    }

    fn evict(&mut self) {
        let cap = self.max_size.min(MAX_TRACKED_TABLE);
        while self.size > cap {
            match self.table.pop_back() {
                Some((n, v)) => {
                    self.size = self.size.saturating_sub(entry_size(&n, &v));
                }
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let sz = entry_size(name, value);
        if sz > self.max_size.min(MAX_TRACKED_TABLE) {
            // RFC 7541 4.4: an entry larger than the table empties it. If it
            // only exceeds our tracking cap, the real table kept older
            // entries that we now cannot resolve: fine, never wrong.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.size = self.size.saturating_add(sz);
        self.table.push_front((name.into(), value.into()));
        self.evict();
    }

    /// Resolve a 1-based HPACK index. `Ok(None)`: a dynamic entry we do not
    /// have (unknown state or evicted by our cap).
    fn lookup(&self, index: usize) -> Result<Option<Field<'_>>, HpackError> {
        if index == 0 {
            return Err(HpackError::ZeroIndex);
        }
        if let Some(&(n, v)) = STATIC_TABLE.get(index - 1) {
            return Ok(Some((n, v)));
        }
        if !self.reliable {
            return Ok(None);
        }
        let d = index - 1 - STATIC_TABLE.len();
        Ok(self.table.get(d).map(|(n, v)| (&n[..], &v[..])))
    }

    /// Decode one complete header block, calling `field` for each decoded
    /// field within `limits`. On error the dynamic table may be out of step:
    /// the caller must mark this decoder unreliable.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        limits: ListLimits,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<BlockOutcome, HpackError> {
        let mut out = BlockOutcome::default();
        let mut pos = 0usize;
        let mut seen_field = false;
        let mut list_bytes = 0usize;
        let mut count = 0usize;
        let mut scratch_n = Vec::new();
        let mut scratch_v = Vec::new();
        let mut emit = |n: &[u8], v: &[u8], out: &mut BlockOutcome| {
            if out.oversize || out.too_many {
                return;
            }
            list_bytes = list_bytes.saturating_add(entry_size(n, v));
            count += 1;
            if list_bytes > limits.bytes {
                out.oversize = true;
            } else if count > limits.count {
                out.too_many = true;
            } else {
                field(n, v);
            }
        };
        while let Some(&b) = block.get(pos) {
            let rest = block.get(pos..).unwrap_or_default();
            if b & 0x80 != 0 {
                // Indexed field.
                let (idx, used) = decode_int(rest, 7)?;
                pos += used;
                seen_field = true;
                match self.lookup(idx)? {
                    Some((n, v)) => emit(n, v, &mut out),
                    None => out.unresolved += 1,
                }
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field.
                let (sz, used) = decode_int(rest, 5)?;
                pos += used;
                if seen_field {
                    return Err(HpackError::SizeUpdatePosition);
                }
                if let Some(allowed) = self.allowed {
                    if sz > allowed {
                        return Err(HpackError::TableSizeTooLarge);
                    }
                }
                self.max_size = sz;
                self.evict();
            } else {
                // Literal: with incremental indexing (01), without (0000),
                // never indexed (0001).
                let (prefix, index) = if b & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let (name_idx, used) = decode_int(rest, prefix)?;
                pos += used;
                seen_field = true;
                let mut name_known = true;
                scratch_n.clear();
                if name_idx == 0 {
                    pos += decode_str(block.get(pos..).unwrap_or_default(), &mut scratch_n)?;
                } else {
                    match self.lookup(name_idx)? {
                        Some((n, _)) => scratch_n.extend_from_slice(n),
                        None => name_known = false,
                    }
                }
                scratch_v.clear();
                pos += decode_str(block.get(pos..).unwrap_or_default(), &mut scratch_v)?;
                if name_known {
                    emit(&scratch_n, &scratch_v, &mut out);
                } else {
                    out.unresolved += 1;
                }
                if index && self.reliable {
                    if name_known {
                        self.insert(&scratch_n, &scratch_v);
                    } else {
                        // The entry the peer inserted is unknown to us: every
                        // later dynamic index would be off by one. Stop
                        // trusting the table rather than guess.
                        self.set_unreliable();
                    }
                }
            }
        }
        Ok(out)
    }
}

fn entry_size(n: &[u8], v: &[u8]) -> usize {
    n.len().saturating_add(v.len()).saturating_add(32)
}

/// RFC 7541 5.1 integer; returns (value, bytes used). Values above 2^28 are
/// rejected: nothing legitimate needs them and it bounds the loop.
pub(crate) fn decode_int(buf: &[u8], prefix: u8) -> Result<(usize, usize), HpackError> {
    let first = *buf.first().ok_or(HpackError::Integer)?;
    let mask = u8::MAX >> (8 - prefix);
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        value = value
            .checked_add(usize::from(b & 0x7f) << shift)
            .ok_or(HpackError::Integer)?;
        if b & 0x80 == 0 {
            if value > (1 << 28) {
                return Err(HpackError::Integer);
            }
            return Ok((value, i + 1));
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::Integer);
        }
    }
    Err(HpackError::Integer)
}

/// RFC 7541 5.2 string literal appended to `out`; returns bytes used.
fn decode_str(buf: &[u8], out: &mut Vec<u8>) -> Result<usize, HpackError> {
    let huff = buf.first().ok_or(HpackError::String)? & 0x80 != 0;
    let (len, used) = decode_int(buf, 7)?;
    let end = used.checked_add(len).ok_or(HpackError::String)?;
    let raw = buf.get(used..end).ok_or(HpackError::String)?;
    if huff {
        huffman_decode(raw, out)?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(end)
}

/// Decoding tree: node `i` has children `[zero, one]`; a child >= 0 is an
/// inner node index, < 0 is a leaf `-(symbol + 1)`, and `i32::MIN` marks
/// "no child" (cannot happen for a complete code, kept for safety).
fn huffman_tree() -> &'static [[i32; 2]] {
    static TREE: OnceLock<Vec<[i32; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut nodes: Vec<[i32; 2]> = vec![[i32::MIN, i32::MIN]];
        for (sym, &(code, len)) in HUFFMAN_CODE_TABLE.iter().enumerate() {
            let mut node = 0usize;
            for bit in (0..len).rev() {
                let b = ((code >> bit) & 1) as usize;
                let last = bit == 0;
                let child = nodes[node][b];
                if last {
                    nodes[node][b] = -(sym as i32) - 1;
                } else if child >= 0 {
                    node = child as usize;
                } else {
                    let next = nodes.len();
                    nodes.push([i32::MIN, i32::MIN]);
                    nodes[node][b] = next as i32;
                    node = next;
                }
            }
        }
        nodes
    })
}

fn huffman_decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let tree = huffman_tree();
    let mut node = 0usize;
    // Bits since the last symbol, and whether they were all ones (the only
    // valid padding is a prefix of EOS, which is all ones, at most 7 bits).
    let mut pad_bits = 0u32;
    let mut pad_ones = true;
    for &byte in raw {
        for bit in (0..8).rev() {
            let b = usize::from((byte >> bit) & 1);
            let child = tree.get(node).ok_or(HpackError::Huffman)?[b];
            pad_bits += 1;
            pad_ones &= b == 1;
            if child == i32::MIN {
                return Err(HpackError::Huffman);
            } else if child < 0 {
                let sym = -(child + 1);
                if sym >= 256 {
                    return Err(HpackError::Huffman); // EOS inside a string
                }
                out.push(sym as u8);
                node = 0;
                pad_bits = 0;
                pad_ones = true;
            } else {
                node = child as usize;
            }
        }
    }
    if pad_bits > 7 || !pad_ones {
        return Err(HpackError::Huffman);
    }
    Ok(())
}

/// RFC 7541 Appendix A.
pub(crate) static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// RFC 7541 Appendix B: (code, bit length) per symbol, 256 = EOS.
static HUFFMAN_CODE_TABLE: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: ListLimits = ListLimits {
        bytes: 1 << 20,
        count: 1000,
    };

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(d: &mut HpackDecoder, b: &[u8]) -> (Vec<(String, String)>, BlockOutcome) {
        let mut v = Vec::new();
        let o = d
            .decode(b, LIM, |n, x| {
                v.push((
                    String::from_utf8_lossy(n).into(),
                    String::from_utf8_lossy(x).into(),
                ))
            })
            .unwrap();
        (v, o)
    }

    #[test]
    fn rfc7541_c4_huffman_requests() {
        let mut d = HpackDecoder::new(true);
        let (h, _) = decode(&mut d, &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"));
        assert_eq!(h[3], (":authority".into(), "www.example.com".into()));
        let (h, _) = decode(&mut d, &hex("828684be5886a8eb10649cbf"));
        assert_eq!(h[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(h[4], ("cache-control".into(), "no-cache".into()));
        let (h, _) = decode(
            &mut d,
            &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
        );
        assert_eq!(h[2], (":path".into(), "/index.html".into()));
        assert_eq!(h[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(h[4], ("custom-key".into(), "custom-value".into()));
    }

    #[test]
    fn unreliable_decoder_drops_only_dynamic_fields() {
        let mut d = HpackDecoder::new(false);
        // Second RFC request: `be` references the dynamic table.
        let (h, o) = decode(&mut d, &hex("828684be5886a8eb10649cbf"));
        assert_eq!(o.unresolved, 1);
        assert_eq!(h.len(), 4);
        assert!(h.iter().all(|(n, _)| n != ":authority"));
    }

    #[test]
    fn round_trips_loona_encoder() {
        let mut enc = loona_hpack::Encoder::new();
        let mut d = HpackDecoder::new(true);
        for i in 0..200u32 {
            let v = format!("value-{}", i % 7);
            let n = format!("x-name-{}", i % 11);
            let list: Vec<(&[u8], &[u8])> = vec![
                (b":method", b"GET"),
                (n.as_bytes(), v.as_bytes()),
                (b"x-const", b"same every time"),
            ];
            let b = enc.encode(list.iter().copied());
            let (h, o) = decode(&mut d, &b);
            assert_eq!(o, BlockOutcome::default());
            let want: Vec<(String, String)> = list
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into(),
                        String::from_utf8_lossy(v).into(),
                    )
                })
                .collect();
            assert_eq!(h, want);
        }
    }

    #[test]
    fn integers_and_strings_are_bounded() {
        assert_eq!(decode_int(&[0x1f, 0x9a, 0x0a], 5), Ok((1337, 3)));
        assert!(decode_int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 7).is_err());
        assert!(decode_int(&[0x7f, 0x80], 7).is_err());
        let mut d = HpackDecoder::new(true);
        // Literal with a string length past the end.
        assert_eq!(
            d.decode(&[0x40, 0x7f, 0x10, b'a'], LIM, |_, _| {}),
            Err(HpackError::String)
        );
        // EOS inside a Huffman string, and over-long padding.
        assert_eq!(
            d.decode(&[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00], LIM, |_, _| {}),
            Err(HpackError::Huffman)
        );
    }

    #[test]
    fn table_size_update_rules() {
        let mut d = HpackDecoder::new(true);
        assert_eq!(
            d.decode(&[0x3f, 0xe1, 0x3f], LIM, |_, _| {}),
            Err(HpackError::TableSizeTooLarge)
        );
        assert_eq!(
            d.decode(&[0x82, 0x20], LIM, |_, _| {}),
            Err(HpackError::SizeUpdatePosition)
        );
        d.set_allowed(8192);
        assert!(d.decode(&[0x3f, 0xe1, 0x3f, 0x82], LIM, |_, _| {}).is_ok());
        // Size 0 empties the table.
        let mut d = HpackDecoder::new(true);
        decode(
            &mut d,
            &hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"),
        );
        assert_eq!(decode(&mut d, &[0xbe]).1.unresolved, 0);
        assert_eq!(decode(&mut d, &[0x20, 0xbe]).1.unresolved, 1);
    }
}
