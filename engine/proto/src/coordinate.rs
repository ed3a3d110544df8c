//! Serf's Vivaldi network coordinates (`shared/protocol/serf.md` §10).
//!
//! Every completed direct probe gives one observation: the peer's coordinate
//! (decoded from its ack payload, see [`wire::coordinate`]) and the
//! measured round-trip time. [`VivaldiClient::update`] folds it into the local
//! coordinate:
//!
//! 1. the RTT is replaced by the median of the peer's last three raw samples
//!    ([`LatencyFilter`]) and clamped below at 1 µs;
//! 2. the local error estimate moves towards the observed relative error,
//!    weighted by how confident each side is, capped at `vivaldi_error_max`;
//! 3. a spring force `cc · w · (rtt − dist)` pushes the local coordinate away
//!    from (or pulls it towards) the peer, and scales the height;
//! 4. the adjustment term is the mean of the last 20 `rtt − raw distance`
//!    residuals, halved (each side of a pair contributes its own);
//! 5. a weak gravity `−(d / 150)²` pulls the coordinate back to the origin so
//!    the whole cluster does not drift;
//! 6. a non-finite result is replaced by a fresh coordinate and counted.
//!
//! Distances are in seconds throughout. Where Go converts a distance to a
//! `time.Duration` (truncating to whole nanoseconds) before using it, so does
//! this module, so that deterministic runs follow Go's arithmetic.
//!
//! Nothing here allocates: coordinates, the filter and the adjustment ring are
//! fixed-size arrays.

use core::fmt;
use core::time::Duration;

use crate::rng::Rng;
use wire::coordinate::{Coordinate, DIMENSIONALITY};

/// Observations with a longer RTT are rejected (Serf's `maxRTT`).
pub const MAX_RTT: Duration = Duration::from_secs(10);

/// Capacity of the adjustment ring; `adjustment_window_size` is clamped to it.
pub const ADJUSTMENT_WINDOW_MAX: usize = 20;

/// Capacity of a [`LatencyFilter`]; `latency_filter_size` is clamped to
/// `1..=LATENCY_FILTER_MAX`.
pub const LATENCY_FILTER_MAX: usize = 3;

/// Below this, two positions coincide and an RTT or a total error is "zero".
const ZERO_THRESHOLD: f64 = 1.0e-6;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Tuning of the Vivaldi algorithm. [`Default`] is Serf's configuration; the
/// dimensionality is fixed at [`DIMENSIONALITY`] by the [`Coordinate`] type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VivaldiConfig {
    /// Error of a fresh coordinate, and the cap on the error estimate.
    /// Positive; Serf: 1.5.
    pub vivaldi_error_max: f64,
    /// How fast the error estimate follows observations, in `(0, 1]`; Serf: 0.25.
    pub vivaldi_ce: f64,
    /// How far one observation moves the coordinate, in `(0, 1]`; Serf: 0.25.
    pub vivaldi_cc: f64,
    /// Residuals averaged into the adjustment term; 0 disables the term.
    /// Clamped to [`ADJUSTMENT_WINDOW_MAX`]; Serf: 20.
    pub adjustment_window_size: usize,
    /// Floor for the height, seconds; positive. Serf: 10 µs.
    pub height_min: f64,
    /// Raw RTT samples per peer whose median is used. Clamped to
    /// `1..=`[`LATENCY_FILTER_MAX`]; Serf: 3.
    pub latency_filter_size: usize,
    /// Gravity radius, seconds: a coordinate at distance `d` from the origin
    /// is pulled back by `(d / gravity_rho)²` per update. Positive; Serf: 150.
    pub gravity_rho: f64,
}

impl Default for VivaldiConfig {
    fn default() -> Self {
        VivaldiConfig {
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min: 1.0e-5,
            latency_filter_size: 3,
            gravity_rho: 150.0,
        }
    }
}

impl VivaldiConfig {
    /// The coordinate of a node that has measured nothing yet: at the origin,
    /// maximal error, minimal height, no adjustment. It is also the origin
    /// gravity pulls towards, and what an invalid result is reset to.
    pub fn fresh_coordinate(&self) -> Coordinate {
        Coordinate {
            vec: [0.0; DIMENSIONALITY],
            error: self.vivaldi_error_max,
            adjustment: 0.0,
            height: self.height_min,
        }
    }
}

/// Why [`VivaldiClient::update`] refused an observation. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordError {
    /// The peer's coordinate has a NaN or infinite component.
    InvalidCoordinate,
    /// The RTT exceeds [`MAX_RTT`].
    RttOutOfRange(Duration),
}

