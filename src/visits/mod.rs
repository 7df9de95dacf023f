//! Visits of short links. By default a backend puts each visit it counts into the visit rings of
//! its database (rings.rs), shared by the server's backends through a file, and the database's
//! visit writer (writer.rs) writes them into shortlink_visits every flush interval, whatever the
//! backends do next.
//!
//! A backend writes visits itself, into the same table through the extension's SQL function
//! `_shortlinks_flush_visits()`, in the transaction write mode (for a session that reads its own
//! visits at once), or when its ring is full or cannot be used. It counts them in its buffer
//! (buffer.rs) and writes them just before its next read-write transaction commits, in a
//! subtransaction of its own: savepoints, exception blocks and errors of the caller never touch
//! it, an error while writing (a lock timeout, say) returns the visits to the buffer and lets the
//! caller's transaction commit, and a transaction that is PREPAREd for two-phase commit writes
//! nothing, since this backend would not learn its outcome. A backend also writes what it holds
//! when it exits.

pub mod buffer;
mod limited;
pub mod rings;
mod status;
mod writer;

pub use limited::count_visit as count_limited_visit;

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PgTryBuilder, PostgresGucEnum};

use crate::error::{OrRaise, SqlError, SqlState};
use crate::extension;
use buffer::VisitBuffer;
use rings::VisitRings;

static VISIT_FLUSH_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
static VISIT_WRITE_MODE: GucSetting<VisitWriteMode> =
    GucSetting::<VisitWriteMode>::new(VisitWriteMode::Background);

/// Who writes the visits a backend counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PostgresGucEnum)]
pub enum VisitWriteMode {
    /// The database's visit writer, every flush interval.
    #[name = c"background"]
    Background,
    /// The backend, before its read-write transaction commits.
    #[name = c"transaction"]
    Transaction,
}

thread_local! {
    static VISITS: RefCell<VisitBuffer> = RefCell::new(VisitBuffer::default());
    /// The schema of the extension whose visits the buffer holds, once this backend has counted
    /// one in its buffer: from then on the callbacks below are registered.
    static VISITS_SCHEMA: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
    /// The installation of the extension whose visits the buffer holds: its shortlink_visits.
    static VISITS_TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    /// Whether the current transaction writes the buffered visits before it commits.
    static WRITE_BEFORE_COMMIT: Cell<bool> = const { Cell::new(false) };
    /// Whether the last write of the buffered visits was put off or failed: the next read-write
    /// transaction tries again, whether it counts a visit or not.
    static WRITE_AGAIN: Cell<bool> = const { Cell::new(false) };
    /// The visit rings of this backend's database, once opened, or why they cannot be used, for
    /// the installation of the extension with this shortlink_visits.
    static RINGS: RefCell<Option<(pg_sys::Oid, Result<BackendRings, String>)>> =
        const { RefCell::new(None) };
    /// When this backend last logged visits that it held back or dropped (µs since 2000-01-01).
    static LAST_HOLD_LOG: Cell<i64> = const { Cell::new(i64::MIN) };
}

/// The visit rings of this backend's database, and whether its own ring has its disk space.
struct BackendRings {
    rings: VisitRings,
    space: RingSpace,
}

enum RingSpace {
    Unreserved,
    Reserved,
    /// The disk was full: the backend writes its visits itself until then (µs since 2000-01-01).
    Refused {
        until: i64,
    },
}

/// How long a backend whose ring could not get disk space writes its visits itself before it
/// tries again, in microseconds.
const RESERVE_RETRY_US: i64 = 10_000_000;
/// Held-back or dropped visits are logged at most once in this long per backend, in microseconds.
const HOLD_LOG_US: i64 = 10_000_000;

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"snowlink.visit_flush_interval_ms",
        c"How often the visit writer writes the visits counted in its database.",
        c"Also the longest a visit waits to show in shortlink_stats(), and at most what a crash loses, \
          unless a write takes longer than a tenth of it: then the writer waits ten times as long.",
        &VISIT_FLUSH_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_enum_guc(
        c"snowlink.visit_write_mode",
        c"Who writes the visits this session counts.",
        c"background: the database's visit writer, every snowlink.visit_flush_interval_ms. \
          transaction: the session, before its read-write transaction commits.",
        &VISIT_WRITE_MODE,
        GucContext::Userset,
        GucFlags::default(),
    );
}

