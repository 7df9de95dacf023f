//! The per-backend ID generator: a node number, the last millisecond used and a sequence within
//! it. Plain Rust over three traits, so that clock steps, lost nodes and takeovers can be tested
//! without a server.

use crate::error::{SqlError, SqlState};
use crate::snowflake::layout::{self, MAX_NODE, MAX_SEQUENCE};

/// Wall-clock time, and a way to let it pass.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&mut self) -> i64;
    /// Lets time pass while the clock is `behind_ms` behind the millisecond we must reach
    /// (0: we only wait for the next millisecond).
    fn wait(&mut self, behind_ms: i64);
}

/// Exclusive, server-wide claims on node numbers.
pub trait NodeRegistry {
    /// Claims the lowest free node in `min..=max`, or None when all are taken.
    fn claim_lowest_free(&mut self, min: i32, max: i32) -> Option<i32>;
    /// Whether this backend still holds its claim on `node`.
    fn holds(&mut self, node: i32) -> bool;
    fn release(&mut self, node: i32);
}

/// What the server remembers of each node across its holders, restarts and reboots: the
/// high-water marks of highwater.rs.
pub trait NodeMarks {
    /// The last millisecond in which an earlier holder of `node` may have issued IDs. Read just
    /// after claiming the node.
    fn last_used(&mut self, node: i32) -> Result<i64, SqlError>;
    /// Records that `node` issues IDs in millisecond `ms`, before the first of them.
    fn record_use(&mut self, node: i32, ms: i64) -> Result<(), SqlError>;
}

/// The settings that govern the generator, read afresh for every ID.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub node_min: i32,
    pub node_max: i32,
    pub max_clock_backward_ms: i32,
}

#[derive(Debug, Default)]
pub struct Generator {
    node: Option<i32>,
    /// The millisecond of the last ID, or the last millisecond a node's earlier holders used
    /// (see `claim`).
    last_ms: i64,
    sequence: i32,
    /// The IDs issued under the current claim of the node, first and last: no other backend can
    /// ever issue an ID of the node between them (see `issued_here`).
    issued: Option<(i64, i64)>,
}

impl Generator {
    pub const fn new() -> Self {
        Generator {
            node: None,
            last_ms: i64::MIN,
            sequence: 0,
            issued: None,
        }
    }

    /// Whether `id` lies between the first and the last ID this backend issued under its current
    /// claim of a node. No other backend, before or after, issues such an ID: the node's earlier
    /// holders stopped before its first millisecond and later ones start after its last. So a row
    /// that stores it can never meet the same ID from the generator, even when this backend did
    /// not issue that very one.
    pub fn issued_here(&self, id: i64) -> bool {
        let node = layout::decompose(id).map(|parts| parts.node).ok();
        match (self.node, self.issued) {
            (Some(held), Some((first, last))) => node == Some(held) && (first..=last).contains(&id),
            _ => false,
        }
    }

    /// The node this backend issues IDs from, claiming one when it holds none, holds one outside
    /// the configured range, or has lost its claim (`pg_advisory_unlock_all()`, `DISCARD ALL`).
    pub fn node(
        &mut self,
        registry: &mut impl NodeRegistry,
        marks: &mut impl NodeMarks,
        settings: &Settings,
    ) -> Result<i32, SqlError> {
        check_range(settings)?;
        if let Some(node) = self.node {
            let in_range = (settings.node_min..=settings.node_max).contains(&node);
            if in_range && registry.holds(node) {
                return Ok(node);
            }
            if registry.holds(node) {
                registry.release(node);
            }
            self.node = None;
        }
        self.claim(registry, marks, settings)
    }