impl fmt::Display for CoordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordError::InvalidCoordinate => f.write_str("invalid coordinate"),
            CoordError::RttOutOfRange(rtt) => write!(
                f,
                "round trip time not in valid range, duration {rtt:?} is not a positive value \
                 less than 10s"
            ),
        }
    }
}

impl std::error::Error for CoordError {}

/// The last few raw RTT samples to one peer, oldest first. One per member,
/// kept by the caller in its member table and passed to every
/// [`VivaldiClient::update`] for that peer; reset it with
/// `LatencyFilter::default()` when the member is forgotten.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct LatencyFilter {
    samples: [f64; LATENCY_FILTER_MAX],
    len: u8,
}

impl LatencyFilter {
    /// An empty filter.
    pub const fn new() -> Self {
        LatencyFilter { samples: [0.0; LATENCY_FILTER_MAX], len: 0 }
    }

    /// Samples currently held.
    pub fn len(&self) -> usize {
        usize::from(self.len).min(LATENCY_FILTER_MAX)
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `sample_s` (seconds), dropping the oldest samples so at most
    /// `size` (clamped to `1..=`[`LATENCY_FILTER_MAX`]) remain, and returns
    /// the median: element `len / 2` of the sorted samples (with two samples,
    /// the larger one).
    pub fn push(&mut self, sample_s: f64, size: usize) -> f64 {
        let size = size.clamp(1, LATENCY_FILTER_MAX);
        let mut len = self.len();
        if len >= size {
            let drop = len + 1 - size;
            self.samples.copy_within(drop..len, 0);
            len -= drop;
        }
        // `len < size <= LATENCY_FILTER_MAX` here.
        if let Some(slot) = self.samples.get_mut(len) {
            *slot = sample_s;
            len += 1;
        }
        self.len = len as u8;
        let mut sorted = self.samples;
        let Some(sorted) = sorted.get_mut(..len) else { return sample_s };
        sorted.sort_unstable_by(f64::total_cmp);
        sorted.get(len / 2).copied().unwrap_or(sample_s)
    }
}

/// The local node's Vivaldi state: its coordinate and the adjustment ring.
/// One per agent; update it once per completed direct probe whose ack
/// carried a coordinate.
#[derive(Clone, Debug)]
pub struct VivaldiClient {
    coord: Coordinate,
    origin: Coordinate,
    config: VivaldiConfig,
    adjustment_samples: [f64; ADJUSTMENT_WINDOW_MAX],
    adjustment_index: usize,
    resets: u64,
}

impl VivaldiClient {
    /// A client at the fresh coordinate ([`VivaldiConfig::fresh_coordinate`]).
    /// `adjustment_window_size` and `latency_filter_size` are clamped to
    /// their capacities (see [`VivaldiConfig`]); the stored config reflects that.
    pub fn new(config: VivaldiConfig) -> Self {
        let config = VivaldiConfig {
            adjustment_window_size: config.adjustment_window_size.min(ADJUSTMENT_WINDOW_MAX),
            latency_filter_size: config.latency_filter_size.clamp(1, LATENCY_FILTER_MAX),
            ..config
        };
        let origin = config.fresh_coordinate();
        VivaldiClient {
            coord: origin,
            origin,
            config,
            adjustment_samples: [0.0; ADJUSTMENT_WINDOW_MAX],
            adjustment_index: 0,
            resets: 0,
        }
    }

    /// The current coordinate: what the next ack payload carries and what
    /// `get-coordinate` reports for the local node.
    pub fn coordinate(&self) -> Coordinate {
        self.coord
    }

    /// The configuration in use (after clamping).
    pub fn config(&self) -> &VivaldiConfig {
        &self.config
    }

    /// How many times an update produced a non-finite coordinate and the
    /// client started over (the `coordinate_resets` stat).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Replaces the coordinate (e.g. restored state). Rejects a non-finite
    /// one with [`CoordError::InvalidCoordinate`], leaving the client as it was.
    pub fn set_coordinate(&mut self, coord: Coordinate) -> Result<(), CoordError> {
        if !coord.is_valid() {
            return Err(CoordError::InvalidCoordinate);
        }
        self.coord = coord;
        Ok(())
    }

    /// Estimated RTT from the local node to a node at `other`, as Go's
    /// `DistanceTo` (see [`distance_duration`]).
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        distance_duration(&self.coord, other)
    }

