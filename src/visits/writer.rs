//! The visit writer: one background worker per database that reads the database's visit rings
//! (rings.rs) every few tens of milliseconds and writes what it read into shortlink_visits every
//! `snowlink.visit_flush_interval_ms` (sooner when it holds half a ring of one backend's visits),
//! in a transaction of its own, after which it frees the records. So a visit shows within about
//! one interval whatever the backend that counted it does next, and a crash loses none: the
//! records wait in the rings for the next writer.
//!
//! Nothing starts it with the server: the first backend that counts a visit while no writer runs
//! asks the postmaster for one (a dynamic background worker, which needs no
//! `shared_preload_libraries`). The postmaster starts it again after a crash; it stops by itself
//! after a few seconds without visits, so that it holds no worker slot and no connection to an
//! idle database (DROP DATABASE waits a few seconds for connections to go). When no worker slot
//! is free, backends write their visits themselves (ensure_writer()) until one is.

use std::cell::Cell;
use std::ffi::{c_int, CStr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgTryBuilder, Spi};

use super::buffer::VisitBuffer;
use super::rings::{self, CountAnswer, CountRequest, VisitRings, RING_CAPACITY};
use super::{
    flush_interval_ms, flush_visits, lock_visits_table, log_write_failure, own_slot, set_latch_of,
    visits_table, VisitsTable, VISITS,
};
use crate::data_file::current_boot;
use crate::extension;
use crate::locks::{lock_tag, LockKind};

thread_local! {
    /// Whether visits wait in shortlink_visits_unseen for their links to show: then the writer
    /// writes again, and stays, though it counts no new visit. True until a write tells.
    static UNSEEN_WAITING: Cell<bool> = const { Cell::new(true) };
}

/// How many visits wait in shortlink_visits_unseen (0 in a database whose SQL is older).
fn unseen_visits(schema: pg_sys::Oid) -> i64 {
    let Some(function) =
        extension::find_internal_function(schema, c"_shortlinks_unseen_visits", &[])
    else {
        return 0;
    };
    // SAFETY: _shortlinks_unseen_visits() takes no argument and returns bigint, never NULL.
    unsafe { extension::call(function, &[]) }
        .and_then(|count| unsafe { i64::from_datum(count, false) })
        .unwrap_or(0)
}

/// The writer's name in pg_stat_activity (backend_type) and in the server log.
const WRITER_TYPE: &str = "snowlink visit writer";
/// How often the writer empties the rings, in milliseconds.
const PASS_MS: i64 = 50;
/// A writer that has not emptied the rings for this long is taken to be gone: backends ask for
/// another (which stops at once if the first one still runs). Also how long a new writer waits
/// for the previous one to leave.
pub(super) const WRITER_GONE_MS: i64 = 5_000;
/// The writer waits at least this many times as long as its last write took before the next (up to
/// this many flush intervals), so that writing takes at most a tenth of its time, and of a CPU: on
/// Citus, where a write of many links reaches every shard, a flush interval of a second would
/// otherwise slow down every redirect of a busy cluster. On one server a write takes a few
/// milliseconds.
const WRITE_SHARE: i64 = 10;
/// The writer writes at once, whatever the interval, when it has read this many visits of one ring
/// that it has not written: a ring frees its records only when the write that counts them commits,
/// and a backend whose ring is full writes its visits itself, one write and one flush of the WAL
/// with each of its transactions. Half a ring leaves the other half for the time the write takes.
const EARLY_WRITE_VISITS: u64 = RING_CAPACITY / 2;
/// The longest a write may take; then it is canceled, and tried again at the next interval. On
/// Citus a write can wait for a lock on another node where Citus's detection of distributed
/// deadlocks does not see the writer: a DROP EXTENSION on the coordinator waited for ever for a
/// worker's writer that waited for the drop's lock on another worker.
const WRITE_TIMEOUT_MS: c_int = 30_000;
/// The longest the count of a visit of a limited link may take; then it is canceled, and the
/// backend told that the link's row is locked. `_shortlink_count_visit()`'s lock_timeout (1 s)
/// fires first where it reaches the lock, on one server or on the link's own shard; on Citus it
/// does not reach a worker that holds the row for another node's transaction, where the writer
/// waited with every other visit of the database behind it until that transaction ended.
const COUNT_TIMEOUT_MS: c_int = 2_000;
/// The writer stops after this long without a visit.
const IDLE_STOP_MS: i64 = 3_000;
/// After a writer could not start, backends ask for one again after this long.
const START_RETRY_MS: i64 = 1_000;
/// A writer that cannot start is logged at most once in this long.
const FAILURE_LOG_MS: i64 = 60_000;
/// The directory of the rings files, in the data directory.
const RINGS_DIRECTORY: &str = "snowlink_visits";

