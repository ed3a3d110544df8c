//! What the harness knows about the cluster, built only from the nodes'
//! observation records ([`Obs`]): each record costs O(1), so watching a
//! 1000-node join (about a million member events) stays cheap, and nothing
//! polls N×N member lists.

use engine::time::Instant;

use crate::node::{Kind, Obs};

/// The cluster as its members report it.
#[derive(Debug)]
pub struct Observer {
    n: usize,
    words: usize,
    /// `alive[o * words ..]`: bit `s` set while `o` lists `s` alive.
    alive: Vec<u64>,
    /// Others each node lists alive.
    pub alive_count: Vec<u32>,
    /// First time each node listed `full_target` others alive.
    pub full_at: Vec<Option<Instant>>,
    /// What `full_at` waits for (others alive); `None` disables it.
    pub full_target: Option<u32>,
    /// Nodes whose `full_at` is set.
    pub full_nodes: usize,
    /// Failed/Left records: (observer, subject, kind, at).
    pub downs: Vec<(u32, u32, Kind, Instant)>,
    /// Suspicions: (observer, subject, at).
    pub suspects: Vec<(u32, u32, Instant)>,
    /// User event deliveries: (event number, observer, at).
    pub user: Vec<(u32, u32, Instant)>,
    /// Query acks and responses received: (kind, observer, subject, at).
    pub query: Vec<(Kind, u32, u32, Instant)>,
    /// Finished joins: (observer, contacted, at).
    pub joins_done: Vec<(u32, u32, Instant)>,
    /// Finished graceful leaves: (node, at).
    pub leaves_done: Vec<(u32, Instant)>,
    /// Records seen.
    pub records: u64,
}

impl Observer {
    /// An observer of `n` nodes, none of which knows any other yet.
    pub fn new(n: usize) -> Self {
        let words = n.div_ceil(64);
        Observer {
            n,
            words,
            alive: vec![0; n * words],
            alive_count: vec![0; n],
            full_at: vec![None; n],
            full_target: None,
            full_nodes: 0,
            downs: Vec::new(),
            suspects: Vec::new(),
            user: Vec::new(),
            query: Vec::new(),
            joins_done: Vec::new(),
            leaves_done: Vec::new(),
            records: 0,
        }
    }

    /// Whether `o` lists `s` alive.
    pub fn sees_alive(&self, o: usize, s: usize) -> bool {
        self.alive[o * self.words + s / 64] & (1 << (s % 64)) != 0
    }

    /// Feeds one record.
    pub fn feed(&mut self, r: Obs) {
        self.records += 1;
        let (o, s) = (r.observer as usize, r.subject as usize);
        match r.kind {
            Kind::Alive | Kind::Failed | Kind::Left if o < self.n && s < self.n => {
                let w = &mut self.alive[o * self.words + s / 64];
                let bit = 1u64 << (s % 64);
                let was = *w & bit != 0;
                if r.kind == Kind::Alive {
                    if !was {
                        *w |= bit;
                        self.alive_count[o] += 1;
                        if self.full_target == Some(self.alive_count[o])
                            && self.full_at[o].is_none()
                        {
                            self.full_at[o] = Some(r.at);
                            self.full_nodes += 1;
                        }
                    }
                } else {
                    if was {
                        *w &= !bit;
                        self.alive_count[o] -= 1;
                    }
                    self.downs.push((r.observer, r.subject, r.kind, r.at));
                }
            }
            Kind::Suspect => self.suspects.push((r.observer, r.subject, r.at)),
            Kind::User => self.user.push((r.subject, r.observer, r.at)),
            Kind::QueryAck | Kind::QueryResponse => {
                self.query.push((r.kind, r.observer, r.subject, r.at))
            }
            Kind::JoinDone => self.joins_done.push((r.observer, r.subject, r.at)),
            Kind::LeaveDone => self.leaves_done.push((r.observer, r.at)),
            _ => {}
        }
    }

    /// Whether every node in `live` lists exactly the other `live` nodes
    /// alive (O(N × |not live|)).
    pub fn agreed(&self, live: &[bool]) -> bool {
        let n_live = live.iter().filter(|&&l| l).count() as u32;
        let gone: Vec<usize> = (0..self.n).filter(|&s| !live[s]).collect();
        (0..self.n).filter(|&o| live[o]).all(|o| {
            self.alive_count[o] == n_live.saturating_sub(1)
                && gone.iter().all(|&s| !self.sees_alive(o, s))
        })
    }

    /// Nodes in `live` that list exactly the other live nodes alive.
    pub fn agreeing(&self, live: &[bool]) -> usize {
        let n_live = live.iter().filter(|&&l| l).count() as u32;
        let gone: Vec<usize> = (0..self.n).filter(|&s| !live[s]).collect();
        (0..self.n)
            .filter(|&o| {
                live[o]
                    && self.alive_count[o] == n_live.saturating_sub(1)
                    && gone.iter().all(|&s| !self.sees_alive(o, s))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(o: u32, s: u32, kind: Kind, ms: u64) -> Obs {
        Obs { observer: o, subject: s, kind, at: Instant::from_millis(ms) }
    }

    #[test]
    fn full_view_and_agreement_follow_member_records() {
        let mut ob = Observer::new(3);
        ob.full_target = Some(2);
        ob.feed(rec(0, 1, Kind::Alive, 10));
        ob.feed(rec(0, 1, Kind::Alive, 11)); // a repeat changes nothing
        ob.feed(rec(0, 2, Kind::Alive, 20));
        ob.feed(rec(1, 0, Kind::Alive, 5));
        ob.feed(rec(1, 2, Kind::Alive, 30));
        assert_eq!(ob.full_at[0], Some(Instant::from_millis(20)));
        assert_eq!(ob.full_at[1], Some(Instant::from_millis(30)));
        assert_eq!(ob.full_nodes, 2);
        let all = [true, true, true];
        assert!(!ob.agreed(&all), "node 2 has seen nobody");
        ob.feed(rec(2, 0, Kind::Alive, 40));
        ob.feed(rec(2, 1, Kind::Alive, 40));
        assert!(ob.agreed(&all));
        assert_eq!(ob.agreeing(&all), 3);

        // Node 2 dies: agreement needs every survivor to drop it.
        let live = [true, true, false];
        assert!(!ob.agreed(&live));
        ob.feed(rec(0, 2, Kind::Failed, 50));
        assert_eq!(ob.agreeing(&live), 1);
        ob.feed(rec(1, 2, Kind::Left, 60));
        assert!(ob.agreed(&live));
        assert_eq!(ob.downs.len(), 2);
        // full_at is the first time only.
        assert_eq!(ob.full_at[0], Some(Instant::from_millis(20)));
    }

    #[test]
    fn other_records_are_kept_for_the_phases() {
        let mut ob = Observer::new(2);
        ob.feed(rec(1, 7, Kind::User, 3));
        ob.feed(rec(0, 1, Kind::Suspect, 4));
        ob.feed(rec(0, 1, Kind::QueryAck, 5));
        ob.feed(rec(1, 1, Kind::JoinDone, 6));
        ob.feed(rec(5, 9, Kind::Alive, 7)); // out of range: ignored
        assert_eq!(ob.user, vec![(7, 1, Instant::from_millis(3))]);
        assert_eq!(ob.suspects.len(), 1);
        assert_eq!(ob.query.len(), 1);
        assert_eq!(ob.joins_done, vec![(1, 1, Instant::from_millis(6))]);
        assert_eq!(ob.records, 5);
        assert_eq!(ob.alive_count, vec![0, 0]);
    }
}
