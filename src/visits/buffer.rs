//! Visit counts buffered in the backend, per link and day (UTC), so that clicks on a popular link
//! never queue behind one row lock and read-only transactions can still count.
//!
//! Visits collect here when the backend writes its own (the transaction write mode, or when the
//! shared visit rings cannot take them), and in the visit writer, which gathers them from the
//! rings. They are written in batches by a read-write transaction of the same process.
//! A batch stays "taken" by the (sub)transaction that writes it until that ends: committed at the
//! top level, it is forgotten; rolled back at any level, it returns to the buffer; a subtransaction
//! that commits hands it to its parent. So a counted visit is written exactly once.

use std::collections::HashMap;

/// A read-only transaction, which cannot write the buffer, counts no further links (and days) once
/// it holds this many.
pub const MAX_PENDING: usize = 10_000;
/// Nor does any transaction once the buffer holds this many, which takes a buffer that cannot be
/// written for a long time (its table is locked) to tens of megabytes.
pub const MAX_HELD: usize = 100_000;

/// Microseconds in a day: PostgreSQL timestamps and dates both count from 2000-01-01.
const USECS_PER_DAY: i64 = 86_400_000_000;

/// A link and a day (UTC), as a PostgreSQL date: days since 2000-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkDay {
    pub link_id: i64,
    pub day: i32,
}

/// Visits of one link. Times are PostgreSQL timestamps (microseconds since 2000-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visits {
    pub count: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl Visits {
    pub fn merge(&mut self, other: Visits) {
        self.count += other.count;
        self.first_at = self.first_at.min(other.first_at);
        self.last_at = self.last_at.max(other.last_at);
    }
}

/// PostgreSQL's SubTransactionId: 1 is the top level, inner ones count up.
pub type SubTransaction = u32;

/// A batch being written: by which (sub)transaction, and its visits.
#[derive(Debug)]
struct Taken {
    by: SubTransaction,
    batch: Vec<(LinkDay, Visits)>,
}

#[derive(Debug, Default)]
pub struct VisitBuffer {
    pending: HashMap<LinkDay, Visits>,
    taken: Vec<Taken>,
    /// The pending visits could not be written when last tried.
    held_back: bool,
    /// Visits refused since the last take_dropped().
    dropped: u64,
}

