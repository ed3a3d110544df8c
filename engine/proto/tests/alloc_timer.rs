//! Zero allocation: the timer wheel's steady state. After a warm-up that
//! fills the slab to its capacity, 100k insert / cancel / reschedule / poll
//! cycles never touch the heap.

use proto::rng::Rng;
use proto::time::Instant;
use proto::timer::{TimerToken, TimerWheel};

use alloc::thread_allocs as allocs;
use testkit as alloc;

const CAPACITY: usize = 4096;
const CYCLES: usize = 100_000;

/// What an engine does to its wheel: keeps some tokens, schedules timers,
/// cancels or moves some, advances the clock and drains what is due.
struct Driver {
    wheel: TimerWheel<u64>,
    rng: Rng,
    /// Tokens the caller holds; some go stale as their timers fire.
    held: [Option<TimerToken>; 1024],
    now_us: u64,
    fired: u64,
}

impl Driver {
    fn step(&mut self) {
        if self.wheel.len() < CAPACITY {
            // From "due now" to an hour out, like ack timeouts to reaps.
            let span = match self.rng.below(16) {
                0 => 3_600_000_000,
                n => [1_000, 200_000, 5_000_000, 30_000_000][(n % 4) as usize],
            };
            let deadline = Instant::from_micros(self.now_us + self.rng.below(span));
            let token = self.wheel.insert(deadline, self.now_us);
            self.held[self.rng.index(self.held.len())] = Some(token);
        }
        if let Some(token) = self.held[self.rng.index(self.held.len())] {
            match self.rng.below(3) {
                0 => {
                    self.wheel.cancel(token);
                }
                1 => {
                    let to = Instant::from_micros(self.now_us + self.rng.below(10_000_000));
                    self.wheel.reschedule(token, to);
                }
                _ => {}
            }
        }
        self.now_us += self.rng.below(4_000);
        while let Some((_, scheduled_at)) =
            self.wheel.poll_expired(Instant::from_micros(self.now_us))
        {
            assert!(scheduled_at <= self.now_us);
            self.fired += 1;
        }
        assert!(self.wheel.next_deadline().is_some() || self.wheel.is_empty());
    }
}

#[test]
fn steady_state_timer_operations_do_not_allocate() {
    let mut d = Driver {
        wheel: TimerWheel::with_capacity(CAPACITY, Instant::ZERO),
        rng: Rng::seed_from_u64(0xa110c),
        held: [None; 1024],
        now_us: 0,
        fired: 0,
    };
    // Warm up: fill the slab to capacity once (timers due over the first
    // 40 s), then run mixed cycles.
    for i in 0..CAPACITY as u64 {
        d.wheel.insert(Instant::from_micros(i * 10_000), 0);
    }
    for _ in 0..CYCLES {
        d.step();
    }
    assert_eq!(d.wheel.capacity(), CAPACITY);

    let fired_before = d.fired;
    let before = allocs();
    for _ in 0..CYCLES {
        d.step();
    }
    let allocations = allocs() - before;

    assert_eq!(allocations, 0, "the timer wheel allocated in steady state");
    assert_eq!(d.wheel.capacity(), CAPACITY);
    assert!(d.fired - fired_before > 10_000, "timers really fired: {}", d.fired - fired_before);
    assert!(d.wheel.len() > CAPACITY / 4, "the wheel stayed busy: {}", d.wheel.len());
}
