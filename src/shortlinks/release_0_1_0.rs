//! What the SQL of snowlink 0.1.0 calls, for a database that has not run ALTER EXTENSION UPDATE
//! since. CREATE EXTENSION snowlink VERSION '0.1.0', the start of the update path, needs every C
//! function of that SQL to exist, so all of this stays for as long as sql/snowlink--0.1.0.sql is
//! shipped; the release that stops shipping it (and updating from 0.1.0) removes this file and
//! the calls to it, each marked "0.1.0".
//!
//! 0.1.0's SQL has no snowlink_internal: its functions are in the extension's schema, and its
//! `_shortlink_visit(code)` finds a live link and counts its visit in one call.

use pgrx::prelude::*;

use super::link_lookup::LiveLink;
use super::link_query;
use crate::error::{OrRaise, SqlError};
use crate::{extension, visits};

/// Whether the extension's SQL is that of 0.1.0, which has no internal schema.
pub fn is_release_0_1_0() -> bool {
    extension::internal_schema().is_none()
}

/// The live link of `code`, found and its visit counted by 0.1.0's `_shortlink_visit(code)`.
pub fn query_and_count_live_link(schema: pg_sys::Oid, code: &str) -> Option<LiveLink> {
    let function = extension::function_oid(schema, c"_shortlink_visit", &[pg_sys::TEXTOID]);
    // SAFETY: 0.1.0's _shortlink_visit() takes text and returns a shortlinks row, or NULL.
    unsafe { link_query::call_for_link(function, code, &[]) }
}

/// Counts a visit of `link_id`, for the writer or this backend to write, as resolve() of later
/// versions does itself. The result, always false, is what 0.1.0's SQL expects: when it was true,
/// that SQL wrote the visits at once, in the caller's transaction.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _shortlink_record_visit(link_id: i64, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    visits::record_visit(extension::schema_of(fcinfo), link_id);
    false
}

/// What `_shortlink_take_daily_visits()` takes, one row per link rather than per link and day.
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
    let mut per_link: Vec<(i64, visits::buffer::Visits)> = Vec::new();
    for (key, visits) in visits::take_visits() {
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
                visits::timestamp(visits.first_at)?,
                visits::timestamp(visits.last_at)?,
            ))
        })
        .collect();
    TableIterator::new(rows.or_raise("_shortlink_take_visits"))
}
