//! The per-backend ID generator: a node number, the last millisecond used and a sequence within
//! it. Plain Rust over two traits, so that clock steps and lost nodes can be tested without a server.

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
    /// The millisecond of the last ID, or the earliest millisecond before which this node must not
    /// issue (see `claim`).
    last_ms: i64,
    sequence: i32,
}

impl Generator {
    pub const fn new() -> Self {
        Generator {
            node: None,
            last_ms: i64::MIN,
            sequence: 0,
        }
    }

    /// The node this backend issues IDs from, claiming one when it holds none, holds one outside
    /// the configured range, or has lost its claim (`pg_advisory_unlock_all()`, `DISCARD ALL`).
    pub fn node(
        &mut self,
        clock: &mut impl Clock,
        registry: &mut impl NodeRegistry,
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
        self.claim(clock, registry, settings)
    }

    /// The next ID: later than every ID this backend issued before, and unique on the server.
    ///
    /// The node's range is checked on every call, its lock once per new millisecond: a lost lock
    /// can only be claimed by another backend that then starts after the millisecond of its claim,
    /// so IDs issued in the current millisecond cannot collide with its IDs.
    pub fn next_id(
        &mut self,
        clock: &mut impl Clock,
        registry: &mut impl NodeRegistry,
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
                    // A claim moves the first allowed millisecond, so read the clock again.
                    self.node(clock, registry, settings)?;
                    continue;
                }
            };
            if new_millisecond {
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
        layout::compose(self.last_ms, node, self.sequence)
    }

    fn claim(
        &mut self,
        clock: &mut impl Clock,
        registry: &mut impl NodeRegistry,
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
        // Read after the claim: the node's previous holder released it before we claimed it, so all
        // of its IDs are from this millisecond or earlier. Starting strictly after it, and after the
        // clock tolerance in case the clock stepped back in between, no ID can repeat one of theirs.
        let claimed_at = clock.now_ms();
        let first_allowed = claimed_at + i64::from(settings.max_clock_backward_ms);
        if first_allowed >= self.last_ms {
            self.last_ms = first_allowed;
            self.sequence = MAX_SEQUENCE;
        }
        self.node = Some(node);
        Ok(node)
    }
}

fn check_range(settings: &Settings) -> Result<(), SqlError> {
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
    use std::collections::{BTreeSet, HashSet};

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

    /// The node claims of one server.
    type Server = RefCell<BTreeSet<i32>>;

    /// One simulated backend's view of the server's claims.
    struct Backend<'a> {
        server: &'a Server,
        held: HashSet<i32>,
        generator: Generator,
    }

    impl NodeRegistry for HashSetClaims<'_> {
        fn claim_lowest_free(&mut self, min: i32, max: i32) -> Option<i32> {
            let mut taken = self.server.borrow_mut();
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
            self.server.borrow_mut().remove(&node);
        }
    }

    /// The registry part of a backend, borrowed apart from its generator.
    struct HashSetClaims<'a> {
        server: &'a Server,
        held: &'a mut HashSet<i32>,
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
            let mut claims = HashSetClaims {
                server: self.server,
                held: &mut self.held,
            };
            self.generator.next_id(clock, &mut claims, settings)
        }

        fn node(&mut self, clock: &mut FakeClock, settings: &Settings) -> Result<i32, SqlError> {
            let mut claims = HashSetClaims {
                server: self.server,
                held: &mut self.held,
            };
            self.generator.node(clock, &mut claims, settings)
        }

        /// What `pg_advisory_unlock_all()`, `DISCARD ALL` or the backend's exit do.
        fn unlock_all(&mut self) {
            let mut taken = self.server.borrow_mut();
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
    fn the_first_id_comes_after_the_claim_and_the_clock_tolerance() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let id = Backend::connect(&server)
            .next_id(&mut clock, &DEFAULTS)
            .unwrap();
        assert_eq!(parts(id).unix_ms, EPOCH_PLUS_A_YEAR + 5 + 1);
        assert_eq!((parts(id).node, parts(id).sequence), (0, 0));
    }

    #[test]
    fn sequence_overflow_waits_for_the_next_millisecond() {
        let server = Server::default();
        let mut backend = Backend::connect(&server);
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let first = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        clock.waited.clear();
        for sequence in 1..=MAX_SEQUENCE {
            let id = backend.next_id(&mut clock, &DEFAULTS).unwrap();
            assert_eq!(id, first + i64::from(sequence));
        }
        assert!(clock.waited.is_empty(), "4096 IDs fit in one millisecond");
        let next = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        assert_eq!(clock.waited, vec![0]);
        assert_eq!(parts(next).unix_ms, parts(first).unix_ms + 1);
        assert_eq!(parts(next).sequence, 0);
    }

    #[test]
    fn small_clock_steps_back_are_waited_out_and_large_ones_fail() {
        let server = Server::default();
        let mut backend = Backend::connect(&server);
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let before = backend.next_id(&mut clock, &DEFAULTS).unwrap();
        clock.waited.clear();
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

    #[test]
    fn a_reused_node_never_repeats_its_previous_holders_ids() {
        let server = Server::default();
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut seen = HashSet::new();
        for _ in 0..5 {
            let mut backend = Backend::connect(&server);
            for _ in 0..5000 {
                let id = backend.next_id(&mut clock, &ONE_NODE).unwrap();
                assert!(seen.insert(id), "duplicate {id}");
            }
            // The backend exits, and the clock steps back into the milliseconds it used.
            backend.unlock_all();
            clock.now -= 2;
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
        assert_eq!(second.node(&mut clock, &ONE_NODE), Ok(7));

        // The rest of the millisecond is still safe: the new holder starts after it.
        let late_in_the_same_millisecond = first.next_id(&mut clock, &ONE_NODE).unwrap();
        assert!(second.next_id(&mut clock, &ONE_NODE).unwrap() > late_in_the_same_millisecond);

        clock.now += 1;
        let error = first.next_id(&mut clock, &ONE_NODE).unwrap_err();
        assert_eq!(error.state, SqlState::ConfigurationLimitExceeded);

        second.unlock_all();
        assert_eq!(first.node(&mut clock, &ONE_NODE), Ok(7));
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
        assert_eq!(backend.held, HashSet::from([10]));
        assert_eq!(*server.borrow(), BTreeSet::from([10]));

        let inverted = Settings {
            node_min: 20,
            node_max: 10,
            ..DEFAULTS
        };
        let error = backend.next_id(&mut clock, &inverted).unwrap_err();
        assert_eq!(error.state, SqlState::InvalidParameter);
    }
}
