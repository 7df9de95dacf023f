//! Visit counts buffered in the backend, so that clicks on a popular link never queue behind one
//! row lock and read-only transactions can still count.
//!
//! Visits collect here and are written in batches (at most once per flush interval) by a
//! read-write transaction of the same backend. A written batch stays "taken" until its transaction
//! ends: committed, it is forgotten; rolled back, it returns to the buffer.

use std::collections::HashMap;

/// More distinct links than this wait for a flush before their visits count.
pub const MAX_PENDING_LINKS: usize = 10_000;

/// Visits of one link. Times are PostgreSQL timestamps (microseconds since 2000-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visits {
    pub count: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl Visits {
    fn merge(&mut self, other: Visits) {
        self.count += other.count;
        self.first_at = self.first_at.min(other.first_at);
        self.last_at = self.last_at.max(other.last_at);
    }
}

#[derive(Debug, Default)]
pub struct VisitBuffer {
    pending: HashMap<i64, Visits>,
    taken: Vec<(i64, Visits)>,
    last_flush_at: Option<i64>,
}

impl VisitBuffer {
    /// Counts a visit of `link_id` at `at`; false when the buffer is full.
    pub fn record(&mut self, link_id: i64, at: i64) -> bool {
        let visit = Visits {
            count: 1,
            first_at: at,
            last_at: at,
        };
        if let Some(visits) = self.pending.get_mut(&link_id) {
            visits.merge(visit);
        } else if self.pending.len() < MAX_PENDING_LINKS {
            self.pending.insert(link_id, visit);
        } else {
            return false;
        }
        true
    }

    pub fn flush_due(&self, now: i64, interval_us: i64) -> bool {
        !self.pending.is_empty()
            && self
                .last_flush_at
                .is_none_or(|last| now - last >= interval_us)
    }

    /// Hands the pending visits over for writing.
    pub fn take(&mut self, now: i64) -> Vec<(i64, Visits)> {
        self.last_flush_at = Some(now);
        let batch: Vec<(i64, Visits)> = self.pending.drain().collect();
        self.taken.extend_from_slice(&batch);
        batch
    }

    /// The transaction that wrote the taken visits committed.
    pub fn commit(&mut self) {
        self.taken.clear();
    }

    /// The transaction that wrote the taken visits rolled back: count them again.
    pub fn abort(&mut self) {
        for (link_id, visits) in self.taken.drain(..) {
            self.pending
                .entry(link_id)
                .and_modify(|pending| pending.merge(visits))
                .or_insert(visits);
        }
    }

    pub fn is_taking(&self) -> bool {
        !self.taken.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visits(count: i64, first_at: i64, last_at: i64) -> Visits {
        Visits {
            count,
            first_at,
            last_at,
        }
    }

    #[test]
    fn visits_of_a_link_add_up() {
        let mut buffer = VisitBuffer::default();
        assert!(buffer.record(1, 100));
        assert!(buffer.record(1, 50));
        assert!(buffer.record(2, 70));
        let mut batch = buffer.take(200);
        batch.sort_by_key(|(link, _)| *link);
        assert_eq!(batch, vec![(1, visits(2, 50, 100)), (2, visits(1, 70, 70))]);
        assert!(buffer.take(300).is_empty());
    }

    #[test]
    fn flushes_wait_for_the_interval() {
        let mut buffer = VisitBuffer::default();
        assert!(!buffer.flush_due(0, 1000), "nothing to flush");
        buffer.record(1, 0);
        assert!(buffer.flush_due(0, 1000), "the first flush is due at once");
        buffer.take(0);
        buffer.record(1, 10);
        assert!(!buffer.flush_due(999, 1000));
        assert!(buffer.flush_due(1000, 1000));
    }

    #[test]
    fn a_rolled_back_flush_returns_its_visits() {
        let mut buffer = VisitBuffer::default();
        buffer.record(1, 10);
        buffer.take(20);
        assert!(buffer.is_taking());
        buffer.record(1, 30);
        buffer.abort();
        assert!(!buffer.is_taking());
        assert_eq!(buffer.take(40), vec![(1, visits(2, 10, 30))]);
        buffer.commit();
        assert!(buffer.take(50).is_empty());
    }

    #[test]
    fn a_full_buffer_refuses_new_links_but_counts_known_ones() {
        let mut buffer = VisitBuffer::default();
        for link in 0..MAX_PENDING_LINKS as i64 {
            assert!(buffer.record(link, 0));
        }
        assert!(!buffer.record(-1, 0));
        assert!(buffer.record(0, 0));
    }
}