/// The rings file of `database` for the current server: one per database, installation of the
/// extension (its shortlink_visits `table`), timeline and number of backend slots. The visits of
/// an installation that was dropped are never written into the tables of the next; a promoted
/// standby or a restored backup starts another timeline, and must not write again the visits that
/// its origin's rings held when the data directory was copied.
pub fn rings_path(
    database: pg_sys::Oid,
    table: pg_sys::Oid,
    timeline: u32,
    rings: usize,
) -> PathBuf {
    rings_directory().join(format!(
        "{}_{}_{timeline}_{rings}",
        database.to_u32(),
        table.to_u32()
    ))
}

fn rings_directory() -> PathBuf {
    // SAFETY: DataDir is set before any backend runs SQL and never changes.
    let data_dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(data_dir.to_string_lossy().as_ref()).join(RINGS_DIRECTORY)
}

/// Opens the rings file of this backend's database and the installation of the extension with the
/// shortlink_visits `table`, making it if need be.
pub fn open_rings(table: pg_sys::Oid) -> Result<VisitRings, String> {
    let directory = rings_directory();
    std::fs::create_dir_all(&directory).map_err(|error| {
        format!(
            "could not create directory \"{}\": {error}",
            directory.display()
        )
    })?;
    // SAFETY: plain reads of backend state, outside recovery.
    let (database, timeline, rings) = unsafe {
        (
            pg_sys::MyDatabaseId,
            pg_sys::GetWALInsertionTimeLine(),
            pg_sys::MaxBackends as usize,
        )
    };
    let boot = current_boot().map_err(|error| error.message)?;
    let path = rings_path(database, table, timeline, rings);
    VisitRings::open(&path, rings, boot).map_err(|error| {
        format!(
            "could not open visit rings file \"{}\": {error}",
            path.display()
        )
    })
}

/// Whether the visits counted in `rings` now will be written by a writer: true when one is
/// running or on its way. Asks for one when none has shown for a while (one backend asks, not
/// all). When none can start (max_worker_processes is reached), false for a while, in which the
/// callers write their visits themselves, so that none wait in the rings for a writer that cannot
/// come; then one of them asks again.
pub fn ensure_writer(rings: &VisitRings, now_ms: i64) -> bool {
    // SAFETY: set once when the server starts.
    let server_started_ms = unsafe { pg_sys::PgStartTime } / 1000;
    // A time before the server started is of an earlier server's writer, one after now of a clock
    // that has since stepped back.
    let within = |ms: i64, period_ms: i64| {
        (server_started_ms..=now_ms).contains(&ms) && now_ms - ms <= period_ms
    };
    if within(rings.writer_seen_ms(), WRITER_GONE_MS)
        || within(rings.writer_started_ms(), WRITER_GONE_MS)
    {
        return true;
    }
    let failed_ms = rings.writer_failed_ms();
    if within(failed_ms, START_RETRY_MS) {
        return false;
    }
    let requested_before_ms = server_started_ms.max(now_ms - WRITER_GONE_MS);
    if !rings.claim_writer_request(now_ms, requested_before_ms) {
        // Another backend asks at this moment, and may not get one: write this visit here.
        return false;
    }
    // SAFETY: a plain read of backend state.
    let database = unsafe { pg_sys::MyDatabaseId };
    let started =
        BackgroundWorkerBuilder::new(&format!("{WRITER_TYPE} for database {}", database.to_u32()))
            .set_type(WRITER_TYPE)
            .set_library("snowlink")
            .set_function("snowlink_visit_writer_main")
            .set_argument(database.into_datum())
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(1)))
            .load_dynamic();
    if started.is_ok() {
        rings.set_writer_started(now_ms);
        return true;
    }
    if !within(failed_ms, FAILURE_LOG_MS) {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "snowlink: no visit writer could start for database {}: \
                 max_worker_processes is reached",
                database.to_u32()
            ),
            "ensure_writer",
        )
        .set_detail(
            "Backends write the visits they count themselves until one can, which slows them.",
        )
        .set_hint(
            "Raise max_worker_processes (a restart) by one for each database that counts visits.",
        )
        // LOG, not WARNING: the server's log only. The client's visits are counted all the same,
        // and it could do nothing about it.
        .report(PgLogLevel::LOG);
    }
    rings.set_writer_failed(now_ms);
    false
}

