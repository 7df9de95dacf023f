//! Snowflake IDs: SQL functions, settings, and the backend's generator.

pub mod generator;
pub mod highwater;
pub mod layout;
mod registry;

use std::cell::RefCell;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::datum::{Range, RangeBound};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::error::{OrRaise, SqlError, SqlState};
use generator::{Clock, Generator, NodeMarks, Settings};
use highwater::{DataDirectory, Marks};
use layout::MAX_NODE;
use registry::AdvisoryLocks;

static NODE_MIN: GucSetting<i32> = GucSetting::<i32>::new(0);
static NODE_MAX: GucSetting<i32> = GucSetting::<i32>::new(MAX_NODE);
static MAX_CLOCK_BACKWARD_MS: GucSetting<i32> = GucSetting::<i32>::new(5);
/// Test builds only: shifts this backend's clock, to step it back.
#[cfg(feature = "pg_test")]
static TEST_CLOCK_OFFSET_MS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// Longest clock step back that snowlink.max_clock_backward_ms may wait out.
const MAX_CLOCK_TOLERANCE_MS: i32 = 10_000;

/// The file in the data directory that holds the nodes' high-water marks (highwater.rs).
const MARK_FILE_NAME: &str = "snowlink_highwater";

thread_local! {
    static GENERATOR: RefCell<Generator> = const { RefCell::new(Generator::new()) };
    static MARKS: RefCell<Option<Marks>> = const { RefCell::new(None) };
}

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"snowlink.node_min",
        c"Lowest snowflake node number this server's backends may claim.",
        c"Servers that share IDs give each other disjoint node ranges.",
        &NODE_MIN,
        0,
        MAX_NODE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"snowlink.node_max",
        c"Highest snowflake node number this server's backends may claim.",
        c"Servers that share IDs give each other disjoint node ranges.",
        &NODE_MAX,
        0,
        MAX_NODE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"snowlink.max_clock_backward_ms",
        c"Longest step back of the system clock that snowflake_next() waits out instead of failing.",
        c"The same holds for a backend that claims a node whose last use is ahead of the clock.",
        &MAX_CLOCK_BACKWARD_MS,
        0,
        MAX_CLOCK_TOLERANCE_MS,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    #[cfg(feature = "pg_test")]
    GucRegistry::define_int_guc(
        c"snowlink.test_clock_offset_ms",
        c"Test builds only: added to the system clock.",
        c"",
        &TEST_CLOCK_OFFSET_MS,
        -1_000_000,
        1_000_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

pub(crate) fn settings() -> Settings {
    Settings {
        node_min: NODE_MIN.get(),
        node_max: NODE_MAX.get(),
        max_clock_backward_ms: MAX_CLOCK_BACKWARD_MS.get(),
    }
}

struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&mut self) -> i64 {
        // A clock before 1970 reads as 1970, which is outside the snowflake range and fails there.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        #[cfg(feature = "pg_test")]
        let now = now + i64::from(TEST_CLOCK_OFFSET_MS.get());
        now
    }

    fn wait(&mut self, behind_ms: i64) {
        pg_sys::check_for_interrupts!();
        if behind_ms == 0 {
            // Less than a millisecond to go: sleeping would overshoot it.
            std::hint::spin_loop();
        } else {
            // SAFETY: pg_usleep only sleeps.
            unsafe { pg_sys::pg_usleep(1000) };
        }
    }
}

/// The server's high-water marks (highwater.rs), which this backend opens at its first claim.
struct ServerMarks;

impl ServerMarks {
    fn with_marks<T>(work: impl FnOnce(&mut Marks) -> Result<T, SqlError>) -> Result<T, SqlError> {
        MARKS.with_borrow_mut(|opened| {
            let marks = match opened {
                Some(marks) => marks,
                None => opened.insert(open_marks()?),
            };
            let result = work(marks);
            for note in marks.take_notes() {
                log!("{note}");
            }
            result
        })
    }
}

impl NodeMarks for ServerMarks {
    fn last_used(&mut self, node: i32) -> Result<i64, SqlError> {
        Self::with_marks(|marks| marks.last_used(node))
    }

    fn record_use(&mut self, node: i32, ms: i64) -> Result<(), SqlError> {
        Self::with_marks(|marks| marks.record_use(node, ms))
    }
}

fn open_marks() -> Result<Marks, SqlError> {
    // SAFETY: DataDir is set before any backend runs SQL and never changes.
    let data_dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    let data_dir = Path::new(OsStr::from_bytes(data_dir.to_bytes()));
    let metadata = std::fs::metadata(data_dir).map_err(|error| {
        SqlError::new(
            SqlState::IoError,
            format!(
                "could not read the data directory \"{}\": {error}",
                data_dir.display()
            ),
        )
    })?;
    let directory = DataDirectory {
        // SAFETY: the control file is read when the server starts.
        system: unsafe { pg_sys::GetSystemIdentifier() },
        device: metadata.dev(),
        inode: metadata.ino(),
    };
    // One shared memory object per data directory, so that a copy of it has marks of its own.
    let segment = CString::new(format!(
        "/snowlink.{:x}.{:x}.{:x}",
        directory.system, directory.device, directory.inode
    ))
    .expect("no NUL in a formatted name");
    // A new file knows nothing of the IDs made before it: they are older than now, give or take
    // the clock tolerance.
    let start_ms = SystemClock.now_ms() + i64::from(MAX_CLOCK_BACKWARD_MS.get());
    Marks::open(
        &data_dir.join(MARK_FILE_NAME),
        &segment,
        directory,
        start_ms,
    )
}

