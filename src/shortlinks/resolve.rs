//! resolve(), the call behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. resolve() instead reads the link straight from the code
//! index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! counts the visit in the backend. Only links with max_visits, whose visits are counted under the
//! row lock, and the periodic write of counted visits run SQL: the PL/pgSQL functions, as the
//! extension's owner.

use pgrx::prelude::*;

use super::extension::{self, Extension};
use super::link_lookup::{self, Lookup};

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    // The extension's schema is this function's, looked up on every call (a syscache hit), so
    // that a new CREATE EXTENSION in another schema is followed.
    // SAFETY: PostgreSQL passes this call's valid fcinfo and flinfo.
    let schema = unsafe { pg_sys::get_func_namespace((*(*fcinfo).flinfo).fn_oid) };
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    match link_lookup::find(schema, code, now) {
        Lookup::NotLive => None,
        Lookup::Live(link) if !link.limited => {
            if super::record_visit(link.id) {
                installed_extension().run_as_owner(extension::flush_visits);
            }
            Some(link.url)
        }
        // Also when the table is not as expected: the PL/pgSQL path reads it with a query.
        Lookup::Live(_) | Lookup::Unavailable => {
            installed_extension().run_as_owner(|client, schema| {
                client
                    .update(
                        &format!("SELECT ({schema}._shortlink_visit($1)).url"),
                        Some(1),
                        &[code.into()],
                    )?
                    .first()
                    .get_one()
            })
        }
    }
}

/// The extension as it is now: its owner may have changed (REASSIGN OWNED) since the last call.
fn installed_extension() -> Extension {
    Extension::find().unwrap_or_else(|| {
        error!("resolve: the snowlink extension is not installed in this database")
    })
}