/// The writer's lock: held for its life, so that a database has one writer at a time. No SQL
/// call can take it (src/locks.rs), so no role can keep a writer from starting.
fn writer_lock(database: pg_sys::Oid) -> pg_sys::LOCKTAG {
    lock_tag(LockKind::VisitWriter, database.to_u32())
}

/// Takes the writer's lock, waiting up to WRITER_GONE_MS for a writer that is leaving.
fn take_writer_lock(database: pg_sys::Oid) -> bool {
    let tag = writer_lock(database);
    for _ in 0..WRITER_GONE_MS / PASS_MS {
        // SAFETY: a session lock, released when this process exits.
        let result = unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, true, true)
        };
        if result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            return true;
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(PASS_MS as u64))) {
            return false;
        }
    }
    false
}

/// A rings file the writer reads, and how far it has read each ring.
struct Source {
    path: PathBuf,
    rings: VisitRings,
    read_to: Vec<u64>,
}

impl Source {
    /// Takes up `rings`, settling the note of a writer that crashed between its commit and the
    /// freeing of the records it wrote.
    fn new(path: PathBuf, rings: VisitRings) -> Source {
        if let Some(transaction) = rings.noted_transaction() {
            rings.settle_note(transaction_committed(transaction));
        }
        let read_to = (0..rings.rings()).map(|ring| rings.tail_of(ring)).collect();
        Source {
            path,
            rings,
            read_to,
        }
    }

    /// Counts every visit published since the last read into the writer's buffer; returns how
    /// many.
    fn read(&mut self) -> u64 {
        VISITS.with_borrow_mut(|buffer| {
            let mut read = 0;
            for (ring, read_to) in self.read_to.iter_mut().enumerate() {
                let from = *read_to;
                *read_to = self.rings.read(ring, from, |link_id, at| {
                    buffer.record(link_id, at, true);
                });
                read += read_to.wrapping_sub(from);
            }
            read
        })
    }

    /// The most visits that one of its rings holds which the writer read and has not written.
    fn most_unwritten(&self) -> u64 {
        self.read_to
            .iter()
            .enumerate()
            .map(|(ring, read_to)| read_to.wrapping_sub(self.rings.tail_of(ring)))
            .max()
            .unwrap_or(0)
    }
}

/// Whether `transaction` (a full transaction ID) committed. One too old for PostgreSQL to know
/// is taken as committed: a writer that crashed so long ago was followed by others. One at or past
/// the next transaction ID (a note from a history this server never had) did not commit here.
fn transaction_committed(transaction: u64) -> bool {
    let status = BackgroundWorker::transaction(|| {
        Spi::get_one::<String>(&format!(
            "SELECT CASE WHEN x < pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())
                         THEN coalesce(pg_catalog.pg_xact_status(x), 'committed') ELSE 'unknown' END
             FROM (SELECT '{transaction}'::pg_catalog.xid8 AS x) AS noted"
        ))
    });
    matches!(status, Ok(Some(status)) if status == "committed")
}

/// A rings file's name: database, installation (shortlink_visits), timeline, number of rings.
pub struct RingsName {
    pub database: u32,
    table: u32,
    pub timeline: u32,
    pub rings: usize,
}

impl RingsName {
    fn of(path: &Path) -> Option<RingsName> {
        let name = path.file_name()?.to_str()?;
        let fields: Vec<&str> = name.split('_').collect();
        let [database, table, timeline, rings] = fields[..] else {
            return None;
        };
        Some(RingsName {
            database: database.parse().ok()?,
            table: table.parse().ok()?,
            timeline: timeline.parse().ok()?,
            rings: rings.parse().ok()?,
        })
    }
}

/// The rings files in the data directory.
pub fn rings_files() -> Vec<(PathBuf, RingsName)> {
    let Ok(entries) = std::fs::read_dir(rings_directory()) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter_map(|path| RingsName::of(&path).map(|name| (path, name)))
        .collect()
}

