//! A latency histogram with fixed buckets: 25 µs wide up to 50 ms, then 1 ms wide up to 2 s,
//! and one overflow bucket. Recording is an index computation and an increment (no allocation
//! after construction); histograms of several threads merge by adding buckets.

use std::time::Duration;

const FINE_US: u64 = 25;
const FINE_BUCKETS: usize = 2_000; // 0 .. 50 ms
const COARSE_US: u64 = 1_000;
const COARSE_BUCKETS: usize = 1_950; // 50 ms .. 2 s
const BUCKETS: usize = FINE_BUCKETS + COARSE_BUCKETS + 1;
const FINE_END_US: u64 = FINE_US * FINE_BUCKETS as u64;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum_us: 0, max_us: 0 }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < FINE_END_US {
        (us / FINE_US) as usize
    } else {
        (FINE_BUCKETS + ((us - FINE_END_US) / COARSE_US) as usize).min(BUCKETS - 1)
    }
}

/// The upper edge of a bucket, in µs (what a percentile reports: never below the truth).
fn upper_us(bucket: usize) -> u64 {
    if bucket < FINE_BUCKETS {
        (bucket as u64 + 1) * FINE_US
    } else {
        FINE_END_US + (bucket - FINE_BUCKETS + 1) as u64 * COARSE_US
    }
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.sum_us += us as u128;
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum_us = 0;
        self.max_us = 0;
    }

    /// The value at or below which `q` (0..=1) of the samples lie, at bucket resolution (the
    /// overflow bucket answers with the largest sample). None when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let us = if i == BUCKETS - 1 { self.max_us } else { upper_us(i).min(self.max_us) };
                return Some(Duration::from_micros(us));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros((self.sum_us / self.total as u128) as u64))
    }

    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1000.0)
    }

    #[test]
    fn quantiles_of_a_uniform_spread_are_within_one_bucket() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.record(Duration::from_micros(i * 10)); // 10 µs .. 10 ms
        }
        let p50 = h.quantile(0.5).unwrap().as_micros() as i64;
        let p99 = h.quantile(0.99).unwrap().as_micros() as i64;
        assert!((p50 - 5_000).abs() <= 25, "p50 {p50}");
        assert!((p99 - 9_900).abs() <= 25, "p99 {p99}");
        assert_eq!(h.max().unwrap(), ms(10.0));
        assert_eq!(h.mean().unwrap(), Duration::from_micros(5_005));
    }

    #[test]
    fn coarse_range_overflow_and_merge() {
        let mut a = Histogram::default();
        a.record(ms(120.4));
        let mut b = Histogram::default();
        b.record(ms(1.0));
        b.record(Duration::from_secs(9));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0).unwrap(), Duration::from_micros(1_025));
        // 120.4 ms lies in the 1-ms bucket ending at 121 ms.
        assert_eq!(a.quantile(0.5).unwrap(), ms(121.0));
        // Beyond 2 s the histogram answers with the largest sample.
        assert_eq!(a.quantile(1.0).unwrap(), Duration::from_secs(9));
        a.clear();
        assert_eq!(a.quantile(0.5), None);
    }

    #[test]
    fn a_quantile_never_exceeds_the_largest_sample() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(3));
        assert_eq!(h.quantile(0.99).unwrap(), Duration::from_micros(3));
    }
}