    /// Applies one observation: the peer's coordinate `other` (from its ack)
    /// and the measured round-trip time `rtt` of the probe, with `filter` the
    /// latency filter kept for that peer. Returns the new local coordinate.
    ///
    /// Rejected, with no change to the client or the filter, if `other` has
    /// a NaN or infinite component ([`CoordError::InvalidCoordinate`]) or
    /// `rtt` exceeds [`MAX_RTT`] ([`CoordError::RttOutOfRange`]); a negative
    /// RTT cannot be expressed. A zero RTT is accepted (clamped to 1 µs
    /// inside). `rng` is drawn from only when the two positions coincide.
    pub fn update(
        &mut self,
        filter: &mut LatencyFilter,
        other: &Coordinate,
        rtt: Duration,
        rng: &mut Rng,
    ) -> Result<Coordinate, CoordError> {
        if !other.is_valid() {
            return Err(CoordError::InvalidCoordinate);
        }
        if rtt > MAX_RTT {
            return Err(CoordError::RttOutOfRange(rtt));
        }
        let rtt_s = filter.push(rtt.as_secs_f64(), self.config.latency_filter_size);
        self.update_vivaldi(other, rtt_s, rng);
        self.update_adjustment(other, rtt_s);
        self.update_gravity(rng);
        if !self.coord.is_valid() {
            self.resets += 1;
            self.coord = self.origin;
        }
        Ok(self.coord)
    }

    /// Steps 2 and 3: error estimate and spring force.
    fn update_vivaldi(&mut self, other: &Coordinate, rtt_s: f64, rng: &mut Rng) {
        let dist = go_duration_seconds(distance(&self.coord, other));
        let rtt = if rtt_s < ZERO_THRESHOLD { ZERO_THRESHOLD } else { rtt_s };
        let wrongness = (dist - rtt).abs() / rtt;

        let mut total_error = self.coord.error + other.error;
        if total_error < ZERO_THRESHOLD {
            total_error = ZERO_THRESHOLD;
        }
        let weight = self.coord.error / total_error;

        let ce = self.config.vivaldi_ce;
        self.coord.error = ce * weight * wrongness + self.coord.error * (1.0 - ce * weight);
        if self.coord.error > self.config.vivaldi_error_max {
            self.coord.error = self.config.vivaldi_error_max;
        }

        let force = self.config.vivaldi_cc * weight * (rtt - dist);
        self.coord = apply_force(&self.coord, force, other, self.config.height_min, rng);
    }

    /// Step 4: the adjustment ring, fed with the filtered (unclamped) RTT.
    fn update_adjustment(&mut self, other: &Coordinate, rtt_s: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        let residual = rtt_s - raw_distance(&self.coord, other);
        if let Some(slot) = self.adjustment_samples.get_mut(self.adjustment_index) {
            *slot = residual;
        }
        self.adjustment_index = (self.adjustment_index + 1) % window;
        let sum = self.adjustment_samples.iter().take(window).fold(0.0, |acc, s| acc + s);
        self.coord.adjustment = sum / (2.0 * window as f64);
    }

    /// Step 5: gravity towards the origin.
    fn update_gravity(&mut self, rng: &mut Rng) {
        let dist = go_duration_seconds(distance(&self.origin, &self.coord));
        let ratio = dist / self.config.gravity_rho;
        let force = -(ratio * ratio);
        self.coord = apply_force(&self.coord, force, &self.origin, self.config.height_min, rng);
    }
}

/// Vivaldi distance without adjustments, seconds:
/// `|a.vec − b.vec| + a.height + b.height`.
pub fn raw_distance(a: &Coordinate, b: &Coordinate) -> f64 {
    let mut diff = [0.0; DIMENSIONALITY];
    sub(&mut diff, &a.vec, &b.vec);
    magnitude(&diff) + a.height + b.height
}

/// Estimated RTT between nodes at `a` and `b`, seconds: the raw distance
/// plus both adjustments, unless that sum is not positive, in which case the
/// raw distance alone. Not rounded (see [`distance_duration`] for Go's
/// nanosecond `Duration`).
pub fn distance(a: &Coordinate, b: &Coordinate) -> f64 {
    let raw = raw_distance(a, b);
    let adjusted = raw + a.adjustment + b.adjustment;
    if adjusted > 0.0 {
        adjusted
    } else {
        raw
    }
}

/// [`distance`] as Go's `Coordinate.DistanceTo` returns it: truncated to
/// whole nanoseconds. This is what `serf rtt` prints (in ms, 3 decimals).
/// A negative distance (possible only with a peer's negative height) is
/// zero here, and one beyond `i64::MAX` ns saturates.
pub fn distance_duration(a: &Coordinate, b: &Coordinate) -> Duration {
    let nanos = (distance(a, b) * 1e9) as i64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// `time.Duration(s * 1e9).Seconds()`: seconds truncated to whole
/// nanoseconds, then converted back the way Go does (whole seconds plus
/// nanoseconds / 1e9). Out-of-range values saturate; NaN becomes 0.
fn go_duration_seconds(s: f64) -> f64 {
    let nanos = (s * 1e9) as i64;
    (nanos / NANOS_PER_SEC) as f64 + (nanos % NANOS_PER_SEC) as f64 / 1e9
}

fn sub(out: &mut [f64; DIMENSIONALITY], a: &[f64; DIMENSIONALITY], b: &[f64; DIMENSIONALITY]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x - y;
    }
}

