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
pub mod rings;
mod writer;

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PgTryBuilder, PostgresGucEnum};

use crate::error::{OrRaise, SqlError, SqlState};
use crate::shortlinks::extension;
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
    /// Whether the current transaction writes the buffered visits before it commits.
    static WRITE_BEFORE_COMMIT: Cell<bool> = const { Cell::new(false) };
    /// The visit rings of this backend's database, once opened; None when they cannot be used.
    static RINGS: RefCell<Option<Option<VisitRings>>> = const { RefCell::new(None) };
}

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"snowlink.visit_flush_interval_ms",
        c"How often the visit writer writes the visits counted in its database.",
        c"Also the longest a visit waits to show in shortlink_stats(), and at most what a crash loses.",
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

/// Counts a visit of `link_id`, for the writer or this backend to write (record_visit()). The result, always false, is what SQL written for snowlink 0.1.0 expects: when it was true,
/// that SQL wrote the visits at once, in the caller's transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn _shortlink_record_visit(link_id: i64, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    record_visit(extension::schema_of(fcinfo), link_id);
    false
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
    if in_recovery {
        return;
    }
    if VISIT_WRITE_MODE.get() == VisitWriteMode::Background && put_in_rings(link_id, now) {
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
    VISITS.with_borrow_mut(|buffer| buffer.record(link_id, now, !read_only));
    if !read_only {
        WRITE_BEFORE_COMMIT.set(true);
    }
}

/// Puts a visit at `at` into this backend's ring; false when the ring is full or the rings cannot
/// be used (reported once per backend).
fn put_in_rings(link_id: i64, at: i64) -> bool {
    RINGS.with_borrow_mut(|opened| {
        let rings = opened.get_or_insert_with(|| match writer::open_rings() {
            Ok(rings) => Some(rings),
            Err(error) => {
                log!("snowlink: this backend writes its counted visits itself: {error}");
                None
            }
        });
        let Some(rings) = rings else {
            return false;
        };
        // SAFETY: the process's slot, which no other live process has.
        let ring = unsafe { own_ring() };
        if ring >= rings.rings() || !rings.push(ring, link_id, at) {
            return false;
        }
        writer::ensure_writer(rings, at / 1000);
        true
    })
}

/// This process's slot in PostgreSQL's process array.
///
/// # Safety
/// Called in a backend, which has a slot.
unsafe fn own_ring() -> usize {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    let slot = (*pg_sys::MyProc).pgprocno;
    #[cfg(not(any(feature = "pg15", feature = "pg16")))]
    let slot = pg_sys::MyProcNumber;
    slot as usize
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
        XACT_EVENT_PRE_COMMIT if WRITE_BEFORE_COMMIT.replace(false) => write_visits_before_commit(),
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
/// the server log, and the caller's transaction commits all the same.
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
    let context = pg_sys::CurrentMemoryContext;
    let owner = pg_sys::CurrentResourceOwner;
    pg_sys::BeginInternalSubTransaction(std::ptr::null());
    let written = PgTryBuilder::new(|| {
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        extension::flush_visits(schema);
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
    } else {
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
    }
    pg_sys::MemoryContextSwitchTo(context);
    pg_sys::CurrentResourceOwner = owner;
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
        let visits_table = pg_sys::get_relname_relid(c"shortlink_visits".as_ptr(), schema);
        if visits_table == pg_sys::InvalidOid {
            log!("snowlink: {lost} visits counted by this backend are lost at its exit: shortlink_visits no longer exists");
        } else if pg_sys::ConditionalLockRelationOid(
            visits_table,
            pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
        ) {
            extension::flush_visits(schema);
        } else {
            // An exiting backend ignores lock_timeout and cancels: it must not wait behind a lock.
            log!("snowlink: {lost} visits counted by this backend are lost at its exit: shortlink_visits is locked");
        }
        pg_sys::PopActiveSnapshot();
    }
    pg_sys::CommitTransactionCommand();
}

/// Takes this backend's buffered visits for writing in the current (sub)transaction, one row per
/// link and day (UTC), in the order of both. If the (sub)transaction rolls back, they return to
/// the buffer.
#[pg_extern(volatile, parallel_unsafe)]
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

/// What `_shortlink_take_daily_visits()` takes, one row per link, for the SQL of snowlink 0.1.0,
/// which calls this until its database is updated. Not in the SQL of later versions.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _shortlink_take_visits() -> TableIterator<
    'static,
    (
        name!(link_id, i64),
        name!(visits, i64),
        name!(first_at, TimestampWithTimeZone),
        name!(last_at, TimestampWithTimeZone),
    ),
> {
    let mut per_link: Vec<(i64, buffer::Visits)> = Vec::new();
    for (key, visits) in take_visits() {
        match per_link.last_mut() {
            Some((link_id, total)) if *link_id == key.link_id => total.merge(visits),
            _ => per_link.push((key.link_id, visits)),
        }
    }
    let rows: Result<Vec<_>, SqlError> = per_link
        .into_iter()
        .map(|(link_id, visits)| {
            Ok((
                link_id,
                visits.count,
                timestamp(visits.first_at)?,
                timestamp(visits.last_at)?,
            ))
        })
        .collect();
    TableIterator::new(rows.or_raise("_shortlink_take_visits"))
}

/// This backend's buffered visits, taken for writing by the current (sub)transaction.
fn take_visits() -> Vec<(buffer::LinkDay, buffer::Visits)> {
    // SAFETY: reads the current subtransaction.
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    VISITS.with_borrow_mut(|buffer| buffer.take(sub))
}

fn timestamp(postgres_us: i64) -> Result<TimestampWithTimeZone, SqlError> {
    TimestampWithTimeZone::try_from(postgres_us)
        .map_err(|_| SqlError::new(SqlState::OutOfRange, "timestamp out of range"))
}