/// A new unique ID, later than every ID this backend made before. Like `nextval()`, an ID is not
/// given back when the transaction rolls back.
#[pg_extern(volatile, parallel_unsafe)]
pub(crate) fn snowflake_next() -> i64 {
    let settings = settings();
    GENERATOR
        .with_borrow_mut(|generator| {
            generator.next_id(
                &mut SystemClock,
                &mut AdvisoryLocks,
                &mut ServerMarks,
                &settings,
            )
        })
        .or_raise("snowflake_next")
}

/// Whether no backend but this one can ever issue `id` (Generator::issued_here): the row
/// security of shortlinks lets a role store only such IDs, so that no stored ID can meet the same
/// ID from the generator later. Backend state, hence parallel restricted.
#[pg_extern(volatile, parallel_restricted, schema = "snowlink_internal")]
fn _snowflake_issued_here(id: i64) -> bool {
    GENERATOR.with_borrow(|generator| generator.issued_here(id))
}

/// This backend's node number, claimed now if it holds none.
#[pg_extern(volatile, parallel_unsafe)]
fn snowflake_node_id() -> i32 {
    let settings = settings();
    GENERATOR
        .with_borrow_mut(|generator| {
            generator.node(&mut AdvisoryLocks, &mut ServerMarks, &settings)
        })
        .or_raise("snowflake_node_id")
}

/// PostgreSQL counts timestamps in microseconds from 2000-01-01 00:00:00 UTC.
const POSTGRES_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// The millisecond an ID was made in.
#[pg_extern(immutable, parallel_safe)]
fn snowflake_timestamp(id: i64) -> TimestampWithTimeZone {
    let parts = layout::decompose(id).or_raise("snowflake_timestamp");
    let postgres_us = parts.unix_ms * 1000 - POSTGRES_EPOCH_UNIX_US;
    TimestampWithTimeZone::try_from(postgres_us)
        .map_err(|_| SqlError::new(SqlState::OutOfRange, "timestamp out of range"))
        .or_raise("snowflake_timestamp")
}

/// The node that made an ID.
#[pg_extern(immutable, parallel_safe)]
fn snowflake_node(id: i64) -> i32 {
    layout::decompose(id).or_raise("snowflake_node").node
}

/// An ID's position within its node's millisecond, 0 to 4095.
#[pg_extern(immutable, parallel_safe)]
fn snowflake_sequence(id: i64) -> i32 {
    layout::decompose(id)
        .or_raise("snowflake_sequence")
        .sequence
}

/// The smallest ID made at or after `at`: `id >= snowflake_min(t1) AND id < snowflake_min(t2)`
/// selects the IDs made in [t1, t2) with a range scan of the primary key. Open bounds work: 0 for
/// a time before the snowflake epoch ('-infinity' included), and the largest bigint for a time
/// after its last millisecond ('infinity' included), which no ID made before it exceeds.
#[pg_extern(immutable, parallel_safe)]
fn snowflake_min(at: TimestampWithTimeZone) -> i64 {
    // 'infinity' is i64::MAX microseconds, which the addition overflows.
    at.into_inner()
        .checked_add(POSTGRES_EPOCH_UNIX_US)
        .and_then(layout::min_id)
        .unwrap_or(i64::MAX)
}

/// This server's node range, from snowlink.node_min and snowlink.node_max.
#[pg_extern(stable, parallel_safe)]
fn snowflake_node_range() -> Range<i32> {
    let settings = settings();
    generator::check_range(&settings).or_raise("snowflake_node_range");
    Range::new(
        RangeBound::Inclusive(settings.node_min),
        RangeBound::Inclusive(settings.node_max),
    )
}

/// The high-water marks of this server's node range, for the view snowflake_node_status
/// (sql/src/monitoring.sql): its nodes, those whose mark is ahead of the clock (their IDs wait for
/// it), those ahead by more than snowlink.max_clock_backward_ms (IDs from them fail with 58000),
/// how far the furthest is ahead, and when the newest lease ends.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_safe, schema = "snowlink_internal")]
fn _snowflake_marks() -> TableIterator<
    'static,
    (
        name!(nodes, i32),
        name!(nodes_ahead_of_clock, i32),
        name!(nodes_refusing, i32),
        name!(furthest_ahead_ms, i64),
        name!(last_lease_at, Option<TimestampWithTimeZone>),
    ),
