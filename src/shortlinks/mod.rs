//! URL short links. The table and the SQL functions users call live in sql/shortlinks.sql; this
//! module gives them URL checks, generated codes and the visit buffer.

pub mod codes;
mod extension;
mod link_lookup;
mod resolve;
pub mod urls;
pub mod visits;

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr, CString};

use pgrx::prelude::*;
use pgrx::{
    register_xact_callback, GucContext, GucFlags, GucRegistry, GucSetting, PgXactCallbackEvent,
};

use crate::error::{OrRaise, SqlError, SqlState};
use codes::CodeKey;
use urls::UrlPolicy;
use visits::VisitBuffer;

/// How shorten() makes codes when it is given none.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum CodeStyle {
    /// A keyed permutation of a counter: 7 characters, reveals nothing.
    #[name = c"keyed"]
    Keyed,
    /// base62 of the link's snowflake ID: up to 11 characters, needs no shared counter.
    #[name = c"snowflake"]
    Snowflake,
}

const DEFAULT_MAX_URL_LENGTH: i32 = 8000;
const DEFAULT_URL_SCHEMES: &CStr = c"http,https";

static MAX_URL_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_URL_LENGTH);
static ALLOWED_URL_SCHEMES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(DEFAULT_URL_SCHEMES));
static CODE_STYLE: GucSetting<CodeStyle> = GucSetting::<CodeStyle>::new(CodeStyle::Keyed);
static VISIT_FLUSH_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

thread_local! {
    static VISITS: RefCell<VisitBuffer> = RefCell::new(VisitBuffer::default());
    /// The schema of the extension whose visits the buffer holds, once this backend has counted
    /// one: the visits are written at its exit too.
    static VISITS_SCHEMA: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"snowlink.max_url_length",
        c"Longest URL, in bytes, that shorten() accepts.",
        c"",
        &MAX_URL_LENGTH,
        1,
        1 << 20,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_string_guc(
        c"snowlink.allowed_url_schemes",
        c"Comma-separated URL schemes that shorten() accepts.",
        c"javascript, data, vbscript and file are refused whatever this says.",
        &ALLOWED_URL_SCHEMES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"snowlink.code_style",
        c"How shorten() makes codes: keyed (7 characters, unguessable) or snowflake.",
        c"snowflake codes are base62 of the link's ID and need no counter shared between servers.",
        &CODE_STYLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"snowlink.visit_flush_interval_ms",
        c"How often a backend writes the visits it has counted.",
        c"0 writes them with every read-write resolve.",
        &VISIT_FLUSH_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

/// The URL as shorten() stores it, or an ERROR saying why it is refused.
#[pg_extern(stable, parallel_safe)]
fn shortlink_normalize_url(url: &str) -> String {
    // A string setting with a default is never NULL; schemes are ASCII, so no byte of another
    // encoding can match one.
    let schemes = ALLOWED_URL_SCHEMES.get();
    let schemes = schemes
        .as_deref()
        .map(CStr::to_string_lossy)
        .unwrap_or_default();
    let policy = UrlPolicy {
        max_length: MAX_URL_LENGTH.get() as usize,
        allowed_schemes: &schemes,
    };
    urls::normalize(url, &policy).or_raise("shortlink_normalize_url")
}

/// The generated code for counter value `counter` under `key`.
#[pg_extern(immutable, parallel_safe)]
fn _shortlink_keyed_code(counter: i64, key: &[u8]) -> String {
    CodeKey::from_bytes(key)
        .and_then(|key| codes::keyed_code(counter, &key))
        .or_raise("_shortlink_keyed_code")
}

/// Counts a visit of `link_id` in this backend. True when the buffered visits are due to be
/// written and this transaction can write them. A standby counts nothing: it could never write.
#[pg_extern(volatile, parallel_unsafe)]
fn _shortlink_record_visit(link_id: i64, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    record_visit(function_schema(fcinfo), link_id)
}

/// The schema of the called function: the extension's.
fn function_schema(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Oid {
    // SAFETY: PostgreSQL passes this call's valid fcinfo and flinfo.
    unsafe { pg_sys::get_func_namespace((*(*fcinfo).flinfo).fn_oid) }
}

/// Counts a visit of `link_id` of the extension in `schema`; see `_shortlink_record_visit`.
fn record_visit(schema: pg_sys::Oid, link_id: i64) -> bool {
    // SAFETY: plain reads of backend state.
    let (in_recovery, read_only, now) = unsafe {
        (
            pg_sys::RecoveryInProgress(),
            pg_sys::XactReadOnly,
            pg_sys::GetCurrentTimestamp(),
        )
    };
    if in_recovery {
        return false;
    }
    if VISITS_SCHEMA.replace(Some(schema)).is_none() {
        // SAFETY: registers a callback for this backend's exit.
        unsafe { pg_sys::before_shmem_exit(Some(write_visits_at_exit), pg_sys::Datum::from(0)) };
    }
    let interval_us = i64::from(VISIT_FLUSH_INTERVAL_MS.get()) * 1000;
    VISITS.with_borrow_mut(|buffer| {
        buffer.record(link_id, now, !read_only);
        !read_only && buffer.flush_due(now, interval_us)
    })
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

/// Takes this backend's buffered visits for writing in the current transaction. If it rolls
/// back, they return to the buffer.
#[pg_extern(volatile, parallel_unsafe)]
fn _shortlink_take_visits() -> TableIterator<
    'static,
    (
        name!(link_id, i64),
        name!(visits, i64),
        name!(first_at, TimestampWithTimeZone),
        name!(last_at, TimestampWithTimeZone),
    ),
> {
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let (first_take_in_transaction, batch) =
        VISITS.with_borrow_mut(|buffer| (!buffer.is_taking(), buffer.take(now)));
    if first_take_in_transaction {
        register_xact_callback(PgXactCallbackEvent::Commit, || {
            VISITS.with_borrow_mut(VisitBuffer::commit)
        });
        register_xact_callback(PgXactCallbackEvent::Abort, || {
            VISITS.with_borrow_mut(VisitBuffer::abort)
        });
    }
    let rows: Result<Vec<_>, SqlError> = batch
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

fn timestamp(postgres_us: i64) -> Result<TimestampWithTimeZone, SqlError> {
    TimestampWithTimeZone::try_from(postgres_us)
        .map_err(|_| SqlError::new(SqlState::OutOfRange, "timestamp out of range"))
}

extension_sql_file!(
    "../../sql/shortlinks.sql",
    requires = [
        shortlink_normalize_url,
        _shortlink_keyed_code,
        _shortlink_record_visit,
        _shortlink_take_visits,
        snowflake::snowflake_next,
        base62::base62_encode
    ]
);
