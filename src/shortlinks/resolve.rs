//! resolve(), the call behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. resolve() instead reads the link straight from the code
//! index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! hands the visit to the visit writer (src/visits/). Only links with max_visits, whose visits are
//! counted under the row lock, tables that Citus manages, and the writing of visits run SQL: the
//! narrow SECURITY DEFINER functions of extension.rs.

use pgrx::prelude::*;

use super::extension;
use super::link_lookup::{self, Lookup};
use crate::visits;

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    // The extension's schema is this function's, looked up on every call (a syscache hit), so
    // that a new CREATE EXTENSION in another schema is followed.
    let schema = extension::schema_of(fcinfo);
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    match link_lookup::find(schema, code, now) {
        Lookup::NotLive => None,
        Lookup::Live(link) if !link.limited => {
            visits::record_visit(schema, link.id);
            Some(link.url)
        }
        // Also when the table is not as expected: the PL/pgSQL path reads it with a query.
        Lookup::Live(_) | Lookup::Unavailable => extension::visit(schema, code),
    }
}