fn flush_interval_ms() -> i64 {
    i64::from(VISIT_FLUSH_INTERVAL_MS.get())
}

/// Writes the visits this process holds: `_shortlinks_flush_visits()` of sql/src/visits.sql.
fn flush_visits(schema: pg_sys::Oid) {
    let function = extension::internal_function(schema, c"_shortlinks_flush_visits", &[]);
    // SAFETY: a function of the extension that takes no argument and returns void.
    unsafe { extension::call(function, &[]) };
}

/// The shortlink_visits table of the extension in `schema`, which tells its installations apart: a
/// visit counted for one is never written into the tables of the next (DROP EXTENSION, then
/// CREATE EXTENSION). None when the extension is gone.
///
/// # Safety
/// Called in a transaction.
unsafe fn visits_table(schema: pg_sys::Oid) -> Option<pg_sys::Oid> {
    let table = pg_sys::get_relname_relid(c"shortlink_visits".as_ptr(), schema);
    (table != pg_sys::InvalidOid).then_some(table)
}

/// Counts a visit of `link_id` of the extension in `schema`. A standby counts nothing: it could
/// never write.
pub fn record_visit(schema: pg_sys::Oid, link_id: i64) {
    // SAFETY: plain reads of backend state.
    let (in_recovery, read_only, now) = unsafe {
        (
            pg_sys::RecoveryInProgress(),
            pg_sys::XactReadOnly,
            pg_sys::GetCurrentTimestamp(),
        )
    };
    // SAFETY: in the transaction of the call that counts the visit.
    let Some(table) = (!in_recovery)
        .then(|| unsafe { visits_table(schema) })
        .flatten()
    else {
        return;
    };
    if VISIT_WRITE_MODE.get() == VisitWriteMode::Background && put_in_rings(table, link_id, now) {
        return;
    }
    if VISITS_SCHEMA.replace(Some(schema)).is_none() {
        // SAFETY: registers callbacks for this backend's transactions and exit, once.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
            pg_sys::before_shmem_exit(Some(write_visits_at_exit), pg_sys::Datum::from(0));
        }
    }
    if VISITS_TABLE.replace(table) != table {
        discard_visits_of_another_installation();
    }
    if !VISITS.with_borrow_mut(|buffer| buffer.record(link_id, now, !read_only)) {
        // Counted where snowlink_visit_writers shows it, when the rings can be opened.
        let _ = with_rings(table, |backend_rings, _| backend_rings.rings.add_dropped(1));
    }
    log_held_visits(now);
    if !read_only {
        WRITE_BEFORE_COMMIT.set(true);
    }
}

/// Forgets the visits the buffer holds for an installation of the extension that was dropped.
fn discard_visits_of_another_installation() {
    let dropped = VISITS.with_borrow_mut(VisitBuffer::discard);
    if dropped > 0 {
        log!("snowlink: {dropped} visits counted by this backend are dropped: the extension was dropped since");
    }
}

/// Runs `work` with the visit rings of this backend's database for the installation of the
/// extension with the shortlink_visits `table`, and its own slot in them, opening them on first
/// use; Err says why they cannot be used (logged once per installation).
fn with_rings<T>(
    table: pg_sys::Oid,
    work: impl FnOnce(&mut BackendRings, usize) -> T,
) -> Result<T, String> {
    RINGS.with_borrow_mut(|opened| {
        if opened
            .as_ref()
            .is_some_and(|(opened_for, _)| *opened_for != table)
        {
            *opened = None;
        }
        let (_, opened) = opened.get_or_insert_with(|| {
            let opened = writer::open_rings(table).and_then(|rings| {
                // SAFETY: the process's slot, which no other live process has.
                let ring = unsafe { own_slot() };
                if ring < rings.rings() {
                    Ok(BackendRings {
                        rings,
                        space: RingSpace::Unreserved,
                    })
                } else {
                    Err(format!("the visit rings have no ring for slot {ring}"))
                }
            });
            if let Err(error) = &opened {
                log!("snowlink: this backend writes its counted visits itself: {error}");
            }
            (table, opened)
        });
        match opened {
            // SAFETY: as above.
            Ok(backend_rings) => Ok(work(backend_rings, unsafe { own_slot() })),
            Err(error) => Err(error.clone()),
        }
    })
}