/// The rings files of this database: the server's own first, then those left by an earlier
/// server of this timeline with another number of backend slots, which are removed once their
/// visits are written. Files of other timelines and of installations of the extension that were
/// dropped are removed at once, once no process has them open.
fn sources(
    database: pg_sys::Oid,
    table: pg_sys::Oid,
    timeline: u32,
    current: PathBuf,
    rings: VisitRings,
) -> Vec<Source> {
    let mut sources = vec![Source::new(current.clone(), rings)];
    for (path, name) in rings_files() {
        if path == current || name.database != database.to_u32() {
            continue;
        }
        if name.table != table.to_u32() || name.timeline != timeline {
            remove_unused(&path);
        } else if let Some(rings) = current_boot()
            .ok()
            .and_then(|boot| VisitRings::open(&path, name.rings, boot).ok())
        {
            sources.push(Source::new(path, rings));
        }
    }
    sources
}

/// Removes a rings file that no process has open any more (rings.rs).
fn remove_unused(path: &Path) {
    if let Err(error) = rings::remove_unused(path) {
        log!(
            "snowlink: could not remove visit rings file \"{}\": {error}",
            path.display()
        );
    }
}

/// Whether shortlinks can be read without waiting for another transaction's lock; then it is
/// locked for reading until the transaction ends.
///
/// # Safety
/// Called in a transaction.
unsafe fn links_table_free(schema: pg_sys::Oid) -> bool {
    let table = pg_sys::get_relname_relid(c"shortlinks".as_ptr(), schema);
    table == pg_sys::InvalidOid
        || pg_sys::ConditionalLockRelationOid(table, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
}

fn now_ms() -> i64 {
    // SAFETY: reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() / 1000 }
}

/// The visit writer's main function, started by the postmaster with the database's OID.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn snowlink_visit_writer_main(argument: pg_sys::Datum) {
    // SAFETY: the argument is the OID that ensure_writer() passed.
    let database = unsafe { pg_sys::Oid::from_datum(argument, false) }.expect("a database OID");
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    if !take_writer_lock(database) {
        return;
    }
    // SAFETY: plain reads of backend state; the writer starts once recovery has finished.
    let (timeline, slots) = unsafe {
        (
            pg_sys::GetWALInsertionTimeLine(),
            pg_sys::MaxBackends as usize,
        )
    };
    // SAFETY: in the transaction.
    let table = BackgroundWorker::transaction(|| {
        extension_schema().and_then(|schema| unsafe { visits_table(schema) })
    });
    let Some(table) = table else {
        return;
    };
    let current = rings_path(database, table, timeline, slots);
    let rings = match open_rings(table) {
        Ok(rings) => rings,
        Err(error) => error!("snowlink: {error}"),
    };
    remove_files_of_dropped_databases();
    let mut sources = sources(database, table, timeline, current, rings);
    // SAFETY: a bgworker has a slot in the process array.
    sources[0]
        .rings
        .set_writer_process(Some(unsafe { own_slot() }));
    let mut last_write = now_ms();
    let mut last_write_took_ms = 0;
    let mut last_visit = last_write;
    // After a write that had to wait for a lock or failed, the next comes at the interval, even
    // with a ring half full, so that a failing write is logged once an interval, as before.
    let mut may_write_early = true;
    // Set by SIGTERM (a server shutdown, pg_terminate_backend()) or the postmaster's death: one
    // last pass writes what was read.
    let mut stopping = false;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the writer rereads the configuration between transactions.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // Backends wait for these answers.
        let requests = sources[0].rings.pending_requests();
        if !requests.is_empty() {
            answer_requests(&sources[0].rings, &requests);
            last_visit = now_ms();
        }
        let read: u64 = sources.iter_mut().map(Source::read).sum();
        let now = now_ms();
        sources[0].rings.set_writer_seen_ms(now);
        if read > 0 {
            last_visit = now;
        }
        let pending = VISITS.with_borrow(VisitBuffer::has_pending) || UNSEEN_WAITING.get();
        let interval_ms =
            flush_interval_ms().max(WRITE_SHARE * last_write_took_ms.min(flush_interval_ms()));
        let ring_filling = may_write_early
            && sources
                .iter()
                .any(|source| source.most_unwritten() >= EARLY_WRITE_VISITS);
        if pending && (stopping || ring_filling || now - last_write >= interval_ms) {
            last_write = now;
            let written = write_visits(&sources, table);
            last_write_took_ms = now_ms() - now;
            may_write_early = matches!(written, Written::All);
            match written {
                Written::All => sources.drain(1..).for_each(|source| {
                    let path = source.path.clone();
                    drop(source);
                    remove_unused(&path);
                }),
                Written::Later => {}
                Written::ExtensionDropped => break,
            }
        }
        if stopping {
            break;
        }
        if !pending && now - last_visit >= IDLE_STOP_MS {
            // Backends that count a visit from now on ask for a new writer; one that came
            // before this is read by one more pass.
            sources[0].rings.set_writer_stopped();
            if sources[0].read() == 0 && sources[0].rings.pending_requests().is_empty() {
                break;
            }
            last_visit = now;
        }
        stopping = !BackgroundWorker::wait_latch(Some(Duration::from_millis(PASS_MS as u64)));
    }
    sources[0].rings.set_writer_process(None);
    sources[0].rings.set_writer_stopped();
}

