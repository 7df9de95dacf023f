//! resolve(), the call behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. resolve() instead reads the link straight from the code
//! index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! counts the visit in the backend. Only links with max_visits, whose visits are counted under the
//! row lock, and the periodic write of counted visits run SQL: the PL/pgSQL functions, as the
//! extension's owner.

use std::cell::Cell;

use pgrx::prelude::*;

use super::extension::{self, Extension};
use super::link_lookup::{self, Lookup};

thread_local! {
    /// The extension, found at the first call of each resolve() function: a new CREATE
    /// EXTENSION, in any schema, makes a new function.
    static EXTENSION_OF_RESOLVE: Cell<Option<(pg_sys::Oid, Extension)>> = const { Cell::new(None) };
}

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    // SAFETY: PostgreSQL passes this call's valid fcinfo and flinfo.
    let resolve_function = unsafe { (*(*fcinfo).flinfo).fn_oid };
    let extension = match EXTENSION_OF_RESOLVE.get() {
        Some((function, extension)) if function == resolve_function => extension,
        _ => {
            let Some(extension) = Extension::find() else {
                error!("resolve: the snowlink extension is not installed in this database");
            };
            EXTENSION_OF_RESOLVE.set(Some((resolve_function, extension)));
            extension
        }
    };
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    match link_lookup::find(extension.schema, code, now) {
        Lookup::NotLive => None,
        Lookup::Live(link) if !link.limited => {
            if super::record_visit(link.id) {
                extension.run_as_owner(extension::flush_visits);
            }
            Some(link.url)
        }
        // Also when the table is not as expected: the PL/pgSQL path reads it with a query.
        Lookup::Live(_) | Lookup::Unavailable => extension.run_as_owner(|client, schema| {
            client
                .update(
                    &format!("SELECT ({schema}._shortlink_visit($1)).url"),
                    Some(1),
                    &[code.into()],
                )?
                .first()
                .get_one()
        }),
    }
}
