//! The visit writer: one background worker per database that reads the database's visit rings
//! (rings.rs) every few tens of milliseconds and writes what it read into shortlink_visits every
//! `snowlink.visit_flush_interval_ms`, in a transaction of its own, after which it frees the
//! records. So a visit shows within about one interval whatever the backend that counted it does
//! next, and a crash loses none: the records wait in the rings for the next writer.
//!
//! Nothing starts it with the server: the first backend that counts a visit while no writer runs
//! asks the postmaster for one (a dynamic background worker, which needs no
//! `shared_preload_libraries`). The postmaster starts it again after a crash; it stops by itself
//! after a few seconds without visits, so that it holds no worker slot and no connection to an
//! idle database (DROP DATABASE waits a few seconds for connections to go).

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{PgTryBuilder, Spi};

use super::buffer::VisitBuffer;
use super::rings::VisitRings;
use super::{flush_interval_ms, log_write_failure, VISITS};
use crate::shortlinks::extension;
use crate::snowflake::highwater::current_boot;
use crate::snowflake::registry::LOCK_CLASS;

/// The writer's name in pg_stat_activity (backend_type) and in the server log.
const WRITER_TYPE: &str = "snowlink visit writer";
/// How often the writer empties the rings, in milliseconds.
const PASS_MS: i64 = 50;
/// A writer that has not emptied the rings for this long is taken to be gone: backends ask for
/// another (which stops at once if the first one still runs). Also how long a new writer waits
/// for the previous one to leave.
const WRITER_GONE_MS: i64 = 5_000;
/// The writer stops after this long without a visit.
const IDLE_STOP_MS: i64 = 3_000;
/// `objsubid` of the writer's lock in pg_locks (the node claims use 1), one per database.
const WRITER_LOCK_KIND: u16 = 2;
/// The directory of the rings files, in the data directory.
const RINGS_DIRECTORY: &str = "snowlink_visits";

/// The rings file of `database` for the current server: one per database, timeline and number
/// of backend slots. A promoted standby or a restored backup starts another timeline, and must not
/// write again the visits that its origin's rings held when the data directory was copied.
pub fn rings_path(database: pg_sys::Oid, timeline: u32, rings: usize) -> PathBuf {
    rings_directory().join(format!("{}_{timeline}_{rings}", database.to_u32()))
}

fn rings_directory() -> PathBuf {
    // SAFETY: DataDir is set before any backend runs SQL and never changes.
    let data_dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(data_dir.to_string_lossy().as_ref()).join(RINGS_DIRECTORY)
}

/// Opens the rings file of this backend's database, making it if need be.
pub fn open_rings() -> Result<VisitRings, String> {
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
    let path = rings_path(database, timeline, rings);
    VisitRings::open(&path, rings, boot).map_err(|error| {
        format!(
            "could not open visit rings file \"{}\": {error}",
            path.display()
        )
    })
}

/// Called by a backend that has just put a visit into `rings`: asks for a writer when none has
/// shown for a while (one backend asks, not all). A full worker table is reported, not raised:
/// the visits wait in the rings, and backends write their own once a ring is full.
pub fn ensure_writer(rings: &VisitRings, now_ms: i64) {
    let seen_ms = rings.writer_seen_ms();
    // SAFETY: set once when the server starts.
    let server_started_ms = unsafe { pg_sys::PgStartTime } / 1000;
    // A writer seen, or asked for, before the server started is gone, however recently.
    let running = seen_ms >= server_started_ms && now_ms - seen_ms <= WRITER_GONE_MS;
    let requested_before_ms = server_started_ms.max(now_ms - WRITER_GONE_MS);
    if running || !rings.claim_writer_request(now_ms, requested_before_ms) {
        return;
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
    if started.is_err() {
        warning!(
            "snowlink: no visit writer could start; counted visits wait until one can \
             (max_worker_processes is reached)"
        );
    }
}

/// The writer's lock: held for its life, so that a database has one writer at a time.
fn writer_lock(database: pg_sys::Oid) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: database.to_u32(),
        locktag_field2: LOCK_CLASS,
        locktag_field3: 0,
        locktag_field4: WRITER_LOCK_KIND,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
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

/// The rings files of this database: the server's own first, then those left by an earlier
/// server of this timeline with another number of backend slots, which are removed once their
/// visits are written. Files of other timelines are removed at once.
fn sources(
    database: pg_sys::Oid,
    timeline: u32,
    current: PathBuf,
    rings: VisitRings,
) -> Vec<Source> {
    let mut sources = vec![Source::new(current.clone(), rings)];
    let Ok(entries) = std::fs::read_dir(rings_directory()) else {
        return sources;
    };
    for path in entries.filter_map(|entry| entry.ok().map(|entry| entry.path())) {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let fields: Vec<&str> = name.split('_').collect();
        let [file_database, file_timeline, file_rings] = fields[..] else {
            continue;
        };
        if path == current || file_database != database.to_u32().to_string() {
            continue;
        }
        if file_timeline != timeline.to_string() {
            remove(&path);
        } else if let Some(rings) = file_rings.parse().ok().and_then(|rings| {
            let boot = current_boot().ok()?;
            VisitRings::open(&path, rings, boot).ok()
        }) {
            sources.push(Source::new(path, rings));
        }
    }
    sources
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        log!(
            "snowlink: could not remove visit rings file \"{}\": {error}",
            path.display()
        );
    }
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
    let current = rings_path(database, timeline, slots);
    let rings = match open_rings() {
        Ok(rings) => rings,
        Err(error) => error!("snowlink: {error}"),
    };
    let mut sources = sources(database, timeline, current, rings);
    let mut last_write = now_ms();
    let mut last_visit = last_write;
    // Set by SIGTERM (a server shutdown, pg_terminate_backend()) or the postmaster's death: one
    // last pass writes what was read.
    let mut stopping = false;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the writer rereads the configuration between transactions.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let read: u64 = sources.iter_mut().map(Source::read).sum();
        let now = now_ms();
        sources[0].rings.set_writer_seen_ms(now);
        if read > 0 {
            last_visit = now;
        }
        let pending = VISITS.with_borrow(VisitBuffer::has_pending);
        if pending && (stopping || now - last_write >= flush_interval_ms()) {
            last_write = now;
            match write_visits(&sources) {
                Written::All => sources.drain(1..).for_each(|source| remove(&source.path)),
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
            if sources[0].read() == 0 {
                break;
            }
            last_visit = now;
        }
        stopping = !BackgroundWorker::wait_latch(Some(Duration::from_millis(PASS_MS as u64)));
    }
    sources[0].rings.set_writer_stopped();
}

#[derive(Clone, Copy)]
enum Written {
    All,
    /// An error stopped the write; the visits stay in the buffer for the next one.
    Later,
    ExtensionDropped,
}

/// Writes the visits read from `sources` in a transaction of the writer's own, then frees their
/// records.
fn write_visits(sources: &[Source]) -> Written {
    // SAFETY: the writer runs transactions one at a time, between passes.
    let context = unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        pg_sys::CurrentMemoryContext
    };
    let written = PgTryBuilder::new(|| {
        let schema = Spi::get_one::<pg_sys::Oid>(
            "SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'snowlink'",
        )
        .ok()
        .flatten();
        let Some(schema) = schema else {
            return Written::ExtensionDropped;
        };
        extension::flush_visits(schema);
        // SAFETY: the transaction has written, so it has an ID.
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
        for source in sources {
            source.rings.release(&source.read_to);
        }
    }
    written
}