    /// The next ID: later than every ID this backend issued before, and unique on the server.
    ///
    /// The node's range is checked on every call, its lock and its mark once per new millisecond:
    /// the mark says this millisecond is used before its first ID, so another backend that claims
    /// a lost lock starts after it, and IDs issued in the rest of it cannot collide with its IDs.
    pub fn next_id(
        &mut self,
        clock: &mut impl Clock,
        registry: &mut impl NodeRegistry,
        marks: &mut impl NodeMarks,
        settings: &Settings,
    ) -> Result<i64, SqlError> {
        check_range(settings)?;
        let in_range = |node: i32| (settings.node_min..=settings.node_max).contains(&node);
        let node = loop {
            let now = clock.now_ms();
            let new_millisecond = now > self.last_ms;
            let node = match self.node {
                Some(node) if in_range(node) && (!new_millisecond || registry.holds(node)) => node,
                _ => {
                    // A claim moves the last millisecond used, so read the clock again.
                    self.node(registry, marks, settings)?;
                    continue;
                }
            };
            if new_millisecond {
                marks.record_use(node, now)?;
                self.last_ms = now;
                self.sequence = 0;
                break node;
            }
            let behind = self.last_ms - now;
            if behind > i64::from(settings.max_clock_backward_ms) {
                return Err(SqlError::new(
                    SqlState::SystemError,
                    format!("the system clock moved backwards by {behind} ms"),
                )
                .with_detail(format!(
                    "snowlink.max_clock_backward_ms is {} ms; IDs resume when the clock passes the last millisecond used.",
                    settings.max_clock_backward_ms
                )));
            }
            if behind == 0 && self.sequence < MAX_SEQUENCE {
                self.sequence += 1;
                break node;
            }
            // The clock is a little behind, or this millisecond's 4096 IDs are used up.
            clock.wait(behind);
        };
        let id = layout::compose(self.last_ms, node, self.sequence)?;
        let first = self.issued.map_or(id, |(first, _)| first);
        self.issued = Some((first, id));
        Ok(id)
    }

    fn claim(
        &mut self,
        registry: &mut impl NodeRegistry,
        marks: &mut impl NodeMarks,
        settings: &Settings,
    ) -> Result<i32, SqlError> {
        let node = registry
            .claim_lowest_free(settings.node_min, settings.node_max)
            .ok_or_else(|| {
                SqlError::new(
                    SqlState::ConfigurationLimitExceeded,
                    format!(
                        "no free snowflake node between snowlink.node_min ({}) and snowlink.node_max ({})",
                        settings.node_min, settings.node_max
                    ),
                )
                .with_hint(
                    "The view snowflake_nodes shows the backends that hold them. Widen the range or end idle sessions.",
                )
            })?;
        // Read after the claim: the node's earlier holders recorded every millisecond they used
        // before its first ID, and released the node before we claimed it. Starting strictly after
        // the last of them, no ID repeats one of theirs; a clock that is behind it now is waited
        // out or refused in next_id, as when a running backend sees its clock step back. Starting
        // in a new millisecond also records it as this node's before its first ID here.
        let last_used = match marks.last_used(node) {
            Ok(last_used) => last_used,
            Err(error) => {
                registry.release(node);
                return Err(error);
            }
        };
        self.last_ms = self.last_ms.max(last_used);
        self.sequence = MAX_SEQUENCE;
        self.node = Some(node);
        self.issued = None;
        Ok(node)
    }
}

