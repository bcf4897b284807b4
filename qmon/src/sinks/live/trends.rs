//! Per-series time buckets: the history behind the chart view and each
//! row's "recent p95", in bounded memory.
//!
//! A *series* is one (pid, process name, executable, host:port, route): the
//! finest row any grouping shows. A row of any grouping is the sum of its
//! series, so switching grouping, `p` or the filter keeps the history, and a
//! chart follows the same filter as its row.
//!
//! Each series keeps three tiers of [`TIER_SLOTS`] buckets: 1 s, 5 s and 15 s
//! wide (the last minute, five minutes, sixteen minutes). A bucket counts
//! calls and errors and holds a latency histogram of [`LAT_BINS`]
//! half-octave bins, so a percentile read from it is within 19% of the
//! exact one. Buckets are kept only where a series had calls.
//!
//! The bound: at most [`Limits::trend_series`](super::model::Limits)
//! series (the least recently updated are dropped first, and the drop is
//! counted), each at most [`SERIES_BUCKETS`] buckets of
//! `size_of::<Slot>()` (272) bytes. With the default 256 series that is
//! 256 × 192 × 272 B ≈ 12.75 MiB at most, plus the series' names
//! ([`Trends::bound_bytes`]). The calls themselves are not kept here: the
//! model's ring holds them.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::mem::size_of;

use super::model::{CallSample, Ident};

/// Buckets per tier.
pub const TIER_SLOTS: usize = 64;
/// Bucket widths of the tiers, in seconds.
pub const TIER_SECS: [u64; 3] = [1, 5, 15];
/// Buckets a series holds at most.
pub const SERIES_BUCKETS: usize = TIER_SLOTS * TIER_SECS.len();
/// Latency bins per bucket: half octaves from 1 µs (bin 0 takes anything
/// faster) to 2^41 ns ≈ 37 min (the last bin takes anything slower).
pub const LAT_BINS: usize = 64;
/// Bin 0 ends at 2^(LAT_BIN0 + 1)/2 ns = 1024 ns.
const LAT_BIN0: i64 = 19;
/// How far back the longest tier reaches: a series dropped with data this
/// recent loses history a chart could show.
pub const HISTORY_NS: u64 = TIER_SLOTS as u64 * 15 * NS;

const NS: u64 = 1_000_000_000;

/// Calls starting further than this past the wall clock are not bucketed:
/// one bad timestamp would otherwise make every later call look too old
/// for the tiers to keep.
pub const FUTURE_SLACK_NS: u64 = 60 * NS;

/// The half-octave bin of a latency.
pub fn lat_bin(ns: u64) -> usize {
    if ns == 0 {
        return 0;
    }
    let b = (2.0 * (ns as f64).log2()).floor() as i64 - LAT_BIN0;
    b.clamp(0, LAT_BINS as i64 - 1) as usize
}

/// Lowest latency (ns) of bin `b` (bin 0: 0).
pub fn lat_bin_low(b: usize) -> u64 {
    if b == 0 {
        return 0;
    }
    2f64.powf((b as i64 + LAT_BIN0) as f64 / 2.0).ceil() as u64
}

/// Highest latency (ns) of bin `b` (the last bin: u64::MAX).
pub fn lat_bin_high(b: usize) -> u64 {
    if b + 1 >= LAT_BINS {
        return u64::MAX;
    }
    lat_bin_low(b + 1).saturating_sub(1)
}

/// The value a bin stands for: its geometric middle.
fn lat_bin_mid(b: usize) -> u64 {
    2f64.powf((b as i64 + LAT_BIN0) as f64 / 2.0 + 0.25) as u64
}

/// Calls, errors and latencies of one time bucket (or of several merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub reqs: u32,
    pub errors: u32,
    /// Calls per latency bin (calls without a response have none).
    pub lat: [u32; LAT_BINS],
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            reqs: 0,
            errors: 0,
            lat: [0; LAT_BINS],
        }
    }
}

