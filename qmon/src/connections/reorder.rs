//! Putting one connection's bytes in order: stream positions per direction,
//! overlaps skipped and gaps measured, so the parser is told about missing
//! bytes instead of reading past them.

use qmon_protocols::Direction;

/// Where each direction of one (connection, source) stream stands.
#[derive(Debug, Default, Clone)]
pub(super) struct Positions {
    /// Next expected position per direction (egress, ingress).
    next: [Option<u64>; 2],
    /// The stream did not start at position 0: capture began mid-connection.
    pub mid: bool,
}

/// What to do with one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placed {
    /// Leading bytes already seen (overlap); skip them.
    pub skip: usize,
    /// Bytes missing before this chunk.
    pub gap: u64,
}

impl Positions {
    /// Place `len` bytes of `dir` found at `pos` (`None`: position unknown,
    /// taken as in order).
    pub fn place(&mut self, dir: Direction, pos: Option<u64>, len: usize) -> Placed {
        let d = dir.index();
        let mut placed = Placed { skip: 0, gap: 0 };
        let Some(p) = pos else {
            return placed;
        };
        match self.next[d] {
            None if p > 0 => self.mid = true,
            Some(expected) if p > expected => placed.gap = p - expected,
            Some(expected) if p < expected => {
                placed.skip = (expected - p).min(len as u64) as usize;
            }
            _ => {}
        }
        let end = p.saturating_add(len as u64);
        self.next[d] = Some(self.next[d].map_or(end, |e| e.max(end)));
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_overlaps_and_late_starts() {
        let mut p = Positions::default();
        let e = Direction::Egress;
        assert_eq!(p.place(e, Some(0), 10), Placed { skip: 0, gap: 0 });
        assert_eq!(p.place(e, Some(15), 5), Placed { skip: 0, gap: 5 });
        // A retransmitted range: the first 3 bytes were seen.
        assert_eq!(p.place(e, Some(17), 5), Placed { skip: 3, gap: 0 });
        assert!(!p.mid);
        // The other direction starts late: mid-stream, no gap.
        assert_eq!(
            p.place(Direction::Ingress, Some(100), 1),
            Placed { skip: 0, gap: 0 }
        );
        assert!(p.mid);
        // Unknown positions are taken as in order.
        assert_eq!(p.place(e, None, 7), Placed { skip: 0, gap: 0 });
    }
}
