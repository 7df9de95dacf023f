//! Visits of links with max_visits. Such a link is served at most max_visits times whatever the
//! caller's transaction does (rolls back, is READ ONLY, is a PostgREST GET): before resolve()
//! returns the link, the database's visit writer counts the visit in a transaction of its own and
//! commits it. A visit counted for a caller whose statement then fails is not given back, as
//! nextval() is not; a link is never served more often than its visits are counted.
//!
//! The backend writes its request into its block of the rings file (rings.rs), wakes the writer
//! through the writer's latch, and sleeps on its own latch until the answer comes, ready for a
//! cancel or statement_timeout at every wake-up.

use std::time::{Duration, Instant};

use pgrx::pg_sys;

use super::rings::CountAnswer;
use super::{set_latch_of, visits_table, with_rings, writer};
use crate::error::{SqlError, SqlState};

/// How long a backend waits for the writer's answer before it gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting backend wakes to check that a writer runs and to wake it again.
const RECHECK_MS: i64 = 10;

/// Counts a visit of the limited link `link_id` of the extension in `schema`, whose code is `code`,
/// through the visit writer;
/// true once it is counted and committed, false when the link is no longer live (another visit
/// took its last one, say).
pub fn count_visit(schema: pg_sys::Oid, link_id: i64, code: &str) -> Result<bool, SqlError> {
    // SAFETY: a plain read of backend state.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return Err(SqlError::new(
            SqlState::ReadOnlyTransaction,
            format!(
                "link \"{code}\" has max_visits, so its visits can only be counted on the primary"
            ),
        ));
    }
    let cannot_count = |reason: String| {
        SqlError::new(
            SqlState::IoError,
            format!("could not count a visit of link \"{code}\": {reason}"),
        )
    };
    // SAFETY: in the transaction of the call that counts the visit.
    let table = unsafe { visits_table(schema) }
        .ok_or_else(|| cannot_count("the extension is being dropped".into()))?;
    let answer = with_rings(table, |backend_rings, ring| -> Result<CountAnswer, SqlError> {
        let rings = &backend_rings.rings;
        let number = rings.request_count(ring, link_id, code);
        let started = Instant::now();
        loop {
            // SAFETY: reads the clock.
            let now_ms = unsafe { pg_sys::GetCurrentTimestamp() } / 1000;
            if !writer::ensure_writer(rings, now_ms) {
                return Err(SqlError::new(
                    SqlState::ConfigurationLimitExceeded,
                    format!(
                        "no visit writer could start to count a visit of link \"{code}\", which has max_visits"
                    ),
                )
                .with_hint(
                    "Raise max_worker_processes: a database that counts visits needs a background worker while it does.",
                ));
            }
            if let Some(writer) = rings.writer_process() {
                set_latch_of(writer);
            }
            if let Some(answer) = rings.answer(ring, number) {
                return Ok(answer);
            }
            if started.elapsed() > ANSWER_TIMEOUT {
                return Err(SqlError::new(
                    SqlState::SystemError,
                    format!(
                        "the visit writer did not count the visit of link \"{code}\" within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ),
                ));
            }
            // SAFETY: waits on this backend's own latch; an interrupt (cancel, timeout,
            // termination) raises its error here, and the request is given up.
            unsafe {
                pg_sys::WaitLatch(
                    pg_sys::MyLatch,
                    (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH)
                        as i32,
                    RECHECK_MS as _,
                    pg_sys::PG_WAIT_EXTENSION,
                );
                pg_sys::ResetLatch(pg_sys::MyLatch);
            }
            pg_sys::check_for_interrupts!();
        }
    })
    .map_err(cannot_count)??;
    match answer {
        CountAnswer::Counted => Ok(true),
        CountAnswer::NotLive => Ok(false),
        CountAnswer::Locked => Err(SqlError::new(
            SqlState::LockNotAvailable,
            format!(
                "could not count a visit of link \"{code}\": another transaction locks its row or the table"
            ),
        )
        .with_hint(
            "A transaction that changes the link, or an ALTER TABLE or ALTER EXTENSION UPDATE that waits for this one, must end first; if it is this session's own, resolve the link outside it.",
        )),
        CountAnswer::Failed => Err(SqlError::new(
            SqlState::InternalError,
            format!("the visit writer could not count a visit of link \"{code}\""),
        )
        .with_hint("The server log says why.")),
    }
}