/// Puts a visit at `at` into this backend's ring; false when the ring is full, no writer can
/// come to empty it, or the rings cannot be used.
fn put_in_rings(table: pg_sys::Oid, link_id: i64, at: i64) -> bool {
    with_rings(table, |BackendRings { rings, space }, ring| {
        match space {
            RingSpace::Reserved => {}
            RingSpace::Refused { until } if at < *until => return false,
            RingSpace::Unreserved | RingSpace::Refused { .. } => match rings.reserve(ring) {
                Ok(()) => *space = RingSpace::Reserved,
                Err(error) => {
                    log!(
                        "snowlink: this backend writes its counted visits itself for a while: \
                         its visit ring has no disk space: {error}"
                    );
                    *space = RingSpace::Refused {
                        until: at + RESERVE_RETRY_US,
                    };
                    return false;
                }
            },
        }
        // Asked first: a visit in the ring waits for a writer, which may not come.
        writer::ensure_writer(rings, at / 1000) && rings.push(ring, link_id, at)
    })
    .unwrap_or(false)
}

/// Logs, at most once in a while, how many visits this backend holds because it could not write
/// them, and how many it had to drop.
fn log_held_visits(now: i64) {
    let (held, dropped) = VISITS.with_borrow(|buffer| (buffer.held_back(), buffer.dropped()));
    if (held == 0 && dropped == 0) || now.saturating_sub(LAST_HOLD_LOG.get()) < HOLD_LOG_US {
        return;
    }
    LAST_HOLD_LOG.set(now);
    let dropped_now = VISITS.with_borrow_mut(VisitBuffer::take_dropped);
    let mut report = ErrorReport::new(
        PgSqlErrorCode::ERRCODE_WARNING,
        format!(
            "snowlink: this backend holds {held} counted visits that it could not write yet, and \
             dropped {dropped_now} since its last report, for want of room to hold them"
        ),
        "record_visit",
    );
    if dropped_now > 0 {
        report = report.set_hint(
            "Visits are dropped while shortlink_visits cannot be written (a lock held on it, a \
             read-only transaction, a full disk): end what holds it. snowlink_visit_writers \
             counts them.",
        );
    }
    report.report(if dropped_now > 0 {
        PgLogLevel::WARNING
    } else {
        PgLogLevel::LOG
    });
}

/// This process's slot in PostgreSQL's process array.
///
/// # Safety
/// Called in a backend, which has a slot.
unsafe fn own_slot() -> usize {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    let slot = (*pg_sys::MyProc).pgprocno;
    #[cfg(not(any(feature = "pg15", feature = "pg16")))]
    let slot = pg_sys::MyProcNumber;
    slot as usize
}

/// Wakes the process in `slot` of PostgreSQL's process array, which sleeps on its latch.
fn set_latch_of(slot: usize) {
    // SAFETY: the process array lives as long as the server, and a latch may be set by any process.
    unsafe {
        let process = (*pg_sys::ProcGlobal).allProcs.add(slot);
        pg_sys::SetLatch(&mut (*process).procLatch);
    }
}

