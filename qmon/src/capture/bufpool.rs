//! Payload buffers handed back by the pipeline for the capture thread to
//! refill.
//!
//! A data record's payload must be copied out before its ring buffer space
//! is released. Allocating every copy fresh on the capture thread and
//! freeing it on the pipeline thread kept the allocator busy with fresh
//! pages, page faults and remote frees (perf on the 16 KiB HTTPS loop, see
//! docs/benchmarks.md); refilling buffers the pipeline is done with avoids
//! most of that.

use std::sync::{Arc, Mutex};

/// Capacity kept in the pool at most; buffers returned beyond it are freed,
/// so a burst that outran the pipeline does not pin its memory.
pub const MAX_POOLED_BYTES: usize = 2 << 20;
/// Larger buffers are freed, not kept: one big write should not pin its
/// size for small ones.
pub const MAX_POOLED_BUF: usize = 64 << 10;

/// A shared pool of empty byte buffers. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct BufPool(Arc<Mutex<Pool>>);

#[derive(Debug, Default)]
struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufPool {
    /// A buffer holding a copy of `data`: a pooled one when there is one.
    pub fn filled(&self, data: &[u8]) -> Vec<u8> {
        let mut buf = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| {
                let b = p.bufs.pop()?;
                p.bytes -= b.capacity();
                Some(b)
            })
            .unwrap_or_default();
        buf.extend_from_slice(data);
        buf
    }

    /// Take back one buffer whose contents are no longer needed.
    #[cfg(test)]
    pub fn put(&self, buf: Vec<u8>) {
        self.put_all(&mut vec![buf]);
    }

    /// Take back every buffer in `bufs` under one lock (each lock takes a
    /// cache line the capture thread just used), leaving `bufs` empty.
    pub fn put_all(&self, bufs: &mut Vec<Vec<u8>>) {
        let Ok(mut p) = self.0.lock() else {
            bufs.clear();
            return;
        };
        for mut buf in bufs.drain(..) {
            let cap = buf.capacity();
            if cap == 0 || cap > MAX_POOLED_BUF || p.bytes + cap > MAX_POOLED_BYTES {
                continue;
            }
            buf.clear();
            p.bytes += cap;
            p.bufs.push(buf);
        }
    }

    /// Capacity currently pooled, in bytes.
    #[cfg(test)]
    pub fn pooled_bytes(&self) -> usize {
        self.0.lock().map_or(0, |p| p.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_empty_and_refilled() {
        let pool = BufPool::default();
        let a = pool.filled(b"first payload");
        let ptr = a.as_ptr();
        pool.put(a);
        assert!(pool.pooled_bytes() > 0);
        let b = pool.filled(b"two");
        assert_eq!(b, b"two");
        assert_eq!(b.as_ptr(), ptr, "the pooled allocation was not reused");
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn the_pool_is_bounded_in_bytes_and_buffer_size() {
        let pool = BufPool::default();
        pool.put(Vec::with_capacity(MAX_POOLED_BUF + 1));
        assert_eq!(pool.pooled_bytes(), 0, "an oversized buffer was kept");
        for _ in 0..(MAX_POOLED_BYTES / MAX_POOLED_BUF) + 8 {
            pool.put(Vec::with_capacity(MAX_POOLED_BUF));
        }
        assert!(pool.pooled_bytes() <= MAX_POOLED_BYTES);
        assert!(pool.pooled_bytes() >= MAX_POOLED_BYTES - MAX_POOLED_BUF);
    }

    #[test]
    fn put_all_empties_the_batch_and_keeps_the_same_bounds() {
        let pool = BufPool::default();
        let mut batch: Vec<Vec<u8>> = (0..(MAX_POOLED_BYTES / MAX_POOLED_BUF) + 8)
            .map(|_| Vec::with_capacity(MAX_POOLED_BUF))
            .collect();
        batch.push(Vec::with_capacity(MAX_POOLED_BUF + 1));
        batch.push(b"dirty".to_vec());
        pool.put_all(&mut batch);
        assert!(batch.is_empty());
        assert!(pool.pooled_bytes() <= MAX_POOLED_BYTES);
        assert!(pool.pooled_bytes() >= MAX_POOLED_BYTES - MAX_POOLED_BUF);
        // A buffer returned with contents comes out empty before it is filled.
        let fresh = BufPool::default();
        fresh.put_all(&mut vec![b"dirty".to_vec()]);
        assert!(fresh.pooled_bytes() > 0, "the dirty buffer was not kept");
        assert_eq!(fresh.filled(b"x"), b"x");
    }
}