/// Whether the settings make a node range.
pub fn check_range(settings: &Settings) -> Result<(), SqlError> {
    if settings.node_min > settings.node_max {
        return Err(SqlError::new(
            SqlState::InvalidParameter,
            format!(
                "snowlink.node_min ({}) is greater than snowlink.node_max ({})",
                settings.node_min, settings.node_max
            ),
        ));
    }
    debug_assert!(settings.node_min >= 0 && settings.node_max <= MAX_NODE);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap, HashSet};

    /// A clock that only moves when told to, or by 1 ms when waited on.
    struct FakeClock {
        now: i64,
        waited: Vec<i64>,
    }

    impl Clock for FakeClock {
        fn now_ms(&mut self) -> i64 {
            self.now
        }
        fn wait(&mut self, behind_ms: i64) {
            self.waited.push(behind_ms);
            self.now += 1;
        }
    }

    /// What one server shares between its backends: node claims and high-water marks.
    #[derive(Default)]
    struct Server {
        claims: RefCell<BTreeSet<i32>>,
        marks: RefCell<HashMap<i32, i64>>,
        /// The error that reading or recording a mark fails with, if any.
        mark_error: RefCell<Option<SqlError>>,
    }

    /// One simulated backend: its generator and the claims it holds.
    struct Backend<'a> {
        server: &'a Server,
        held: HashSet<i32>,
        generator: Generator,
    }

    /// A backend's claims on the server, borrowed apart from its generator.
    struct Claims<'a> {
        server: &'a Server,
        held: &'a mut HashSet<i32>,
    }

    /// The server's marks.
    struct Marks<'a>(&'a Server);

    impl NodeRegistry for Claims<'_> {
        fn claim_lowest_free(&mut self, min: i32, max: i32) -> Option<i32> {
            let mut taken = self.server.claims.borrow_mut();
            let node = (min..=max).find(|n| !taken.contains(n))?;
            taken.insert(node);
            self.held.insert(node);
            Some(node)
        }
        fn holds(&mut self, node: i32) -> bool {
            self.held.contains(&node)
        }
        fn release(&mut self, node: i32) {
            self.held.remove(&node);
            self.server.claims.borrow_mut().remove(&node);
        }
    }

    impl NodeMarks for Marks<'_> {
        fn last_used(&mut self, node: i32) -> Result<i64, SqlError> {
            match self.0.mark_error.borrow().clone() {
                Some(error) => Err(error),
                None => Ok(*self.0.marks.borrow().get(&node).unwrap_or(&i64::MIN)),
            }
        }
        fn record_use(&mut self, node: i32, ms: i64) -> Result<(), SqlError> {
            if let Some(error) = self.0.mark_error.borrow().clone() {
                return Err(error);
            }
            let mut marks = self.0.marks.borrow_mut();
            let mark = marks.entry(node).or_insert(ms);
            *mark = (*mark).max(ms);
            Ok(())
        }
    }

    impl<'a> Backend<'a> {
        fn connect(server: &'a Server) -> Self {
            Backend {
                server,
                held: HashSet::new(),
                generator: Generator::new(),
            }
        }

        fn next_id(&mut self, clock: &mut FakeClock, settings: &Settings) -> Result<i64, SqlError> {
            let mut claims = Claims {
                server: self.server,
                held: &mut self.held,
            };
            let mut marks = Marks(self.server);
            self.generator
                .next_id(clock, &mut claims, &mut marks, settings)
        }

        fn node(&mut self, settings: &Settings) -> Result<i32, SqlError> {
            let mut claims = Claims {
                server: self.server,
                held: &mut self.held,
            };
            let mut marks = Marks(self.server);
            self.generator.node(&mut claims, &mut marks, settings)
        }

        /// What `pg_advisory_unlock_all()`, `DISCARD ALL` or the backend's exit do.
        fn unlock_all(&mut self) {
            let mut taken = self.server.claims.borrow_mut();
            for node in self.held.drain() {
                taken.remove(&node);
            }
        }
    }

    const EPOCH_PLUS_A_YEAR: i64 = layout::EPOCH_UNIX_MS + 365 * 86_400_000;
    const DEFAULTS: Settings = Settings {
        node_min: 0,
        node_max: 1023,
        max_clock_backward_ms: 5,
    };
    const ONE_NODE: Settings = Settings {
        node_min: 7,
        node_max: 7,
        max_clock_backward_ms: 5,
    };

    fn clock_at(now: i64) -> FakeClock {
        FakeClock {
            now,
            waited: Vec::new(),
        }
    }

    fn parts(id: i64) -> layout::Parts {
        layout::decompose(id).unwrap()
    }

    #[test]
    fn the_first_id_of_a_new_backend_comes_at_once() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let id = Backend::connect(&server)
            .next_id(&mut clock, &DEFAULTS)
            .unwrap();
        assert!(clock.waited.is_empty());
        assert_eq!(parts(id).unix_ms, EPOCH_PLUS_A_YEAR);
        assert_eq!((parts(id).node, parts(id).sequence), (0, 0));
        assert_eq!(server.marks.borrow()[&0], EPOCH_PLUS_A_YEAR);
    }

    #[test]
    fn sequence_overflow_waits_for_the_next_millisecond() {
        let server = Server::default();
        let mut backend = Backend::connect(&server);
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let first = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        for sequence in 1..=MAX_SEQUENCE {
            let id = backend.next_id(&mut clock, &DEFAULTS).unwrap();
            assert_eq!(id, first + i64::from(sequence));
        }
        assert!(clock.waited.is_empty(), "4096 IDs fit in one millisecond");
        let next = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        assert_eq!(clock.waited, vec![0]);
        assert_eq!(parts(next).unix_ms, parts(first).unix_ms + 1);
        assert_eq!(parts(next).sequence, 0);
        assert_eq!(server.marks.borrow()[&0], parts(next).unix_ms);
    }

    #[test]
    fn small_clock_steps_back_are_waited_out_and_large_ones_fail() {
        let server = Server::default();
        let mut backend = Backend::connect(&server);
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let before = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        clock.now -= 3;
        let after = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        assert!(after > before);
        assert_eq!(clock.waited.first(), Some(&3));

        clock.now -= 100;
        let error = backend.next_id(&mut clock, &DEFAULTS).unwrap_err();
        assert_eq!(error.state, SqlState::SystemError);
        assert_eq!(error.message, "the system clock moved backwards by 100 ms");
        clock.now += 100;
        assert!(backend.next_id(&mut clock, &DEFAULTS).unwrap() > after);
    }

    /// Backends take turns on one node while the clock steps back by any amount: a new holder
    /// starts after its predecessors' last millisecond, waiting within the tolerance and failing
    /// beyond it until the clock has caught up.
    #[test]
    fn a_new_holder_of_a_node_starts_after_every_earlier_holder_whatever_the_clock_does() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut seen = HashSet::new();
        let mut last = 0;
        for step_back_ms in [0, 1, 4, 5, 6, 1_000, 60_000, 3_600_000] {
            // The previous holder has exited, and the clock steps back into the milliseconds it
            // used.
            clock.now -= step_back_ms;
            clock.waited.clear();
            let mut backend = Backend::connect(&server);
            let first = loop {
                match backend.next_id(&mut clock, &ONE_NODE) {
                    Ok(id) => break id,
                    Err(error) => {
                        assert!(step_back_ms > 5, "{step_back_ms} ms is waited out");
                        assert_eq!(error.state, SqlState::SystemError);
                        let behind = parts(last).unix_ms - clock.now;
                        assert_eq!(
                            error.message,
                            format!("the system clock moved backwards by {behind} ms")
                        );
                        clock.now += 1_000.min(behind); // the clock catches up
                    }
                }
            };
            assert!(first > last, "{first} after {last}");
            if (1..=5).contains(&step_back_ms) {
                assert_eq!(clock.waited.len() as i64, step_back_ms + 1);
            }
            for id in std::iter::once(first)
                .chain((0..5000).map(|_| backend.next_id(&mut clock, &ONE_NODE).unwrap()))
            {
                assert!(seen.insert(id), "duplicate {id}");
                last = id;
            }
            backend.unlock_all();
        }
    }

    #[test]
    fn a_lost_claim_is_noticed_in_the_next_millisecond() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut first = Backend::connect(&server);
        first.next_id(&mut clock, &ONE_NODE).unwrap();
        first.unlock_all();
        let mut second = Backend::connect(&server);
        assert_eq!(second.node(&ONE_NODE), Ok(7));

        // The rest of the millisecond is still safe: the new holder starts after it.
        let late_in_the_same_millisecond = first.next_id(&mut clock, &ONE_NODE).unwrap();
        assert!(second.next_id(&mut clock, &ONE_NODE).unwrap() > late_in_the_same_millisecond);

        clock.now += 1;
        let error = first.next_id(&mut clock, &ONE_NODE).unwrap_err();
        assert_eq!(error.state, SqlState::ConfigurationLimitExceeded);

        second.unlock_all();
        assert_eq!(first.node(&ONE_NODE), Ok(7));
    }

    #[test]
    fn only_ids_between_the_first_and_last_of_the_current_claim_are_issued_here() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut first = Backend::connect(&server);
        assert!(!first.generator.issued_here(0));
        let a = first.next_id(&mut clock, &ONE_NODE).unwrap();
        clock.now += 5;
        let b = first.next_id(&mut clock, &ONE_NODE).unwrap();
        let gap = layout::compose(EPOCH_PLUS_A_YEAR + 2, 7, 9).unwrap();
        assert!(first.generator.issued_here(a) && first.generator.issued_here(b));
        assert!(
            first.generator.issued_here(gap),
            "never issued by anyone else"
        );
        assert!(
            !first.generator.issued_here(b + 1),
            "the rest of b's millisecond is still to come"
        );
        let other_node = layout::compose(EPOCH_PLUS_A_YEAR + 2, 8, 0).unwrap();
        assert!(!first.generator.issued_here(other_node));

        // After a takeover neither backend vouches for the other's IDs.
        first.unlock_all();
        let mut second = Backend::connect(&server);
        clock.now += 1;
        let c = second.next_id(&mut clock, &ONE_NODE).unwrap();
        assert!(second.generator.issued_here(c) && !second.generator.issued_here(b));
        clock.now += 1;
        assert!(first.next_id(&mut clock, &ONE_NODE).is_err());
        assert!(!first.generator.issued_here(a));
    }

    #[test]
    fn no_id_without_its_mark() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut backend = Backend::connect(&server);
        let before = backend.next_id(&mut clock, &ONE_NODE).unwrap();
        *server.mark_error.borrow_mut() = Some(SqlError::new(SqlState::IoError, "disk full"));
        // Within the millisecond the mark is already recorded; the next one needs a new mark.
        assert!(backend.next_id(&mut clock, &ONE_NODE).is_ok());
        clock.now += 1;
        assert_eq!(
            backend.next_id(&mut clock, &ONE_NODE).unwrap_err().message,
            "disk full"
        );
        *server.mark_error.borrow_mut() = None;
        let after = backend.next_id(&mut clock, &ONE_NODE).unwrap();
        assert_eq!(parts(after).unix_ms, parts(before).unix_ms + 1);
        assert_eq!(server.marks.borrow()[&7], parts(after).unix_ms);
    }

    #[test]
    fn a_node_whose_mark_cannot_be_read_is_given_back() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut backend = Backend::connect(&server);
        *server.mark_error.borrow_mut() = Some(SqlError::new(SqlState::DataCorrupted, "damaged"));
        let error = backend.next_id(&mut clock, &ONE_NODE).unwrap_err();
        assert_eq!(error.state, SqlState::DataCorrupted);
        assert!(backend.held.is_empty() && server.claims.borrow().is_empty());
        assert_eq!(backend.generator.node, None);
    }

    #[test]
    fn a_node_outside_a_new_range_is_given_up_at_once() {
        let server = Server::default();
        let mut backend = Backend::connect(&server);
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let before = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        let narrowed = Settings {
            node_min: 10,
            node_max: 20,
            ..DEFAULTS
        };
        let after = backend.next_id(&mut clock, &narrowed).unwrap();
        assert_eq!(parts(after).node, 10);
        assert!(after > before);
        // Node 10's first ID from this backend comes in a millisecond recorded as its own.
        assert_eq!(server.marks.borrow()[&10], parts(after).unix_ms);
        assert_eq!(backend.held, HashSet::from([10]));
        assert_eq!(*server.claims.borrow(), BTreeSet::from([10]));

        let inverted = Settings {
            node_min: 20,
            node_max: 10,
            ..DEFAULTS
        };
        let error = backend.next_id(&mut clock, &inverted).unwrap_err();
        assert_eq!(error.state, SqlState::InvalidParameter);
    }
}