/// The schema of the extension in the writer's database, read in the current transaction; None
/// when the extension is not (any more) there.
fn extension_schema() -> Option<pg_sys::Oid> {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'snowlink'",
    )
    .ok()
    .flatten()
}

/// Counts the visits of limited links that backends ask for, in a transaction of the writer's
/// own, and answers each once that transaction has committed.
fn answer_requests(rings: &VisitRings, requests: &[CountRequest]) {
    // SAFETY: the writer runs transactions one at a time, between passes.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let answers: Vec<CountAnswer> = match extension_schema() {
        Some(schema) => requests
            .iter()
            // SAFETY: in the transaction started above.
            .map(|request| unsafe { count_in_subtransaction(schema, request) })
            .collect(),
        None => vec![CountAnswer::NotLive; requests.len()],
    };
    // SAFETY: ends the transaction started above; an error here ends the writer, whose
    // successor counts the visits again, unanswered as they are.
    unsafe {
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
    }
    for (request, answer) in requests.iter().zip(answers) {
        rings.set_answer(request.ring, request.number, answer);
        set_latch_of(request.ring);
    }
}

/// Counts a visit of the limited link `link_id` (with `code`, or NULL for a code too long to pass)
/// in the current transaction, if it is still live: `_shortlink_count_visit(code, link_id)` of
/// sql/src/visits.sql. False when it is not.
fn count_visit_in_row(schema: pg_sys::Oid, code: Option<&str>, link_id: i64) -> bool {
    let function = extension::internal_function(
        schema,
        c"_shortlink_count_visit",
        &[pg_sys::TEXTOID, pg_sys::INT8OID],
    );
    // SAFETY: the function takes text (which may be NULL) and bigint, and returns boolean.
    unsafe {
        let result = extension::call_nullable(function, &[code.into_datum(), link_id.into_datum()]);
        result.is_some_and(|counted| bool::from_datum(counted, false).unwrap_or(false))
    }
}

/// Counts one requested visit in a subtransaction, so that a link whose row stays locked (the
/// function's lock_timeout, or COUNT_TIMEOUT_MS) or any other error affects that request only.
///
/// # Safety
/// Called in a transaction.
unsafe fn count_in_subtransaction(schema: pg_sys::Oid, request: &CountRequest) -> CountAnswer {
    let context = pg_sys::CurrentMemoryContext;
    let owner = pg_sys::CurrentResourceOwner;
    pg_sys::BeginInternalSubTransaction(std::ptr::null());
    arm_statement_timeout(COUNT_TIMEOUT_MS);
    let answer = PgTryBuilder::new(|| {
        if count_visit_in_row(schema, request.code.as_deref(), request.link_id) {
            CountAnswer::Counted
        } else {
            CountAnswer::NotLive
        }
    })
    .catch_when(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, |_| {
        CountAnswer::Locked
    })
    .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |_| {
        CountAnswer::Locked
    })
    .catch_others(|error| {
        log_write_failure(error);
        CountAnswer::Failed
    })
    .execute();
    disarm_statement_timeout();
    match answer {
        CountAnswer::Counted | CountAnswer::NotLive => pg_sys::ReleaseCurrentSubTransaction(),
        CountAnswer::Locked | CountAnswer::Failed => {
            pg_sys::RollbackAndReleaseCurrentSubTransaction()
        }
    }
    pg_sys::MemoryContextSwitchTo(context);
    pg_sys::CurrentResourceOwner = owner;
    answer
}

