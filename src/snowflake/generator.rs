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
    pub fn next_id(
        &mut self,
        clock: &mut impl Clock,
        registry: &mut impl NodeRegistry,
        settings: &Settings,
    ) -> Result<i64, SqlError> {
        let node = self.node(clock, registry, settings)?;
        loop {
            let now = clock.now_ms();
            if now > self.last_ms {
                self.last_ms = now;
                self.sequence = 0;
                break;
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
                break;
            }
            // The clock is a little behind, or this millisecond's 4096 IDs are used up.
            clock.wait(behind);
        }
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

    /// One server's node claims, shared by the generators of several simulated backends.
    #[derive(Default)]
    struct FakeServer {
        taken: BTreeSet<i32>,
    }

    struct Backend<'a> {
        server: &'a std::cell::RefCell<FakeServer>,
        held: HashSet<i32>,
    }

    impl NodeRegistry for Backend<'_> {
        fn claim_lowest_free(&mut self, min: i32, max: i32) -> Option<i32> {
            let mut server = self.server.borrow_mut();
            let node = (min..=max).find(|n| !server.taken.contains(n))?;
            server.taken.insert(node);
            self.held.insert(node);
            Some(node)
        }
        fn holds(&mut self, node: i32) -> bool {
            self.held.contains(&node)
        }
        fn release(&mut self, node: i32) {
            self.held.remove(&node);
            self.server.borrow_mut().taken.remove(&node);
        }
    }

    impl Backend<'_> {
        /// What `pg_advisory_unlock_all()` does.
        fn unlock_all(&mut self) {
            for node in self.held.drain() {
                self.server.borrow_mut().taken.remove(&node);
            }
        }
    }

    const EPOCH_PLUS_A_YEAR: i64 = layout::EPOCH_UNIX_MS + 365 * 86_400_000;
    const DEFAULTS: Settings = Settings {
        node_min: 0,
        node_max: 1023,
        max_clock_backward_ms: 5,
    };

    fn clock_at(now: i64) -> FakeClock {
        FakeClock {
            now,
            waited: Vec::new(),
        }
    }

    #[test]
    fn the_first_id_comes_after_the_claim_and_the_clock_tolerance() {
        let server = Default::default();
        let mut backend = Backend {
            server: &server,
            held: HashSet::new(),
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut generator = Generator::new();
        let id = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        let parts = layout::decompose(id).unwrap();
        assert_eq!(parts.unix_ms, EPOCH_PLUS_A_YEAR + 5 + 1);
        assert_eq!((parts.node, parts.sequence), (0, 0));
    }

    #[test]
    fn sequence_overflow_waits_for_the_next_millisecond() {
        let server = Default::default();
        let mut backend = Backend {
            server: &server,
            held: HashSet::new(),
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut generator = Generator::new();
        let first = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        clock.waited.clear();
        let mut previous = first;
        for _ in 0..MAX_SEQUENCE {
            let id = generator
                .next_id(&mut clock, &mut backend, &DEFAULTS)
                .unwrap();
            assert_eq!(id, previous + 1);
            previous = id;
        }
        assert!(clock.waited.is_empty(), "4096 IDs fit in one millisecond");
        let next = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        assert_eq!(clock.waited, vec![0]);
        let parts = layout::decompose(next).unwrap();
        assert_eq!(parts.unix_ms, layout::decompose(first).unwrap().unix_ms + 1);
        assert_eq!(parts.sequence, 0);
    }

    #[test]
    fn small_clock_steps_back_are_waited_out_and_large_ones_fail() {
        let server = Default::default();
        let mut backend = Backend {
            server: &server,
            held: HashSet::new(),
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut generator = Generator::new();
        let before = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        clock.waited.clear();
        clock.now -= 3;
        let after = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        assert!(after > before);
        assert_eq!(clock.waited.first(), Some(&3));

        clock.now -= 100;
        let error = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap_err();
        assert_eq!(error.state, SqlState::SystemError);
        assert_eq!(error.message, "the system clock moved backwards by 100 ms");
        clock.now += 100;
        let resumed = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        assert!(resumed > after);
    }

    #[test]
    fn a_reused_node_never_repeats_its_previous_holders_ids() {
        let server = Default::default();
        let one_node = Settings {
            node_min: 7,
            node_max: 7,
            ..DEFAULTS
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut seen = HashSet::new();
        for _backend in 0..5 {
            let mut backend = Backend {
                server: &server,
                held: HashSet::new(),
            };
            let mut generator = Generator::new();
            for _ in 0..5000 {
                let id = generator
                    .next_id(&mut clock, &mut backend, &one_node)
                    .unwrap();
                assert!(seen.insert(id), "duplicate {id}");
            }
            // The backend exits, and the clock steps back into the milliseconds it used.
            backend.unlock_all();
            clock.now -= 2;
        }
    }

    #[test]
    fn a_lost_claim_is_noticed_before_the_next_id() {
        let server = Default::default();
        let one_node = Settings {
            node_min: 7,
            node_max: 7,
            ..DEFAULTS
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut first = Backend {
            server: &server,
            held: HashSet::new(),
        };
        let mut first_generator = Generator::new();
        first_generator
            .next_id(&mut clock, &mut first, &one_node)
            .unwrap();
        first.unlock_all();

        let mut second = Backend {
            server: &server,
            held: HashSet::new(),
        };
        assert_eq!(
            Generator::new().node(&mut clock, &mut second, &one_node),
            Ok(7)
        );
        let error = first_generator
            .next_id(&mut clock, &mut first, &one_node)
            .unwrap_err();
        assert_eq!(error.state, SqlState::ConfigurationLimitExceeded);

        second.unlock_all();
        assert_eq!(
            first_generator.node(&mut clock, &mut first, &one_node),
            Ok(7)
        );
    }

    #[test]
    fn a_node_outside_a_new_range_is_given_up() {
        let server = Default::default();
        let mut backend = Backend {
            server: &server,
            held: HashSet::new(),
        };
        let mut clock = clock_at(EPOCH_PLUS_A_YEAR);
        let mut generator = Generator::new();
        let before = generator
            .next_id(&mut clock, &mut backend, &DEFAULTS)
            .unwrap();
        let narrowed = Settings {
            node_min: 10,
            node_max: 20,
            ..DEFAULTS
        };
        let after = generator
            .next_id(&mut clock, &mut backend, &narrowed)
            .unwrap();
        assert_eq!(layout::decompose(after).unwrap().node, 10);
        assert!(after > before);
        assert_eq!(backend.held, HashSet::from([10]));
        assert!(!server.borrow().taken.contains(&0));

        let inverted = Settings {
            node_min: 20,
            node_max: 10,
            ..DEFAULTS
        };
        let error = generator
            .next_id(&mut clock, &mut backend, &inverted)
            .unwrap_err();
        assert_eq!(error.state, SqlState::InvalidParameter);
    }
}
