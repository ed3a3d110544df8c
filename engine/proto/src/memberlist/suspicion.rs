//! Lifeguard suspicion timers and local-health awareness
//! (`protocol/memberlist.md` §11.4, §11.5; Lifeguard paper §IV).

use core::time::Duration;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::time::Instant;

/// `SuspicionMult × max(1, log10(max(1, n))) × interval`, with the node scale
/// truncated to thousandths as memberlist computes it.
pub fn suspicion_timeout(suspicion_mult: u32, n: usize, interval: Duration) -> Duration {
    let node_scale = (n.max(1) as f64).log10().max(1.0);
    let scale_milli = (node_scale * 1000.0).floor() as u64;
    let base = interval.saturating_mul(suspicion_mult);
    // base × scale_milli / 1000, in nanoseconds to keep precision.
    let nanos = base.as_nanos().saturating_mul(u128::from(scale_milli)) / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One node's suspicion: when it expires, and who has confirmed it.
#[derive(Clone, Debug)]
pub struct Suspicion {
    /// Confirmations needed to reach the minimum timeout.
    k: u32,
    /// Confirmations received so far.
    n: u32,
    min: Duration,
    max: Duration,
    start: Instant,
    /// The accuser and every confirmer; a name counts once.
    seen: SmallVec<[Arc<str>; 8]>,
}

impl Suspicion {
    /// Starts a suspicion raised by `from` at `now`, for a cluster of `n`
    /// nodes. Returns the state and its first deadline: the maximum timeout
    /// if confirmations are expected (`k ≥ 1`), else the minimum.
    pub fn new(
        from: Arc<str>,
        now: Instant,
        n: usize,
        suspicion_mult: u32,
        max_timeout_mult: u32,
        probe_interval: Duration,
    ) -> (Self, Instant) {
        let mut k = suspicion_mult.saturating_sub(2);
        if (n as u64).saturating_sub(2) < u64::from(k) || n < 2 {
            k = 0;
        }
        let min = suspicion_timeout(suspicion_mult, n, probe_interval);
        let max = min.saturating_mul(max_timeout_mult);
        let first = if k >= 1 { max } else { min };
        let mut seen = SmallVec::new();
        seen.push(from);
        (Suspicion { k, n: 0, min, max, start: now, seen }, now + first)
    }

    /// Records a confirmation from `from`. Returns the new deadline if it
    /// counted (a fresh name while fewer than `k` confirmations were held),
    /// `None` if it was ignored. A deadline at or before `now` means the
    /// suspicion expires immediately.
    pub fn confirm(&mut self, from: &Arc<str>) -> Option<Instant> {
        if self.n >= self.k || self.seen.iter().any(|s| **s == **from) {
            return None;
        }
        self.seen.push(from.clone());
        self.n = self.n.saturating_add(1);
        Some(self.start + self.timeout())
    }

    /// Total timeout after `n` confirmations:
    /// `max(min, floor_ms(max − ln(n+1)/ln(k+1) × (max − min)))`.
    fn timeout(&self) -> Duration {
        let frac = (f64::from(self.n) + 1.0).ln() / (f64::from(self.k) + 1.0).ln();
        let raw = self.max.as_secs_f64() - frac * (self.max.as_secs_f64() - self.min.as_secs_f64());
        let ms = (1000.0 * raw).floor();
        let t = if ms.is_finite() && ms > 0.0 {
            Duration::from_millis(ms as u64)
        } else {
            Duration::ZERO
        };
        t.max(self.min)
    }

    /// Confirmations received.
    pub fn confirmations(&self) -> u32 {
        self.n
    }
}

/// Lifeguard local health: a score in `[0, max − 1]` that stretches the
/// probe interval and timeouts while this node seems unhealthy.
#[derive(Clone, Copy, Debug)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy node (score 0) with the given `AwarenessMaxMultiplier`.
    pub fn new(max_multiplier: u32) -> Self {
        Awareness { max: max_multiplier.max(1), score: 0 }
    }

    /// Adds `delta` to the score, clamped to `[0, max − 1]`.
    pub fn apply_delta(&mut self, delta: i32) {
        let s = i64::from(self.score) + i64::from(delta);
        let hi = i64::from(self.max) - 1;
        self.score = s.clamp(0, hi) as u32;
    }

    /// The current score (Serf's `health_score`).
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `timeout × (score + 1)`.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(self.score.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn timeout_worked_values() {
        let s = Duration::from_secs(1);
        // memberlist.md §11.5: 2, 3 or 10 nodes → 4 s; 100 nodes → 8 s.
        assert_eq!(suspicion_timeout(4, 2, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 3, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 10, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 100, s), Duration::from_secs(8));
        // 1000 nodes: log10 = 3 → 12 s; 50 nodes: floor(1698.97) = 1698 → 6.792 s.
        assert_eq!(suspicion_timeout(4, 1000, s), Duration::from_secs(12));
        assert_eq!(suspicion_timeout(4, 50, s), Duration::from_millis(6792));
    }

    #[test]
    fn small_cluster_has_no_confirmations() {
        let (mut s, deadline) =
            Suspicion::new(name("a"), Instant::ZERO, 3, 4, 6, Duration::from_secs(1));
        assert_eq!(deadline, Instant::from_millis(4000));
        assert_eq!(s.confirm(&name("b")), None);
    }

    #[test]
    fn confirmations_shorten_towards_min() {
        // 10 nodes: k = 2, min 4 s, max 24 s.
        let (mut s, deadline) =
            Suspicion::new(name("a"), Instant::ZERO, 10, 4, 6, Duration::from_secs(1));
        assert_eq!(deadline, Instant::from_millis(24_000));
        assert_eq!(s.confirm(&name("a")), None, "the accuser does not confirm");
        // n=1: 24 − ln2/ln3 × 20 = 11.381 s
        assert_eq!(s.confirm(&name("b")), Some(Instant::from_millis(11_381)));
        assert_eq!(s.confirm(&name("b")), None, "a name counts once");
        // n=2: reaches min
        assert_eq!(s.confirm(&name("c")), Some(Instant::from_millis(4000)));
        assert_eq!(s.confirm(&name("d")), None, "k reached");
        assert_eq!(s.confirmations(), 2);
    }

    #[test]
    fn awareness_clamps_and_scales() {
        let mut a = Awareness::new(8);
        a.apply_delta(-1);
        assert_eq!(a.score(), 0);
        a.apply_delta(3);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(4));
        a.apply_delta(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_millis(500)), Duration::from_secs(4));
    }
}