/// Removes the rings files of databases that no longer exist: their visits went with them.
fn remove_files_of_dropped_databases() {
    let databases = BackgroundWorker::transaction(|| {
        Spi::get_one::<Vec<i64>>("SELECT array_agg(oid::int8) FROM pg_catalog.pg_database")
    });
    let Ok(Some(databases)) = databases else {
        return;
    };
    for (path, name) in rings_files() {
        if !databases.contains(&i64::from(name.database)) {
            remove_unused(&path);
        }
    }
}

#[derive(Clone, Copy)]
enum Written {
    All,
    /// An error, or a lock on the table, stopped the write; the visits stay in the buffer for the
    /// next one.
    Later,
    ExtensionDropped,
}

// From utils/timeout.h, which pgrx does not bind: STATEMENT_TIMEOUT is the fourth TimeoutId in
// PostgreSQL 15 to 18. A background worker's statements get no statement_timeout of their own.
const STATEMENT_TIMEOUT: c_int = 3;
extern "C-unwind" {
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
    fn disable_timeout(id: c_int, keep_indicator: bool);
}

/// Cancels the writer's statement if it runs for longer than `delay_ms` from now.
///
/// # Safety
/// Called in the writer, and followed by disarm_statement_timeout().
unsafe fn arm_statement_timeout(delay_ms: c_int) {
    enable_timeout_after(STATEMENT_TIMEOUT, delay_ms);
}

/// Stops the timeout of arm_statement_timeout(); one that fired just as the statement ended
/// cancels nothing else.
///
/// # Safety
/// Called in the writer.
unsafe fn disarm_statement_timeout() {
    disable_timeout(STATEMENT_TIMEOUT, false);
    pg_sys::QueryCancelPending = 0;
}

/// Writes the visits read from `sources` into the shortlink_visits `table` in a transaction of the
/// writer's own, then frees their records. Another installation of the extension stops the writer,
/// and the visits read for the one that was dropped are not written.
fn write_visits(sources: &[Source], table: pg_sys::Oid) -> Written {
    // SAFETY: the writer runs transactions one at a time, between passes.
    let context = unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        arm_statement_timeout(WRITE_TIMEOUT_MS);
        pg_sys::CurrentMemoryContext
    };
    let written = PgTryBuilder::new(|| {
        let Some(schema) = extension_schema() else {
            return Written::ExtensionDropped;
        };
        // While another transaction locks the table, the visits wait in the rings, and the writer
        // goes on answering the requests of limited links.
        // SAFETY: in the transaction started above.
        match unsafe { lock_visits_table(schema) } {
            VisitsTable::Locked(locked) if locked == table => {}
            VisitsTable::Busy => return Written::Later,
            VisitsTable::Locked(_) | VisitsTable::Missing => return Written::ExtensionDropped,
        }
        // The write looks the links up: while shortlinks is locked too, the visits wait in the
        // rings, and the write's time is never a lock's.
        // SAFETY: in the transaction started above.
        if !unsafe { links_table_free(schema) } {
            return Written::Later;
        }
        flush_visits(schema);
        UNSEEN_WAITING.set(unseen_visits(schema) > 0);
        // SAFETY: in a transaction; one that wrote nothing gets its ID now.
        let transaction = unsafe { pg_sys::GetTopFullTransactionId() }.value;
        for source in sources {
            source.rings.note_release(transaction, &source.read_to);
        }
        Written::All
    })
    .catch_others(|error| {
        log_write_failure(error);
        Written::Later
    })
    .execute();
    // SAFETY: ends the transaction started above.
    unsafe {
        disarm_statement_timeout();
        pg_sys::MemoryContextSwitchTo(context);
        match written {
            Written::Later => {
                pg_sys::AbortCurrentTransaction();
                VISITS.with_borrow_mut(VisitBuffer::abort);
            }
            Written::All | Written::ExtensionDropped => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                VISITS.with_borrow_mut(VisitBuffer::commit);
            }
        }
    }
    if let Written::All = written {
        let mut released = 0;
        for source in sources {
            released += (0..source.rings.rings())
                .map(|ring| source.read_to[ring].wrapping_sub(source.rings.tail_of(ring)))
                .sum::<u64>();
            source.rings.release(&source.read_to);
        }
        sources[0].rings.add_written(released, now_ms());
    }
    written
}
