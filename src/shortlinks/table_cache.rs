//! What shorten() and the row-level security of shortlinks read from the extension's small
//! settings tables on every call (the reserved codes, the code key), kept in backend memory until
//! the table changes. Reading such a table cost each call about as much as its INSERT: the lock,
//! the plan's check and an executor for one row, in every transaction.
//!
//! A change to the rows reaches every backend as PostgreSQL's own relcache invalidation of the
//! table: a statement trigger on each table (`_shortlink_table_changed()`, sql/src/tables.sql)
//! sends one, so that each backend forgets its copy at the commit, and the changing backend at
//! once (and again if its transaction rolls back). A new transaction takes in every invalidation
//! committed before it, as it does for the catalog; a READ COMMITTED transaction that reads no new
//! table may go on with the copy it had. On Citus, whose reference tables take no trigger, the
//! rows are read at every call.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::prelude::*;

use super::link_lookup;

/// The rows of one table, as `T`, for the extension's schema in use.
pub struct TableCache<T> {
    table: &'static CStr,
    kept: RefCell<Option<(pg_sys::Oid, Rc<T>)>>,
    /// Counts the invalidations, so that a copy read while one arrives is not kept.
    invalidations: Cell<u64>,
    watching: Cell<bool>,
}

impl<T> TableCache<T> {
    pub const fn new(table: &'static CStr) -> Self {
        TableCache {
            table,
            kept: RefCell::new(None),
            invalidations: Cell::new(0),
            watching: Cell::new(false),
        }
    }

    /// The rows of the table of the extension in `schema`: kept, or read with `load` and kept.
    ///
    /// The cache must be a thread_local of the backend's one thread, which lives as long as the
    /// backend: its address is handed to PostgreSQL's invalidation callbacks.
    pub fn get(&self, schema: pg_sys::Oid, load: impl FnOnce() -> T) -> Rc<T> {
        if !self.watching.replace(true) {
            // SAFETY: registers a callback that only clears this cache, which outlives it.
            unsafe {
                pg_sys::CacheRegisterRelcacheCallback(
                    Some(forget_rows::<T>),
                    pg_sys::Datum::from(self as *const Self as usize),
                )
            };
        }
        // SAFETY: a catalog lookup by name, in a transaction.
        let table = unsafe { pg_sys::get_relname_relid(self.table.as_ptr(), schema) };
        if table == pg_sys::InvalidOid {
            error!(
                "snowlink: the extension's table {} is missing",
                self.table.to_string_lossy()
            );
        }
        let kept = self
            .kept
            .borrow()
            .as_ref()
            .filter(|(kept_table, _)| *kept_table == table)
            .map(|(_, rows)| Rc::clone(rows));
        if let Some(rows) = kept {
            return rows;
        }
        let invalidations = self.invalidations.get();
        let rows = Rc::new(load());
        // A table that Citus manages has no trigger (shortlinks_distribute()): read it every time.
        if self.invalidations.get() == invalidations && !link_lookup::is_citus_table(table) {
            *self.kept.borrow_mut() = Some((table, Rc::clone(&rows)));
        }
        rows
    }

    fn forget(&self, relid: pg_sys::Oid) {
        let affected = self.kept.try_borrow().map_or(true, |kept| {
            kept.as_ref()
                .is_none_or(|(table, _)| relid == pg_sys::InvalidOid || relid == *table)
        });
        if affected {
            self.invalidations.set(self.invalidations.get() + 1);
            if let Ok(mut kept) = self.kept.try_borrow_mut() {
                *kept = None;
            }
        }
    }
}

/// Relcache invalidation callback; relid is InvalidOid when every relation is invalidated.
///
/// # Safety
/// `cache` is the address of a TableCache<T> that lives as long as the backend.
#[pg_guard]
unsafe extern "C-unwind" fn forget_rows<T>(cache: pg_sys::Datum, relid: pg_sys::Oid) {
    let cache = &*(cache.value() as *const TableCache<T>);
    cache.forget(relid);
}

/// The function info record of _shortlink_table_changed_wrapper (PG_FUNCTION_INFO_V1).
#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo__shortlink_table_changed_wrapper() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `_shortlink_table_changed()`, the statement trigger of the tables that backends keep in
/// memory: invalidates the table's relcache entry, which every backend then takes in.
///
/// # Safety
/// Called by PostgreSQL's function manager.
#[unsafe(no_mangle)]
#[doc(hidden)]
#[pg_guard]
pub unsafe extern "C-unwind" fn _shortlink_table_changed_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "_shortlink_table_changed() can only be called as a trigger"
        );
    }
    let trigger = context.cast::<pg_sys::TriggerData>();
    pg_sys::CacheInvalidateRelcacheByRelid((*(*trigger).tg_relation).rd_id);
    // The result of an AFTER trigger is ignored, but must not be NULL.
    pg_sys::Datum::from(0)
}