impl VisitBuffer {
    /// Counts a visit of `link_id` at `at`, on the day of `at`; false, and counted as dropped,
    /// when the buffer is full: MAX_PENDING links and days when `can_write` is false, MAX_HELD
    /// when it is true.
    pub fn record(&mut self, link_id: i64, at: i64, can_write: bool) -> bool {
        let visit = Visits {
            count: 1,
            first_at: at,
            last_at: at,
        };
        let key = LinkDay {
            link_id,
            day: at.div_euclid(USECS_PER_DAY) as i32,
        };
        let limit = if can_write { MAX_HELD } else { MAX_PENDING };
        if let Some(visits) = self.pending.get_mut(&key) {
            visits.merge(visit);
        } else if self.pending.len() < limit {
            self.pending.insert(key, visit);
        } else {
            self.dropped += 1;
            return false;
        }
        true
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Notes that the pending visits could not be written now.
    pub fn hold_back(&mut self) {
        self.held_back = true;
    }

    /// How many visits wait because they could not be written when last tried.
    pub fn held_back(&self) -> i64 {
        if self.held_back {
            self.pending_count()
        } else {
            0
        }
    }

    /// How many visits were refused since the last take_dropped().
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Forgets the pending visits, whose links are gone; returns how many.
    pub fn discard(&mut self) -> i64 {
        let count = self.pending_count();
        self.pending.clear();
        self.held_back = false;
        count
    }

    /// How many visits wait to be written.
    pub fn pending_count(&self) -> i64 {
        self.pending.values().map(|visits| visits.count).sum()
    }

    /// Hands the pending visits over for writing by subtransaction `by`, in the order of their
    /// links and days, so that concurrent writers lock rows in one order.
    pub fn take(&mut self, by: SubTransaction) -> Vec<(LinkDay, Visits)> {
        self.held_back = false;
        let mut batch: Vec<(LinkDay, Visits)> = self.pending.drain().collect();
        batch.sort_unstable_by_key(|(key, _)| *key);
        if !batch.is_empty() {
            self.taken.push(Taken {
                by,
                batch: batch.clone(),
            });
        }
        batch
    }

    /// Whether a batch is being written in the current transaction.
    pub fn is_taking(&self) -> bool {
        !self.taken.is_empty()
    }

    /// Subtransaction `sub` committed into `parent`: its batches are the parent's now.
    pub fn subtransaction_committed(&mut self, sub: SubTransaction, parent: SubTransaction) {
        for taken in self.taken.iter_mut().filter(|taken| taken.by == sub) {
            taken.by = parent;
        }
    }

    /// Subtransaction `sub` rolled back: its batches count again.
    pub fn subtransaction_aborted(&mut self, sub: SubTransaction) {
        let (aborted, kept) = std::mem::take(&mut self.taken)
            .into_iter()
            .partition(|taken| taken.by == sub);
        self.taken = kept;
        self.restore(aborted);
    }

    /// The transaction that wrote the taken visits committed.
    pub fn commit(&mut self) {
        self.taken.clear();
    }

    /// The transaction that wrote the taken visits rolled back: count them again.
    pub fn abort(&mut self) {
        let aborted = std::mem::take(&mut self.taken);
        self.restore(aborted);
    }

    fn restore(&mut self, aborted: Vec<Taken>) {
        for (key, visits) in aborted.into_iter().flat_map(|taken| taken.batch) {
            self.pending
                .entry(key)
                .and_modify(|pending| pending.merge(visits))
                .or_insert(visits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: SubTransaction = 1;
    const DAY: i64 = USECS_PER_DAY;

    /// A key for the first day, 2000-01-01.
    fn first_day(link_id: i64) -> LinkDay {
        LinkDay { link_id, day: 0 }
    }

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
        assert!(buffer.record(1, 100, true));
        assert!(buffer.record(1, 50, false));
        assert!(buffer.record(2, 70, true));
        assert_eq!(buffer.pending_count(), 3);
        let batch = buffer.take(TOP);
        assert_eq!(
            batch,
            vec![
                (first_day(1), visits(2, 50, 100)),
                (first_day(2), visits(1, 70, 70))
            ]
        );
        assert_eq!(buffer.pending_count(), 0);
        assert!(buffer.take(TOP).is_empty());
    }

    #[test]
    fn a_rolled_back_flush_returns_its_visits() {
        let mut buffer = VisitBuffer::default();
        buffer.record(1, 10, true);
        buffer.take(TOP);
        assert!(buffer.is_taking());
        buffer.record(1, 30, true);
        buffer.abort();
        assert!(!buffer.is_taking());
        assert_eq!(buffer.take(TOP), vec![(first_day(1), visits(2, 10, 30))]);
        buffer.commit();
        assert!(buffer.take(TOP).is_empty());
    }

    #[test]
    fn a_full_buffer_refuses_new_links_and_counts_what_it_refused() {
        let mut buffer = VisitBuffer::default();
        for link in 0..MAX_PENDING as i64 {
            assert!(buffer.record(link, 1, false));
        }
        assert!(
            !buffer.record(-2, 3, false),
            "read-only: a new link is refused"
        );
        assert!(
            buffer.record(0, 3, false),
            "read-only: a known link still counts"
        );
        assert!(buffer.record(-2, 3, true), "read-write: counted");
        for link in buffer.pending.len() as i64..MAX_HELD as i64 {
            assert!(buffer.record(link, 1, true));
        }
        assert!(!buffer.record(-3, 3, true), "read-write: refused too");
        assert!(buffer.record(-2, 4, true), "a known link still counts");
        assert_eq!(buffer.dropped(), 2);
        assert_eq!(buffer.take_dropped(), 2);
        assert_eq!(buffer.dropped(), 0);
        assert_eq!(buffer.take(TOP).len(), MAX_HELD);
    }

    #[test]
    fn visits_held_back_are_reported_until_the_next_write() {
        let mut buffer = VisitBuffer::default();
        buffer.record(1, 10, true);
        buffer.record(1, 11, true);
        assert_eq!(buffer.held_back(), 0);
        buffer.hold_back();
        assert_eq!(buffer.held_back(), 2);
        buffer.take(TOP);
        assert_eq!(buffer.held_back(), 0);
        buffer.abort();
        assert_eq!(buffer.pending_count(), 2);
        assert_eq!(buffer.discard(), 2);
        assert!(!buffer.has_pending());
    }

    #[test]
    fn a_batch_written_in_a_subtransaction_follows_it() {
        let mut buffer = VisitBuffer::default();
        buffer.record(1, 10, true);
        buffer.take(2);
        // The subtransaction rolls back: the visits count again, and the top level commits.
        buffer.subtransaction_aborted(2);
        buffer.commit();
        assert_eq!(buffer.pending_count(), 1);

        buffer.take(3);
        buffer.record(2, 35, true);
        buffer.take(4);
        // 4 commits into 3, which commits into the top level, which rolls back.
        buffer.subtransaction_committed(4, 3);
        buffer.subtransaction_aborted(5);
        assert_eq!(buffer.pending_count(), 0);
        buffer.subtransaction_committed(3, TOP);
        buffer.abort();
        assert_eq!(buffer.pending_count(), 2);

        buffer.take(6);
        buffer.subtransaction_committed(6, TOP);
        buffer.commit();
        assert!(!buffer.has_pending() && !buffer.is_taking());
    }

    #[test]
    fn visits_count_on_their_day_in_utc() {
        let mut buffer = VisitBuffer::default();
        buffer.record(1, DAY - 1, true);
        buffer.record(1, DAY, true);
        buffer.record(1, DAY + 5, true);
        // Before 2000-01-01: negative days.
        buffer.record(1, -1, true);
        let days: Vec<(i32, i64)> = buffer
            .take(TOP)
            .into_iter()
            .map(|(key, visits)| (key.day, visits.count))
            .collect();
        assert_eq!(days, vec![(-1, 1), (0, 1), (1, 2)]);
    }
}