/// Follows the transactions of the backend: writes the visits before a commit when they are due,
/// and settles the batch being written when the transaction ends.
///
/// # Safety
/// Called by PostgreSQL as a transaction callback.
#[pg_guard]
unsafe extern "C-unwind" fn on_transaction_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT
            if WRITE_BEFORE_COMMIT.replace(false)
                || (WRITE_AGAIN.get() && !pg_sys::XactReadOnly) =>
        {
            write_visits_before_commit()
        }
        // Only a SQL call of the internal functions can get here with a batch taken.
        XACT_EVENT_PRE_PREPARE if VISITS.with_borrow(VisitBuffer::is_taking) => SqlError::new(
            SqlState::FeatureNotSupported,
            "cannot PREPARE a transaction that has written snowlink visits",
        )
        .raise("PREPARE TRANSACTION"),
        XACT_EVENT_COMMIT => VISITS.with_borrow_mut(VisitBuffer::commit),
        XACT_EVENT_ABORT => {
            WRITE_BEFORE_COMMIT.set(false);
            VISITS.with_borrow_mut(VisitBuffer::abort);
        }
        // A later transaction writes them.
        XACT_EVENT_PREPARE => WRITE_BEFORE_COMMIT.set(false),
        _ => {}
    }
}

/// Hands a batch from a committed subtransaction to its parent, and returns the batch of a rolled
/// back one to the buffer.
///
/// # Safety
/// Called by PostgreSQL as a subtransaction callback.
#[pg_guard]
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_COMMIT_SUB => {
            VISITS.with_borrow_mut(|buffer| buffer.subtransaction_committed(sub, parent))
        }
        SUBXACT_EVENT_ABORT_SUB => {
            VISITS.with_borrow_mut(|buffer| buffer.subtransaction_aborted(sub))
        }
        _ => {}
    }
}

/// Writes the buffered visits in a subtransaction of the committing transaction. If that fails,
/// it rolls back, the visits return to the buffer for a later transaction, the failure goes to
/// the server log, and the caller's transaction commits all the same. Counting never holds up
/// the caller: while another transaction locks shortlink_visits (ALTER TABLE, VACUUM FULL, LOCK),
/// the visits wait in the buffer.
///
/// # Safety
/// Called before the commit of a transaction, which is still in progress.
unsafe fn write_visits_before_commit() {
    let Some(schema) = VISITS_SCHEMA.get() else {
        return;
    };
    if pg_sys::XactReadOnly {
        return;
    }
    WRITE_AGAIN.set(true);
    match lock_visits_table(schema) {
        VisitsTable::Locked(table) if table == VISITS_TABLE.get() => {}
        VisitsTable::Locked(_) => {
            discard_visits_of_another_installation();
            WRITE_AGAIN.set(false);
            return;
        }
        VisitsTable::Busy => {
            VISITS.with_borrow_mut(VisitBuffer::hold_back);
            log_held_visits(pg_sys::GetCurrentTimestamp());
            return;
        }
        VisitsTable::Missing => {
            let lost = VISITS.with_borrow_mut(VisitBuffer::discard);
            log!("snowlink: {lost} visits counted by this backend are dropped: shortlink_visits no longer exists");
            WRITE_AGAIN.set(false);
            return;
        }
    }
    let context = pg_sys::CurrentMemoryContext;
    let owner = pg_sys::CurrentResourceOwner;
    pg_sys::BeginInternalSubTransaction(std::ptr::null());
    let written = PgTryBuilder::new(|| {
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        flush_visits(schema);
        pg_sys::PopActiveSnapshot();
        true
    })
    .catch_others(|error| {
        log_write_failure(error);
        false
    })
    .execute();
    if written {
        pg_sys::ReleaseCurrentSubTransaction();
        WRITE_AGAIN.set(false);
    } else {
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
    }
    pg_sys::MemoryContextSwitchTo(context);
    pg_sys::CurrentResourceOwner = owner;
}

/// Whether the visits table of the extension in a schema can be written now, without waiting.
enum VisitsTable {
    /// Locked for writing by the current transaction.
    Locked(pg_sys::Oid),
    /// Another transaction holds a lock that writing would wait for.
    Busy,
    /// Dropped, with the extension.
    Missing,
}

/// Takes the lock that writing shortlink_visits needs, if that takes no wait.
///
/// # Safety
/// Called in a transaction.
unsafe fn lock_visits_table(schema: pg_sys::Oid) -> VisitsTable {
    match visits_table(schema) {
        None => VisitsTable::Missing,
        Some(table)
            if pg_sys::ConditionalLockRelationOid(
                table,
                pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
            ) =>
        {
            VisitsTable::Locked(table)
        }
        Some(_) => VisitsTable::Busy,
    }
}