impl Bucket {
    fn add(&mut self, error: bool, duration_ns: Option<u64>) {
        self.reqs = self.reqs.saturating_add(1);
        if error {
            self.errors = self.errors.saturating_add(1);
        }
        if let Some(d) = duration_ns {
            let b = &mut self.lat[lat_bin(d)];
            *b = b.saturating_add(1);
        }
    }

    pub fn merge(&mut self, o: &Bucket) {
        self.reqs = self.reqs.saturating_add(o.reqs);
        self.errors = self.errors.saturating_add(o.errors);
        for (a, b) in self.lat.iter_mut().zip(&o.lat) {
            *a = a.saturating_add(*b);
        }
    }

    /// The bin holding the nearest-rank `p`th percentile latency.
    pub fn percentile_bin(&self, p: f64) -> Option<usize> {
        let n: u64 = self.lat.iter().map(|c| u64::from(*c)).sum();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (b, c) in self.lat.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(b);
            }
        }
        Some(LAT_BINS - 1)
    }

    /// The `p`th percentile latency (ns), within 19%.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        self.percentile_bin(p).map(lat_bin_mid)
    }

    pub fn error_pct(&self) -> Option<f64> {
        (self.reqs > 0).then(|| 100.0 * f64::from(self.errors) / f64::from(self.reqs))
    }
}

/// A bucket and its number (start time / width).
#[derive(Debug, Clone)]
pub struct Slot {
    pub idx: u64,
    pub bucket: Bucket,
}

/// The buckets of one width, oldest first; at most [`TIER_SLOTS`], all
/// within [`TIER_SLOTS`] widths of the newest.
#[derive(Debug, Default)]
struct Tier {
    slots: VecDeque<Slot>,
}

impl Tier {
    /// The wall clock went back past this tier's newest bucket: start
    /// again from the new time rather than ignore every call until the
    /// clock catches up.
    fn follow_clock(&mut self, now_idx: u64) {
        if self.slots.back().is_some_and(|s| s.idx > now_idx) {
            self.slots.clear();
        }
    }

    fn add(&mut self, idx: u64, error: bool, duration_ns: Option<u64>) {
        let newest = self.slots.back().map(|s| s.idx);
        match newest {
            // Older than the tier reaches.
            Some(n) if idx + TIER_SLOTS as u64 <= n => {}
            Some(n) if idx <= n => {
                // Calls finish out of start order: find or insert its bucket.
                let pos = self.slots.iter().rposition(|s| s.idx <= idx);
                match pos {
                    Some(p) if self.slots[p].idx == idx => {
                        self.slots[p].bucket.add(error, duration_ns)
                    }
                    p => {
                        let mut bucket = Bucket::default();
                        bucket.add(error, duration_ns);
                        self.slots
                            .insert(p.map_or(0, |p| p + 1), Slot { idx, bucket });
                    }
                }
            }
            _ => {
                let mut bucket = Bucket::default();
                bucket.add(error, duration_ns);
                self.slots.push_back(Slot { idx, bucket });
                while self
                    .slots
                    .front()
                    .is_some_and(|s| s.idx + TIER_SLOTS as u64 <= idx)
                {
                    self.slots.pop_front();
                }
            }
        }
    }
}

/// What a series is: the identity fields of its calls.
#[derive(Debug, Clone)]
pub struct SeriesKey {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub route: Option<String>,
}

impl SeriesKey {
    fn of(c: &CallSample) -> SeriesKey {
        SeriesKey {
            pid: c.pid,
            comm: c.comm.clone(),
            exe: c.exe.clone(),
            host: c.host.clone(),
            port: c.port,
            route: c.route.clone(),
        }
    }

    fn name_bytes(&self) -> usize {
        self.comm.capacity()
            + self.exe.as_ref().map_or(0, String::capacity)
            + self.host.capacity()
            + self.route.as_ref().map_or(0, String::capacity)
    }
}

// A call finds its series by its own fields (`&dyn Ident`), so only a new
// series copies them.
fn ident_fields<'a>(
    i: &'a (dyn Ident + 'a),
) -> (
    u32,
    &'a str,
    Option<&'a str>,
    &'a str,
    Option<u16>,
    Option<&'a str>,
) {
    (i.pid(), i.comm(), i.exe(), i.host(), i.port(), i.route())
}

