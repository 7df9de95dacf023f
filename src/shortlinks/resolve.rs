//! resolve(), the call behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. resolve() instead reads the link straight from the code
//! index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! counts the visit in the backend. Only links with max_visits, whose visits are counted under the
//! row lock, and the periodic write of counted visits run SQL: the PL/pgSQL functions, as the
//! extension's owner.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

use super::link_lookup::{self, Lookup};

/// Where this backend finds the extension: looked up at the first call of each resolve()
/// function, so that a new CREATE EXTENSION, in any schema, is found too.
#[derive(Clone, Copy)]
struct Extension {
    resolve_function: pg_sys::Oid,
    owner: pg_sys::Oid,
    schema: pg_sys::Oid,
}

thread_local! {
    static EXTENSION: Cell<Option<Extension>> = const { Cell::new(None) };
}

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    // SAFETY: PostgreSQL passes this call's valid fcinfo and flinfo.
    let resolve_function = unsafe { (*(*fcinfo).flinfo).fn_oid };
    let extension = EXTENSION
        .get()
        .filter(|extension| extension.resolve_function == resolve_function)
        .unwrap_or_else(|| find_extension(resolve_function));
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    match link_lookup::find(extension.schema, code, now) {
        Lookup::NotLive => None,
        Lookup::Live(link) if !link.limited => {
            if super::record_visit(link.id) {
                extension.run_as_owner(flush_visits);
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

fn flush_visits(client: &mut SpiClient, schema: &str) -> SpiResult<()> {
    client.update(
        &format!("SELECT {schema}._shortlinks_flush_visits()"),
        None,
        &[],
    )?;
    Ok(())
}

impl Extension {
    /// Runs `work` through SPI as the extension's owner, who may call its internal functions,
    /// with the quoted schema name.
    fn run_as_owner<T>(self, work: impl FnOnce(&mut SpiClient, &str) -> SpiResult<T>) -> T {
        // SAFETY: catalog lookup and quoting of a name; both return palloc'd C strings.
        let schema = unsafe {
            let name = pg_sys::get_namespace_name(self.schema);
            if name.is_null() {
                error!("resolve: the snowlink extension's schema no longer exists");
            }
            CStr::from_ptr(pg_sys::quote_identifier(name))
                .to_string_lossy()
                .into_owned()
        };
        let caller = Identity::switch_to(self.owner);
        let result = Spi::connect_mut(|client| work(client, &schema));
        caller.restore();
        result.unwrap_or_else(|error| error!("resolve: {error}"))
    }
}

/// The user a backend acts as. An ERROR needs no restore: aborting the (sub)transaction restores
/// the user it started with, as it does for SECURITY DEFINER functions.
struct Identity {
    user: pg_sys::Oid,
    security_context: i32,
}

impl Identity {
    fn switch_to(user: pg_sys::Oid) -> Identity {
        let mut caller = Identity {
            user: pg_sys::Oid::INVALID,
            security_context: 0,
        };
        // SAFETY: reads and sets the backend's current user, as fmgr_security_definer() does.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut caller.user, &mut caller.security_context);
            pg_sys::SetUserIdAndSecContext(
                user,
                caller.security_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
        }
        caller
    }

    fn restore(self) {
        // SAFETY: puts back what switch_to() read.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.security_context) };
    }
}

/// The extension of `resolve_function`: its schema, and the owner to run SQL as.
fn find_extension(resolve_function: pg_sys::Oid) -> Extension {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT (SELECT e.extowner FROM pg_catalog.pg_extension AS e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'snowlink')",
    )
    .unwrap_or_else(|error| error!("resolve: {error}"));
    let Some(owner) = owner else {
        error!("resolve: the snowlink extension is not installed in this database");
    };
    let extension = Extension {
        resolve_function,
        owner,
        // SAFETY: a syscache lookup of the function being called.
        schema: unsafe { pg_sys::get_func_namespace(resolve_function) },
    };
    EXTENSION.set(Some(extension));
    extension
}