> {
    let settings = settings();
    generator::check_range(&settings).or_raise("snowflake_node_status");
    let high_waters =
        ServerMarks::with_marks(|marks| marks.high_waters(settings.node_min..=settings.node_max))
            .or_raise("snowflake_node_status");
    let now = SystemClock.now_ms();
    let tolerance = i64::from(settings.max_clock_backward_ms);
    let ahead: Vec<i64> = high_waters
        .iter()
        .filter_map(|node| node.last_used_ms.map(|ms| ms - now))
        .filter(|&ahead_ms| ahead_ms > 0)
        .collect();
    let count = |nodes: usize| i32::try_from(nodes).unwrap_or(i32::MAX);
    let last_lease = high_waters
        .iter()
        .filter_map(|node| node.lease_ms)
        .max()
        .and_then(|unix_ms| {
            TimestampWithTimeZone::try_from(unix_ms * 1000 - POSTGRES_EPOCH_UNIX_US).ok()
        });
    TableIterator::once((
        count(high_waters.len()),
        count(ahead.len()),
        count(
            ahead
                .iter()
                .filter(|&&ahead_ms| ahead_ms > tolerance)
                .count(),
        ),
        ahead.iter().copied().max().unwrap_or(0),
        last_lease,
    ))
}

/// The advisory lock tag of node claims (src/locks.rs), for the view snowflake_nodes.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _snowflake_lock_tag(
) -> TableIterator<'static, (name!(classid, pg_sys::Oid), name!(objsubid, i16))> {
    TableIterator::once((
        pg_sys::Oid::from(crate::locks::LOCK_CLASS),
        crate::locks::LockKind::NodeClaim as i16,
    ))
}

extension_sql_file!(
    "../../sql/src/snowflake.sql",
    requires = [
        "internal_schema",
        snowflake_next,
        snowflake_node_id,
        snowflake_min,
        snowflake_timestamp,
        snowflake_node,
        snowflake_sequence,
        snowflake_node_range,
        _snowflake_lock_tag,
        _snowflake_issued_here
    ]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn next_id() -> i64 {
        Spi::get_one::<i64>("SELECT snowflake_next()")
            .unwrap()
            .unwrap()
    }

    /// Runs `query` and returns its error as "SQLSTATE: message", or None when it succeeds.
    fn error_of(query: &str) -> Option<String> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.error_of(query text) RETURNS text
             LANGUAGE plpgsql AS $$
             BEGIN
                 EXECUTE query;
                 RETURN NULL;
             EXCEPTION WHEN OTHERS THEN
                 RETURN SQLSTATE || ': ' || SQLERRM;
             END $$",
        )
        .unwrap();
        Spi::get_one_with_args::<String>("SELECT pg_temp.error_of($1)", &[query.into()]).unwrap()
    }

    #[pg_test]
    fn a_small_clock_step_back_is_waited_out() {
        let before = next_id();
        Spi::run("SET snowlink.test_clock_offset_ms = -4").unwrap();
        let after = next_id();
        assert!(after > before, "{after} after {before}");
    }

    #[pg_test]
    fn a_large_clock_step_back_fails_and_says_how_far() {
        let before = next_id();
        Spi::run("SET snowlink.test_clock_offset_ms = -1000").unwrap();
        let error = error_of("SELECT snowflake_next()").expect("an error");
        let behind: i64 = error
            .strip_prefix("58000: the system clock moved backwards by ")
            .and_then(|rest| rest.strip_suffix(" ms"))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("unexpected error: {error}"));
        assert!((900..=1000).contains(&behind), "{error}");

        Spi::run("SET snowlink.test_clock_offset_ms = 0").unwrap();
        assert!(next_id() > before);
    }

    /// The previous holder of a node may have used milliseconds that a clock stepped back reads
    /// again: the new holder waits out the clock tolerance before its first ID.
    #[pg_test]
    fn a_reclaimed_node_starts_after_its_previous_holder_despite_a_clock_step() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS dblink").unwrap();
        let previous_holder = "format('host=%s port=%s dbname=%s options=''-c snowlink.node_min=7 -c snowlink.node_max=7''',
                   current_setting('unix_socket_directories'), current_setting('port'), current_database())";
        Spi::run(&format!(
            "SELECT dblink_connect('previous', {previous_holder})"
        ))
        .unwrap();
        let last_of_previous = Spi::get_one::<i64>(
            "SELECT max(id) FROM dblink('previous',
                 'SELECT snowflake_next() FROM generate_series(1, 10000)') AS t(id bigint)",
        )
        .unwrap()
        .unwrap();
        Spi::run("SELECT dblink_disconnect('previous')").unwrap();
        Spi::run(
            "DO $$ BEGIN
                 WHILE EXISTS (SELECT FROM snowflake_nodes WHERE node_id = 7) LOOP
                     PERFORM pg_sleep(0.005);
                 END LOOP;
             END $$",
        )
        .unwrap();

        Spi::run(
            "SET snowlink.node_min = 7;
             SET snowlink.node_max = 7;
             SET snowlink.max_clock_backward_ms = 200;
             SET snowlink.test_clock_offset_ms = -100",
        )
        .unwrap();
        let first = next_id();
        assert_eq!(crate::snowflake::layout::decompose(first).unwrap().node, 7);
        assert!(
            first > last_of_previous,
            "first ID {first} is not after the previous holder's last {last_of_previous}"
        );
    }
}
