//! snowlink_visit_writers: each database's visit writer as its rings file shows it, for whoever
//! watches the server (sql/src/monitoring.sql).

use std::collections::BTreeMap;
use std::ffi::CStr;

use pgrx::prelude::*;

use super::rings::{VisitRings, RING_CAPACITY};
use super::timestamp;
use super::writer::{self, WRITER_GONE_MS};
use crate::data_file::current_boot;

/// One database's writer: what one row shows.
#[derive(Default)]
struct WriterState {
    writer_process: Option<usize>,
    seen_ms: i64,
    wrote_ms: i64,
    pending: u64,
    written: u64,
    dropped: u64,
    rings: usize,
}

/// Each database of the server whose backends counted visits since the server's boot, from its
/// rings files of the current timeline; a database without such a file has no row.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_safe, schema = "snowlink_internal")]
fn _visit_writers() -> TableIterator<
    'static,
    (
        name!(database, Option<String>),
        name!(writer_pid, Option<i32>),
        name!(running, bool),
        name!(last_write_at, Option<TimestampWithTimeZone>),
        name!(pending_visits, i64),
        name!(written_visits, i64),
        name!(dropped_visits, i64),
        name!(rings, i32),
        name!(ring_capacity, i64),
    ),
> {
    // SAFETY: plain reads of backend state.
    let (timeline, slots, now_ms) = unsafe {
        (
            (!pg_sys::RecoveryInProgress()).then(|| pg_sys::GetWALInsertionTimeLine()),
            pg_sys::MaxBackends as usize,
            pg_sys::GetCurrentTimestamp() / 1000,
        )
    };
    let boot = current_boot().ok();
    let mut databases: BTreeMap<u32, WriterState> = BTreeMap::new();
    for (path, name) in writer::rings_files() {
        if Some(name.timeline) != timeline {
            continue;
        }
        let Some(rings) = boot
            .and_then(|boot| VisitRings::open_existing(&path, name.rings, boot).ok())
            .flatten()
        else {
            continue;
        };
        let state = databases.entry(name.database).or_default();
        state.pending += rings.pending();
        // The writer's own file is the one of the server's number of backend slots; the others
        // were left by an earlier server and hold only visits.
        if name.rings == slots {
            state.writer_process = rings.writer_process();
            state.seen_ms = rings.writer_seen_ms();
            state.wrote_ms = rings.writer_wrote_ms();
            state.written = rings.written();
            state.dropped = rings.dropped();
            state.rings = name.rings;
        }
    }
    let rows: Vec<_> = databases
        .into_iter()
        .map(|(database, state)| {
            let running = state.writer_process.is_some()
                && (now_ms - WRITER_GONE_MS..=now_ms).contains(&state.seen_ms);
            let pid = state
                .writer_process
                .filter(|_| running)
                .and_then(process_id);
            (
                database_name(database),
                pid,
                running,
                (state.wrote_ms > 0)
                    .then(|| timestamp(state.wrote_ms * 1000).ok())
                    .flatten(),
                i64::try_from(state.pending).unwrap_or(i64::MAX),
                i64::try_from(state.written).unwrap_or(i64::MAX),
                i64::try_from(state.dropped).unwrap_or(i64::MAX),
                i32::try_from(state.rings).unwrap_or(i32::MAX),
                RING_CAPACITY as i64,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// The process ID of the process in `slot` of PostgreSQL's process array, if one is there.
fn process_id(slot: usize) -> Option<i32> {
    // SAFETY: the process array lives as long as the server; a slot's pid is read as any
    // monitoring view reads it, without a lock (it may change at once after).
    unsafe {
        let global = &*pg_sys::ProcGlobal;
        if slot >= global.allProcCount as usize {
            return None;
        }
        let pid = (*global.allProcs.add(slot)).pid;
        (pid != 0).then_some(pid)
    }
}

/// The name of a database, or None for one dropped since.
fn database_name(database: u32) -> Option<String> {
    // SAFETY: get_database_name returns a palloc'd copy, or NULL.
    unsafe {
        let name = pg_sys::get_database_name(pg_sys::Oid::from(database));
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}