fn magnitude(v: &[f64; DIMENSIONALITY]) -> f64 {
    v.iter().fold(0.0, |acc, x| acc + x * x).sqrt()
}

/// Scales `v` to unit length in place and returns its former length, or
/// returns `None` (leaving `v` alone) if it is shorter than the threshold.
fn normalize(v: &mut [f64; DIMENSIONALITY]) -> Option<f64> {
    let mag = magnitude(v);
    if mag > ZERO_THRESHOLD {
        let inv = 1.0 / mag;
        for x in v.iter_mut() {
            *x *= inv;
        }
        Some(mag)
    } else {
        None
    }
}

/// Moves `c` by `force` along the unit vector pointing from `other` to `c`
/// (a positive force pushes away from `other`). When the two positions
/// coincide the direction is random and the height is left alone;
/// otherwise the height scales with the force and is floored at `height_min`.
fn apply_force(
    c: &Coordinate,
    force: f64,
    other: &Coordinate,
    height_min: f64,
    rng: &mut Rng,
) -> Coordinate {
    let mut unit = [0.0; DIMENSIONALITY];
    sub(&mut unit, &c.vec, &other.vec);
    let mag = match normalize(&mut unit) {
        Some(mag) => mag,
        None => {
            for x in unit.iter_mut() {
                *x = rng.f64() - 0.5;
            }
            if normalize(&mut unit).is_none() {
                // Every draw landed within 1e-6 of the centre: pick an axis.
                unit = [0.0; DIMENSIONALITY];
                unit[0] = 1.0;
            }
            0.0
        }
    };

    let mut ret = *c;
    for (v, u) in ret.vec.iter_mut().zip(&unit) {
        *v += u * force;
    }
    if mag > ZERO_THRESHOLD {
        let height = (ret.height + other.height) * force / mag + ret.height;
        // Like Go's math.Max, a NaN height stays NaN (and triggers a reset).
        ret.height = if height < height_min { height_min } else { height };
    }
    ret
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::{
        any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig,
        Strategy,
    };
    use wire::msgpack::{Dialect, Writer};

    const EXAMPLES: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors/examples.jsonl");

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn captured_fresh_payload() -> Vec<u8> {
        let text = std::fs::read_to_string(EXAMPLES).unwrap();
        let ex = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["kind"] == "memberlist 2 ackResp")
            .unwrap();
        unhex(ex["decoded"]["body"]["msgpack"]["Payload"]["$str_hex"].as_str().unwrap())
    }

    fn at(vec: [f64; DIMENSIONALITY], error: f64, height: f64) -> Coordinate {
        Coordinate { vec, error, adjustment: 0.0, height }
    }

    fn x_axis(x: f64) -> [f64; DIMENSIONALITY] {
        let mut v = [0.0; DIMENSIONALITY];
        v[0] = x;
        v
    }

    #[track_caller]
    fn close(got: f64, want: f64) {
        let tol = 1e-12 * want.abs().max(1e-9);
        assert!((got - want).abs() <= tol, "got {got:e}, want {want:e}");
    }

    fn norm(v: &[f64; DIMENSIONALITY]) -> f64 {
        magnitude(v)
    }

    #[test]
    fn fresh_client_matches_captured_fresh_payload() {
        let payload = captured_fresh_payload();
        let client = VivaldiClient::new(VivaldiConfig::default());
        assert_eq!(Coordinate::decode_ping_payload(&payload).unwrap(), client.coordinate());
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        client.coordinate().encode_ping_payload(&mut w).unwrap();
        assert_eq!(w.written(), &payload[..]);
        assert_eq!(client.resets(), 0);
    }

    #[test]
    fn latency_filter_is_a_median_of_the_last_three() {
        let mut f = LatencyFilter::default();
        assert!(f.is_empty());
        assert_eq!(f.push(0.010, 3), 0.010); // [10]
        assert_eq!(f.push(0.030, 3), 0.030); // [10 30] → sorted[1] = 30
        assert_eq!(f.push(0.020, 3), 0.020); // [10 30 20] → 20
        assert_eq!(f.push(0.005, 3), 0.020); // [30 20 5] → 20
        assert_eq!(f.push(0.001, 3), 0.005); // [20 5 1] → 5
        assert_eq!(f.len(), 3);
        // A smaller window keeps only the newest samples.
        assert_eq!(f.push(0.100, 1), 0.100);
        assert_eq!(f.len(), 1);
        assert_eq!(f.push(0.200, 0), 0.200); // size 0 is treated as 1
        assert_eq!(f.push(0.300, 9), 0.300); // size 9 is clamped to 3: [200 300]
        assert_eq!(f.len(), 2);
    }

    /// Self fresh at the origin; the peer 10 ms along x with error 1.5 and
    /// height 10 µs; measured RTT 20 ms. Every intermediate value of §10:
    #[test]
    fn single_update_by_hand() {
        let cfg = VivaldiConfig::default();
        let mut client = VivaldiClient::new(cfg);
        let other = at(x_axis(0.010), 1.5, 1e-5);
        let mut filter = LatencyFilter::default();
        let mut rng = Rng::seed_from_u64(1);
        let c = client.update(&mut filter, &other, Duration::from_millis(20), &mut rng).unwrap();

        // 1. one sample: rtt = 0.02
        // 2. dist = |0 − 0.01| + 1e-5 + 1e-5 = 0.01002 (10 020 000 ns exactly)
        //    wrongness = |0.01002 − 0.02| / 0.02 = 0.499
        //    w = 1.5 / (1.5 + 1.5) = 0.5
        //    error = 0.25·0.5·0.499 + 1.5·(1 − 0.25·0.5) = 0.062375 + 1.3125 = 1.374875
        close(c.error, 1.374875);
        // 3. force = 0.25·0.5·(0.02 − 0.01002) = 0.0012475, away from the peer
        //    (unit vector −x, |Δ| = 0.01):
        //    x = 0 − 0.0012475
        //    height = (1e-5 + 1e-5)·0.0012475/0.01 + 1e-5 = 2.495e-6 + 1e-5 = 1.2495e-5
        // 4. raw = |−0.0012475 − 0.01| + 1.2495e-5 + 1e-5 = 0.011269995
        //    adjustment = (0.02 − 0.011269995) / (2·20) = 0.008730005 / 40 = 0.000218250125
        close(c.adjustment, 0.000218250125);
        // 5. d(origin) = 0.0012475 + 1e-5 + 1.2495e-5 + 0.000218250125 = 0.001488245125
        //    → 1 488 245 ns = 0.001488245 s
        //    force = −(0.001488245 / 150)² = −9.843880800111e-11, towards the origin:
        //    x = −0.0012475 + 9.843880800111e-11 = −0.00124749990156119
        //    height = (1.2495e-5 + 1e-5)·(−9.843880800111e-11)/0.0012475 + 1.2495e-5
        //           = −1.775055e-12 + 1.2495e-5 = 1.24949982249451e-5
        let gravity = -(0.001488245f64 / 150.0).powi(2);
        close(gravity, -9.843880800111112e-11);
        close(c.vec[0], -0.0012475 - gravity);
        close(c.vec[0], -0.001247499901561192);
        close(c.height, 1.2494998224945103e-5);
        assert!(c.vec[1..].iter().all(|&v| v == 0.0));
        assert_eq!(c, client.coordinate());
        // 6. valid: no reset.
        assert_eq!(client.resets(), 0);
        // No random direction was needed.
        assert_eq!(rng.next_u64(), Rng::seed_from_u64(1).next_u64());
    }

    /// Both nodes fresh at the origin: the push goes in a random direction,
    /// by exactly the force, and the height is left alone.
    #[test]
    fn coincident_positions_use_a_random_unit_vector() {
        let cfg = VivaldiConfig::default();
        let other = cfg.fresh_coordinate();
        let mut dirs = Vec::new();
        for seed in 0..4 {
            let mut client = VivaldiClient::new(cfg);
            let mut rng = Rng::seed_from_u64(seed);
            let c = client
                .update(&mut LatencyFilter::new(), &other, Duration::from_millis(10), &mut rng)
                .unwrap();
            // dist = 2e-5; wrongness = |2e-5 − 0.01| / 0.01 = 0.998; w = 0.5
            // error = 0.125·0.998 + 1.5·0.875 = 0.12475 + 1.3125 = 1.43725
            close(c.error, 1.43725);
            // force = 0.125·(0.01 − 2e-5) = 0.0012475; then gravity pulls back by
            // (d/150)² with d = 0.0012475 + 2e-5 + adjustment, far below 1e-9.
            // raw = 0.0012475 + 1e-5 + 1e-5 = 0.0012675
            // adjustment = (0.01 − 0.0012675)/40 = 0.0002183125
            close(c.adjustment, 0.0002183125);
            let d = go_duration_seconds(0.0012675 + 0.0002183125);
            close(norm(&c.vec), 0.0012475 - (d / 150.0).powi(2));
            // The Vivaldi step cannot scale a height without a direction;
            // gravity's shrink is floored at height_min.
            assert_eq!(c.height, 1e-5);
            dirs.push(c.vec);
        }
        // Different seeds, different directions.
        assert_ne!(dirs[0], dirs[1]);
        assert_ne!(dirs[2], dirs[3]);
    }

    #[test]
    fn the_filtered_rtt_is_used() {
        let cfg = VivaldiConfig::default();
        let other = at(x_axis(0.010), 1.5, 1e-5);
        let mut rng = Rng::seed_from_u64(3);
        // A filter already holding 20 ms and 21 ms: a 500 ms outlier is
        // filtered to the median 21 ms.
        let mut filter = LatencyFilter::new();
        filter.push(0.020, 3);
        filter.push(0.021, 3);
        let mut a = VivaldiClient::new(cfg);
        let got = a.update(&mut filter, &other, Duration::from_millis(500), &mut rng).unwrap();
        let mut b = VivaldiClient::new(cfg);
        let mut one = LatencyFilter::new();
        let want = b.update(&mut one, &other, Duration::from_millis(21), &mut rng).unwrap();
        assert_eq!(got, want);
        assert_eq!(filter.len(), 3);
    }

    #[test]
    fn error_is_capped() {
        let cfg = VivaldiConfig::default();
        let mut client = VivaldiClient::new(cfg);
        let mut rng = Rng::seed_from_u64(4);
        // A peer 5 s away measured at 0 s (clamped to 1 µs):
        // wrongness ≈ 5 / 1e-6 = 5e6, error = 0.125·5e6 + 1.3125 → capped at 1.5.
        let far = at(x_axis(5.0), 1.5, 1e-5);
        let c = client.update(&mut LatencyFilter::new(), &far, Duration::ZERO, &mut rng).unwrap();
        assert_eq!(c.error, 1.5);
    }

    #[test]
    fn adjustment_window_zero_disables_adjustment() {
        let cfg = VivaldiConfig { adjustment_window_size: 0, ..VivaldiConfig::default() };
        let mut client = VivaldiClient::new(cfg);
        let mut rng = Rng::seed_from_u64(5);
        let other = at(x_axis(0.010), 1.5, 1e-5);
        for _ in 0..5 {
            let c = client
                .update(&mut LatencyFilter::new(), &other, Duration::from_millis(30), &mut rng)
                .unwrap();
            assert_eq!(c.adjustment, 0.0);
        }
        let big = VivaldiConfig { adjustment_window_size: 1000, ..VivaldiConfig::default() };
        assert_eq!(VivaldiClient::new(big).config().adjustment_window_size, ADJUSTMENT_WINDOW_MAX);
    }

    #[test]
    fn adjustment_averages_the_window() {
        // With a window of 1 the adjustment is half the last residual.
        let cfg = VivaldiConfig { adjustment_window_size: 1, ..VivaldiConfig::default() };
        let mut client = VivaldiClient::new(cfg);
        let mut rng = Rng::seed_from_u64(6);
        let other = at(x_axis(0.010), 1.5, 1e-5);
        // Same numbers as single_update_by_hand up to step 4:
        // residual = 0.008730005, adjustment = 0.008730005 / 2.
        let c = client
            .update(&mut LatencyFilter::new(), &other, Duration::from_millis(20), &mut rng)
            .unwrap();
        close(c.adjustment, 0.008730005 / 2.0);
    }

    #[test]
    fn distance_uses_adjustment_only_if_positive() {
        let mut a = at(x_axis(0.003), 1.0, 0.001);
        let mut b = at([0.0; DIMENSIONALITY], 1.0, 0.002);
        // raw = 0.003 + 0.001 + 0.002
        close(raw_distance(&a, &b), 0.006);
        close(distance(&a, &b), 0.006);
        a.adjustment = 0.0005;
        b.adjustment = -0.0001;
        close(distance(&a, &b), 0.0064);
        // Adjusted sum ≤ 0: fall back to the raw distance.
        a.adjustment = -0.004;
        b.adjustment = -0.003;
        close(distance(&a, &b), 0.006);
        // Duration: truncated to whole nanoseconds, like Go.
        let c = at(x_axis(0.000_001_000_9), 1.0, 0.0);
        let o = at([0.0; DIMENSIONALITY], 1.0, 0.0);
        assert_eq!(distance_duration(&c, &o), Duration::from_nanos(1000));
        // A negative distance (peer with a negative height) is zero.
        let neg = at([0.0; DIMENSIONALITY], 1.0, -1.0);
        assert_eq!(distance_duration(&o, &neg), Duration::ZERO);
        let client = VivaldiClient::new(VivaldiConfig::default());
        assert_eq!(client.distance_to(&client.coordinate()), Duration::from_nanos(20_000));
    }

    #[test]
    fn go_duration_seconds_truncates_to_nanoseconds() {
        assert_eq!(go_duration_seconds(0.0014882451250000002), 0.001488245);
        assert_eq!(go_duration_seconds(1.5), 1.5);
        assert_eq!(go_duration_seconds(-2.0000000005), -2.0);
        assert_eq!(go_duration_seconds(f64::NAN), 0.0);
        assert_eq!(go_duration_seconds(f64::INFINITY), i64::MAX as f64 / 1e9);
    }

    #[test]
    fn invalid_inputs_change_nothing() {
        let cfg = VivaldiConfig::default();
        let mut rng = Rng::seed_from_u64(7);
        let mut client = VivaldiClient::new(cfg);
        let peer = at(x_axis(0.010), 0.5, 1e-5);
        let mut filter = LatencyFilter::new();
        client.update(&mut filter, &peer, Duration::from_millis(12), &mut rng).unwrap();
        let (before, filter_before) = (client.clone(), filter);

        let mut bad = Vec::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut c = peer;
            c.vec[5] = v;
            bad.push(c);
            let mut c = peer;
            c.error = v;
            bad.push(c);
            let mut c = peer;
            c.adjustment = v;
            bad.push(c);
            let mut c = peer;
            c.height = v;
            bad.push(c);
        }
        for c in &bad {
            let r = client.update(&mut filter, c, Duration::from_millis(12), &mut rng);
            assert_eq!(r, Err(CoordError::InvalidCoordinate));
        }
        let too_long = MAX_RTT + Duration::from_nanos(1);
        assert_eq!(
            client.update(&mut filter, &peer, too_long, &mut rng),
            Err(CoordError::RttOutOfRange(too_long))
        );
        assert_eq!(client.set_coordinate(bad[0]).unwrap_err().to_string(), "invalid coordinate");
        assert_eq!(client.coordinate(), before.coordinate());
        assert_eq!(client.resets(), 0);
        assert_eq!(filter, filter_before);
        // The hidden state is unchanged too: the same next update gives the
        // same result as on the untouched copy.
        let mut copy = before.clone();
        let mut f2 = filter_before;
        let mut r1 = Rng::seed_from_u64(8);
        let mut r2 = Rng::seed_from_u64(8);
        assert_eq!(
            client.update(&mut filter, &peer, Duration::from_millis(9), &mut r1),
            copy.update(&mut f2, &peer, Duration::from_millis(9), &mut r2)
        );
        // The bounds themselves are accepted.
        assert!(client.update(&mut filter, &peer, MAX_RTT, &mut rng).is_ok());
        assert!(client.update(&mut filter, &peer, Duration::ZERO, &mut rng).is_ok());
    }

    /// A valid peer so far away that distances overflow to ∞ drives the
    /// adjustment to −∞: the client resets. As in Go, the residual stays in
    /// the adjustment ring, so the next `window − 1` updates reset too, and
    /// the client recovers once the slot is overwritten.
    #[test]
    fn overflow_resets_and_counts() {
        let cfg = VivaldiConfig::default();
        let mut rng = Rng::seed_from_u64(9);
        let mut client = VivaldiClient::new(cfg);
        let huge = at([1e300; DIMENSIONALITY], 1.0, 1e-5);
        let c = client
            .update(&mut LatencyFilter::new(), &huge, Duration::from_millis(5), &mut rng)
            .unwrap();
        assert_eq!(c, cfg.fresh_coordinate());
        assert_eq!(client.resets(), 1);

        let sane = at(x_axis(0.010), 1.0, 1e-5);
        let mut filter = LatencyFilter::new();
        for i in 2..=ADJUSTMENT_WINDOW_MAX as u64 {
            let c = client.update(&mut filter, &sane, Duration::from_millis(10), &mut rng).unwrap();
            assert_eq!(c, cfg.fresh_coordinate());
            assert_eq!(client.resets(), i);
        }
        let c = client.update(&mut filter, &sane, Duration::from_millis(10), &mut rng).unwrap();
        assert_ne!(c, cfg.fresh_coordinate());
        assert!(c.is_valid());
        assert_eq!(client.resets(), ADJUSTMENT_WINDOW_MAX as u64);
    }

    /// A network of `n` nodes at true positions (seconds) with access-link
    /// heights; RTT = Euclidean distance + both heights. Every round each node
    /// probes one random peer and updates from the peer's current coordinate,
    /// as Serf does. Returns the relative errors `|est − true| / true` of all
    /// pairs, sorted.
    fn simulate(truth: &[(Vec<f64>, f64)], rounds: usize, seed: u64) -> Vec<f64> {
        let n = truth.len();
        let rtt = |i: usize, j: usize| {
            let (pi, hi) = &truth[i];
            let (pj, hj) = &truth[j];
            let d: f64 = pi.iter().zip(pj).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
            d + hi + hj
        };
        let mut rng = Rng::seed_from_u64(seed);
        let mut clients: Vec<VivaldiClient> =
            (0..n).map(|_| VivaldiClient::new(VivaldiConfig::default())).collect();
        let mut filters = vec![LatencyFilter::new(); n * n];
        for _ in 0..rounds {
            for i in 0..n {
                let mut j = rng.index(n - 1);
                if j >= i {
                    j += 1;
                }
                let peer = clients[j].coordinate();
                let d = Duration::from_secs_f64(rtt(i, j));
                clients[i].update(&mut filters[i * n + j], &peer, d, &mut rng).unwrap();
            }
        }
        assert!(clients.iter().all(|c| c.resets() == 0));
        let mut errors = Vec::new();
        for i in 0..n {
            for j in (i + 1)..n {
                let est = distance(&clients[i].coordinate(), &clients[j].coordinate());
                errors.push((est - rtt(i, j)).abs() / rtt(i, j));
            }
        }
        errors.sort_unstable_by(f64::total_cmp);
        errors
    }

    /// (mean, 95th percentile, max) of sorted errors.
    fn summary(errors: &[f64]) -> (f64, f64, f64) {
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        (mean, errors[errors.len() * 95 / 100], errors[errors.len() - 1])
    }

    /// 5×5 grid, 10 ms spacing, heights 0: 2D truth in an 8D space.
    #[test]
    fn converges_on_a_2d_grid() {
        let truth: Vec<(Vec<f64>, f64)> =
            (0..25).map(|k| (vec![0.010 * (k % 5) as f64, 0.010 * (k / 5) as f64], 0.0)).collect();
        let (mean, p95, max) = summary(&simulate(&truth, 1000, 11));
        // Observed over 30 seeds: mean ≤ 0.24 %, p95 ≤ 0.75 %, max ≤ 2.2 %.
        assert!(
            mean < 0.005 && p95 < 0.02 && max < 0.05,
            "mean {mean:.4} p95 {p95:.4} max {max:.4}"
        );
    }

    /// 40 nodes at random places in a 100 ms cube with 0.1–2 ms access links.
    #[test]
    fn converges_on_random_3d_positions_with_heights() {
        let mut rng = Rng::seed_from_u64(12);
        let truth: Vec<(Vec<f64>, f64)> = (0..40)
            .map(|_| {
                let p = (0..3).map(|_| 0.100 * rng.f64()).collect();
                (p, 0.0001 + 0.0019 * rng.f64())
            })
            .collect();
        let (mean, p95, max) = summary(&simulate(&truth, 1000, 13));
        // Observed over 30 seeds: mean ≤ 0.6 %, p95 ≤ 2.2 %, max ≤ 26 % (the
        // worst pairs are the few that are only a millisecond or two apart).
        assert!(
            mean < 0.015 && p95 < 0.05 && max < 0.5,
            "mean {mean:.4} p95 {p95:.4} max {max:.4}"
        );
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1.0e3..1.0e3f64,
            -1.0..1.0f64,
            Just(0.0),
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        ]
    }

    fn coordinate() -> impl Strategy<Value = Coordinate> {
        (prop::array::uniform8(finite()), finite(), finite(), finite()).prop_map(
            |(vec, error, adjustment, height)| Coordinate { vec, error, adjustment, height },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever finite coordinates and in-range RTTs peers report, the
        /// local coordinate stays finite: NaN never escapes.
        #[test]
        fn coordinate_stays_finite(
            seed in any::<u64>(),
            steps in prop::collection::vec(
                (coordinate(), 0u64..=10_000_000_000, 0usize..4),
                1..60,
            ),
        ) {
            let mut client = VivaldiClient::new(VivaldiConfig::default());
            let mut filters = [LatencyFilter::new(); 4];
            let mut rng = Rng::seed_from_u64(seed);
            for (peer, rtt_ns, who) in steps {
                let c = client
                    .update(&mut filters[who], &peer, Duration::from_nanos(rtt_ns), &mut rng)
                    .unwrap();
                prop_assert!(c.is_valid(), "{c:?}");
                prop_assert_eq!(c, client.coordinate());
            }
        }
    }
}
