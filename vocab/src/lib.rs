//! The vocabulary shared by qmon's stages: what capture hands on and what
//! the protocol parsers take in, so neither has to import the other.
//!
//! Only things two stages both need belong here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Which way bytes flowed, seen from the client (the traced process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server: requests.
    Egress,
    /// Server → client: responses.
    Ingress,
}

impl Direction {
    /// 0 for egress, 1 for ingress: an index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }
    }
}

/// Unix time now, in nanoseconds (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_egress_then_ingress() {
        assert_eq!(Direction::Egress.index(), 0);
        assert_eq!(Direction::Ingress.index(), 1);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }
}