/// Logs why counted visits could not be written; they stay in the buffer for a later write.
fn log_write_failure(error: CaughtError) {
    let (CaughtError::PostgresError(report)
    | CaughtError::ErrorReport(report)
    | CaughtError::RustPanic {
        ereport: report, ..
    }) = error;
    log!(
        "snowlink: counted visits are written later: {}",
        report.message()
    );
}

/// Writes the visits this backend still holds when it exits, in a transaction of its own, as
/// PostgreSQL drops a backend's temporary tables. An error here is logged (as FATAL: the backend
/// is exiting) and loses only these visits. A read-only default transaction mode writes nothing.
///
/// # Safety
/// Called by PostgreSQL as a `before_shmem_exit` callback, in a backend that can still run
/// transactions.
#[pg_guard]
unsafe extern "C-unwind" fn write_visits_at_exit(_code: c_int, _arg: pg_sys::Datum) {
    // An open transaction may hold taken visits: aborting it returns them to the buffer.
    pg_sys::AbortOutOfAnyTransaction();
    let Some(schema) = VISITS_SCHEMA.get() else {
        return;
    };
    if !VISITS.with_borrow(VisitBuffer::has_pending) || pg_sys::RecoveryInProgress() {
        return;
    }
    pg_sys::StartTransactionCommand();
    if !pg_sys::XactReadOnly {
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let lost = VISITS.with_borrow(VisitBuffer::pending_count);
        match lock_visits_table(schema) {
            VisitsTable::Locked(table) if table == VISITS_TABLE.get() => {
                flush_visits(schema)
            }
            VisitsTable::Locked(_) => discard_visits_of_another_installation(),
            VisitsTable::Missing => log!("snowlink: {lost} visits counted by this backend are lost at its exit: shortlink_visits no longer exists"),
            // An exiting backend ignores lock_timeout and cancels: it must not wait behind a lock.
            VisitsTable::Busy => log!("snowlink: {lost} visits counted by this backend are lost at its exit: shortlink_visits is locked"),
        }
        pg_sys::PopActiveSnapshot();
    }
    pg_sys::CommitTransactionCommand();
}

/// Takes this backend's buffered visits for writing in the current (sub)transaction, one row per
/// link and day (UTC), in the order of both. If the (sub)transaction rolls back, they return to
/// the buffer.
#[pg_extern(volatile, parallel_unsafe, schema = "snowlink_internal")]
fn _shortlink_take_daily_visits() -> TableIterator<
    'static,
    (
        name!(link_id, i64),
        name!(day, Date),
        name!(visits, i64),
        name!(first_at, TimestampWithTimeZone),
        name!(last_at, TimestampWithTimeZone),
    ),
> {
    let rows: Result<Vec<_>, SqlError> = take_visits()
        .into_iter()
        .map(|(key, visits)| {
            Ok((
                key.link_id,
                Date::saturating_from_raw(key.day),
                visits.count,
                timestamp(visits.first_at)?,
                timestamp(visits.last_at)?,
            ))
        })
        .collect();
    TableIterator::new(rows.or_raise("_shortlink_take_daily_visits"))
}

extension_sql_file!(
    "../../sql/src/visits.sql",
    requires = [
        "tables",
        "snowflake",
        "resolve",
        _shortlink_take_daily_visits
    ]
);
extension_sql_file!(
    "../../sql/src/monitoring.sql",
    requires = [
        "tables",
        "snowflake",
        "visits",
        status::_visit_writers,
        snowflake::_snowflake_marks
    ]
);

/// This backend's buffered visits, taken for writing by the current (sub)transaction.
pub(crate) fn take_visits() -> Vec<(buffer::LinkDay, buffer::Visits)> {
    // SAFETY: reads the current subtransaction.
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    VISITS.with_borrow_mut(|buffer| buffer.take(sub))
}

pub(crate) fn timestamp(postgres_us: i64) -> Result<TimestampWithTimeZone, SqlError> {
    TimestampWithTimeZone::try_from(postgres_us)
        .map_err(|_| SqlError::new(SqlState::OutOfRange, "timestamp out of range"))
}
