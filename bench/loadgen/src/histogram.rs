//! A log-linear latency histogram (about 0.2% relative precision), enough for p99.9 without
//! a dependency: values below 1024 ns have a bucket each, above that 512 buckets per power of two.

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 9;
const SUB: u64 = 1 << SUB_BITS;

/// Counts of nanosecond values.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Histogram {
    /// Records one value in nanoseconds.
    pub fn record(&mut self, nanos: u64) {
        let index = bucket(nanos);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        if let Some(count) = self.counts.get_mut(index) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(nanos);
        self.sum += u128::from(nanos);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Returns how many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Returns the mean in nanoseconds, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.sum as f64 / self.total as f64
    }

    /// Returns the largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Returns the value at quantile `q` (0..=1): the upper edge of its bucket, 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_edge(index).min(self.max);
            }
        }
        self.max
    }
}

fn bucket(nanos: u64) -> usize {
    if nanos < LINEAR {
        return nanos as usize;
    }
    // nanos >= 2^10, so the top bit is at 10 or above; keep SUB_BITS + 1 significant bits.
    let top = 63 - nanos.leading_zeros();
    let shift = top - SUB_BITS;
    let mantissa = (nanos >> shift) - SUB;
    (LINEAR + u64::from(shift - 1) * SUB + mantissa) as usize
}

fn upper_edge(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let shift = (index - LINEAR) / SUB + 1;
    let mantissa = (index - LINEAR) % SUB + SUB;
    ((mantissa + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn quantiles_are_within_half_a_percent() {
        let mut histogram = Histogram::default();
        for value in 1..=100_000u64 {
            histogram.record(value * 100);
        }
        for (q, exact) in [
            (0.5, 5_000_000.0),
            (0.99, 9_900_000.0),
            (0.999, 9_990_000.0),
        ] {
            let got = histogram.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.005,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(histogram.quantile(1.0), 10_000_000);
    }

    #[test]
    fn small_values_are_exact() {
        let mut histogram = Histogram::default();
        for value in [3, 5, 7] {
            histogram.record(value);
        }
        assert_eq!(histogram.quantile(0.5), 5);
    }
}