impl Hash for dyn Ident + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        ident_fields(self).hash(state)
    }
}

impl PartialEq for dyn Ident + '_ {
    fn eq(&self, o: &Self) -> bool {
        ident_fields(self) == ident_fields(o)
    }
}

impl Eq for dyn Ident + '_ {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn Ident).hash(state)
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, o: &Self) -> bool {
        (self as &dyn Ident) == (o as &dyn Ident)
    }
}

impl Eq for SeriesKey {}

impl<'a> Borrow<dyn Ident + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn Ident + 'a) {
        self
    }
}

impl Ident for SeriesKey {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn comm(&self) -> &str {
        &self.comm
    }
    fn exe(&self) -> Option<&str> {
        self.exe.as_deref()
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn port(&self) -> Option<u16> {
        self.port
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
}

#[derive(Debug, Default)]
pub struct Series {
    /// [`Trends`]' clock when last updated (least recent is dropped first).
    touched: u64,
    /// Start of the newest call (ns).
    newest_ns: u64,
    tiers: [Tier; 3],
}

impl Series {
    fn add(&mut self, c: &CallSample, clock: u64, now_ns: u64) {
        self.touched = clock;
        self.newest_ns = self.newest_ns.max(c.started_ns);
        let error = c.is_error();
        let latest = now_ns.saturating_add(FUTURE_SLACK_NS);
        for (tier, secs) in self.tiers.iter_mut().zip(TIER_SECS) {
            tier.follow_clock(latest / (secs * NS));
            tier.add(c.started_ns / (secs * NS), error, c.duration_ns);
        }
    }

    /// Buckets of tier `t` (oldest first).
    fn slots(&self, t: usize) -> impl DoubleEndedIterator<Item = &Slot> {
        self.tiers[t].slots.iter()
    }
}

/// Every series' buckets.
#[derive(Debug)]
pub struct Trends {
    max_series: usize,
    series: HashMap<SeriesKey, Series, foldhash::fast::RandomState>,
    clock: u64,
    /// Start of the newest call seen (ns).
    newest_ns: u64,
    /// Series dropped to stay within the bound.
    pub dropped: u64,
    /// Newest call time of a series dropped while it still had history a
    /// chart could show: charts from before this are partial.
    pub lost_upto_ns: u64,
    /// Calls not bucketed: they started too far past the wall clock.
    pub future: u64,
}

/// Which tier and how many of its buckets a chart over `window_secs` uses
/// (`None`: everything kept, i.e. the longest tier).
pub fn chart_tier(window_secs: Option<u64>) -> (usize, usize) {
    match window_secs {
        Some(w) if w <= 60 => (0, (w as usize).clamp(1, 60)),
        Some(w) if w <= 300 => (1, (w / 5) as usize),
        Some(w) => (2, ((w / 15) as usize).min(TIER_SLOTS)),
        None => (2, TIER_SLOTS),
    }
}

/// One chart's data: a bucket per width from `from_ns` to `to_ns`,
/// empty where nothing was called.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    pub width_ns: u64,
    /// Start of the first bucket.
    pub from_ns: u64,
    /// End of the last (complete) bucket.
    pub to_ns: u64,
    /// (start ns, bucket), oldest first; only buckets after observation
    /// started.
    pub buckets: Vec<(u64, Bucket)>,
    /// Series of this chart may have been dropped (the memory bound).
    pub partial: bool,
}

impl Trends {
    pub fn new(max_series: usize) -> Trends {
        Trends {
            max_series: max_series.max(1),
            series: HashMap::default(),
            clock: 0,
            newest_ns: 0,
            dropped: 0,
            lost_upto_ns: 0,
            future: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Bucket `c`; `now_ns` is the wall clock (see [`FUTURE_SLACK_NS`]).
    pub fn add(&mut self, c: &CallSample, now_ns: u64) {
        if c.started_ns > now_ns.saturating_add(FUTURE_SLACK_NS) {
            self.future += 1;
            return;
        }
        self.clock += 1;
        self.newest_ns = self.newest_ns.max(c.started_ns);
        let ident: &dyn Ident = c;
        if let Some(s) = self.series.get_mut(ident) {
            s.add(c, self.clock, now_ns);
            return;
        }
        if self.series.len() >= self.max_series {
            self.evict();
        }
        let s = self.series.entry(SeriesKey::of(c)).or_default();
        s.add(c, self.clock, now_ns);
    }

    /// Drop the least recently updated quarter of the series (at least
    /// one), so a flood of new series costs O(1) per call amortized.
    fn evict(&mut self) {
        let mut touched: Vec<u64> = self.series.values().map(|s| s.touched).collect();
        let n = (touched.len() / 4).max(1);
        let (_, cutoff, _) = touched.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let horizon = self.newest_ns.saturating_sub(HISTORY_NS);
        let (mut dropped, mut lost) = (0, self.lost_upto_ns);
        self.series.retain(|_, s| {
            let keep = s.touched > cutoff;
            if !keep {
                dropped += 1;
                if s.newest_ns >= horizon {
                    lost = lost.max(s.newest_ns);
                }
            }
            keep
        });
        self.dropped += dropped;
        self.lost_upto_ns = lost;
    }

    pub fn series(&self) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        self.series.iter()
    }

    /// One bucket of everything the selected series had in the last
    /// [`HISTORY_NS`] before `now_ns` (the longest tier).
    pub fn recent(series: &Series, now_ns: u64, into: &mut Bucket) {
        let width = TIER_SECS[2] * NS;
        let from = now_ns.saturating_sub(HISTORY_NS) / width;
        let to = now_ns / width;
        for s in series.slots(2).rev() {
            if s.idx < from {
                break;
            }
            if s.idx <= to {
                into.merge(&s.bucket);
            }
        }
    }

    /// The chart of the series `select` picks, over `window_secs` (`None`:
    /// as far back as kept) before `now_ns`: complete buckets only, and
    /// none before `observed_since_ns`.
    pub fn chart(
        &self,
        mut select: impl FnMut(&SeriesKey) -> bool,
        window_secs: Option<u64>,
        now_ns: u64,
        observed_since_ns: u64,
    ) -> Chart {
        let (tier, n) = chart_tier(window_secs);
        let width = TIER_SECS[tier] * NS;
        // The bucket `now` is in is still filling: end before it.
        let end_idx = now_ns / width;
        let first_idx = end_idx.saturating_sub(n as u64);
        // Buckets that started before observation are unknown, not empty.
        let observed_idx = observed_since_ns.div_ceil(width);
        let mut merged: Vec<Bucket> = vec![Bucket::default(); n];
        for (key, s) in &self.series {
            if !select(key) {
                continue;
            }
            for slot in s.slots(tier).rev() {
                if slot.idx < first_idx {
                    break;
                }
                if slot.idx < end_idx {
                    merged[(slot.idx - first_idx) as usize].merge(&slot.bucket);
                }
            }
        }
        let from_ns = first_idx * width;
        Chart {
            width_ns: width,
            from_ns,
            to_ns: end_idx * width,
            buckets: merged
                .into_iter()
                .enumerate()
                .map(|(i, b)| (first_idx + i as u64, b))
                .filter(|(idx, _)| *idx >= observed_idx)
                .map(|(idx, b)| (idx * width, b))
                .collect(),
            partial: self.lost_upto_ns >= from_ns,
        }
    }

    /// Heap bytes held: the buckets (by capacity), the series' names and
    /// the map's table.
    pub fn heap_bytes(&self) -> usize {
        let table = self.series.capacity() * size_of::<(SeriesKey, Series)>();
        table
            + self
                .series
                .iter()
                .map(|(k, s)| {
                    k.name_bytes()
                        + s.tiers
                            .iter()
                            .map(|t| t.slots.capacity() * size_of::<Slot>())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The most [`Trends::heap_bytes`] can be with `max_series` series
    /// whose names take at most `name_bytes` each. The map's table is at
    /// most twice the series (hashbrown keeps it ≤ 7/8 full, in powers of
    /// two).
    pub fn bound_bytes(max_series: usize, name_bytes: usize) -> usize {
        let table = 2 * max_series.max(1).next_power_of_two() * size_of::<(SeriesKey, Series)>();
        table + max_series * (SERIES_BUCKETS * size_of::<Slot>() + name_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bins_are_half_octaves() {
        assert_eq!(lat_bin(0), 0);
        assert_eq!(lat_bin(500), 0);
        assert_eq!(lat_bin(1024), 1);
        assert_eq!(lat_bin(u64::MAX), LAT_BINS - 1);
        for b in 1..LAT_BINS - 1 {
            assert_eq!(lat_bin(lat_bin_low(b)), b, "low edge of {b}");
            assert_eq!(lat_bin(lat_bin_high(b)), b, "high edge of {b}");
            let mid = lat_bin_mid(b);
            assert_eq!(lat_bin(mid), b, "middle of {b}");
            // The middle is within 19% of anything in the bin.
            assert!(mid as f64 / lat_bin_low(b) as f64 <= 1.19);
            assert!(lat_bin_high(b) as f64 / mid as f64 <= 1.19);
        }
        // 10 ms and 12 ms share a bin; 10 ms and 20 ms are two bins apart.
        assert_eq!(lat_bin(20_000_000), lat_bin(10_000_000) + 2);
    }

    #[test]
    fn bucket_percentiles_are_within_a_bin() {
        let mut b = Bucket::default();
        for ms in 1..=100u64 {
            b.add(ms > 90, Some(ms * 1_000_000));
        }
        b.add(true, None);
        assert_eq!((b.reqs, b.errors), (101, 11));
        for (p, exact) in [(50.0, 50e6), (95.0, 95e6)] {
            let got = b.percentile(p).unwrap() as f64;
            assert!((got / exact - 1.0).abs() < 0.19, "p{p}: {got}");
        }
        assert_eq!(Bucket::default().percentile(50.0), None);
    }

    #[test]
    fn a_tier_keeps_its_last_64_buckets_in_order() {
        let mut t = Tier::default();
        for idx in [10, 12, 11, 12, 5] {
            t.add(idx, false, Some(1));
        }
        let idx: Vec<u64> = t.slots.iter().map(|s| s.idx).collect();
        assert_eq!(idx, [5, 10, 11, 12]);
        assert_eq!(t.slots[3].bucket.reqs, 2);
        t.add(100, false, None);
        let idx: Vec<u64> = t.slots.iter().map(|s| s.idx).collect();
        assert_eq!(idx, [100], "older than 64 buckets before the newest");
        t.add(36, false, None); // 100 - 64: out of reach
        t.add(37, false, None);
        let idx: Vec<u64> = t.slots.iter().map(|s| s.idx).collect();
        assert_eq!(idx, [37, 100]);
        for i in 0..1000 {
            t.add(200 + i, false, None);
            assert!(t.slots.len() <= TIER_SLOTS);
        }
    }

    #[test]
    fn a_bad_timestamp_or_a_clock_step_back_does_not_blank_the_charts() {
        use crate::sinks::live::model::tests::{sample, NOW, SEC};
        let mut t = Trends::new(8);
        let total = |t: &Trends| -> u32 {
            let c = t.chart(|_| true, Some(60), NOW + SEC, 0);
            c.buckets.iter().map(|(_, b)| b.reqs).sum()
        };
        // A call stamped an hour ahead is not bucketed, and later calls are.
        let mut future = sample(1, "curl", "a", "/", 200, 1, 0);
        future.started_ns = NOW + 3600 * SEC;
        t.add(&future, NOW);
        assert_eq!(t.future, 1);
        t.add(&sample(1, "curl", "a", "/", 200, 1, 0), NOW);
        assert_eq!(total(&t), 1);
        // The clock steps an hour forward, then back: calls at the old
        // time are charted again at once.
        let mut later = sample(1, "curl", "a", "/", 200, 1, 0);
        later.started_ns = NOW + 3600 * SEC;
        t.add(&later, NOW + 3600 * SEC);
        t.add(&sample(1, "curl", "a", "/", 200, 1, 0), NOW);
        assert_eq!(total(&t), 1);
    }
}
