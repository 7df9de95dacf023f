//! The extension's SQL functions that Rust code calls: the narrow SECURITY DEFINER functions of
//! snowlink_internal (sql/internal_schema.sql) that find a live link with a query, count a visit
//! of a limited link, and write the visits a process counted or gathered (a backend, or the visit
//! writer). They are called through the function manager, so PostgreSQL switches to the
//! extension's owner and pins their search_path as for any SECURITY DEFINER call; no Rust code
//! changes the user id, and no query text is parsed. They need no grant: only resolve(),
//! shortlink_target() and the visit writes of src/visits/ call them, on behalf of a caller who
//! may call resolve().
//!
//! A database still at 0.1.0 has its functions in the extension's schema, where its
//! _shortlink_visit() finds the live link and counts its visit in one call.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::prelude::*;

use super::link_lookup::LiveLink;

/// The schema of the extension's internal functions, from sql/internal_schema.sql.
const INTERNAL_SCHEMA: &CStr = c"snowlink_internal";

thread_local! {
    /// snowlink_internal, once found to belong to the extension, and the extension's schema.
    static INTERNAL: Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// The extension's schema, from a call of one of its functions that take the call's fcinfo
/// (resolve(), shortlink_target(), and in a database at 0.1.0 _shortlink_record_visit()): the
/// function's own schema, or the extension's for the second declaration of shortlink_target() in
/// snowlink_internal.
pub fn schema_of(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Oid {
    // SAFETY: PostgreSQL passes the call's valid fcinfo and flinfo.
    let schema = unsafe { pg_sys::get_func_namespace((*(*fcinfo).flinfo).fn_oid) };
    match (internal_schema(), INTERNAL.get()) {
        (Some(internal), Some((_, extension_schema))) if internal == schema => extension_schema,
        _ => schema,
    }
}

/// snowlink_internal if it exists and belongs to the extension; None in a database at 0.1.0.
/// Checked once per backend, and again when a schema of that name is made anew (the extension
/// dropped and created again), so that no schema that another role made stands in for it.
fn internal_schema() -> Option<pg_sys::Oid> {
    // SAFETY: catalog lookups by name and OID, in a transaction.
    unsafe {
        let schema = pg_sys::get_namespace_oid(INTERNAL_SCHEMA.as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return None;
        }
        if INTERNAL
            .get()
            .is_some_and(|(internal, _)| internal == schema)
        {
            return Some(schema);
        }
        let extension = pg_sys::get_extension_oid(c"snowlink".as_ptr(), true);
        let owner = pg_sys::getExtensionOfObject(pg_sys::NamespaceRelationId, schema);
        if extension == pg_sys::InvalidOid || owner != extension {
            return None;
        }
        // A read-only query: on a hot standby, or in a READ ONLY transaction, no transaction ID.
        let extension_schema = Spi::connect(|client| {
            client
                .select(
                    "SELECT extnamespace FROM pg_catalog.pg_extension WHERE oid = $1",
                    Some(1),
                    &[extension.into()],
                )?
                .first()
                .get_one::<pg_sys::Oid>()
        })
        .ok()
        .flatten()?;
        INTERNAL.set(Some((schema, extension_schema)));
        Some(schema)
    }
}

/// Whether the extension's SQL is that of 0.1.0, which has no internal schema.
pub fn is_release_0_1_0() -> bool {
    internal_schema().is_none()
}

/// Writes the visits this process holds: `_shortlinks_flush_visits()`.
pub fn flush_visits(schema: pg_sys::Oid) {
    let function = function_oid(
        internal_schema().unwrap_or(schema),
        c"_shortlinks_flush_visits",
        &[],
    );
    // SAFETY: a function of the extension that takes no argument and returns void.
    unsafe { call(function, &[]) };
}

/// A live link found by a query.
pub enum QueriedLink {
    Live(LiveLink),
    NotLive,
    /// Found, and its visit counted, by the SQL of 0.1.0.
    Counted(LiveLink),
}

/// The live link of `code` found by a query, as of the caller's snapshot:
/// `_shortlink_live(code)`; in a database at 0.1.0, `_shortlink_visit(code)`, which also counts
/// the visit.
pub fn query_live_link(schema: pg_sys::Oid, code: &str) -> QueriedLink {
    let (function, counts) = match internal_schema() {
        Some(internal) => (
            function_oid(internal, c"_shortlink_live", &[pg_sys::TEXTOID]),
            false,
        ),
        None => (
            function_oid(schema, c"_shortlink_visit", &[pg_sys::TEXTOID]),
            true,
        ),
    };
    let argument = code.into_datum().expect("a &str is never NULL");
    // SAFETY: the function takes text and returns a shortlinks row, or NULL when the code does not
    // resolve.
    let link = unsafe { call(function, &[argument]).and_then(|row| read_link(row)) };
    match link {
        None => QueriedLink::NotLive,
        Some(link) if counts => QueriedLink::Counted(link),
        Some(link) => QueriedLink::Live(link),
    }
}

/// Counts a visit of the limited link `link_id` (with `code`, or NULL for a code too long to pass)
/// in the current transaction, if it is still live: `_shortlink_count_visit(code, link_id)`.
/// False when it is not.
pub fn count_limited_visit(schema: pg_sys::Oid, code: Option<&str>, link_id: i64) -> bool {
    let function = function_oid(
        internal_schema().unwrap_or(schema),
        c"_shortlink_count_visit",
        &[pg_sys::TEXTOID, pg_sys::INT8OID],
    );
    let code = code.into_datum();
    // SAFETY: the function takes text (which may be NULL) and bigint, and returns boolean.
    unsafe {
        let result = call_nullable(function, &[code, link_id.into_datum()]);
        result.is_some_and(|counted| bool::from_datum(counted, false).unwrap_or(false))
    }
}

/// The columns of a shortlinks row that resolve() needs.
///
/// # Safety
/// `row` is a shortlinks row in the current memory context; the columns are read by name, with
/// the types that link_lookup.rs checks the table for.
unsafe fn read_link(row: pg_sys::Datum) -> Option<LiveLink> {
    // PL/pgSQL may return the row as an expanded record: flatten it into a tuple.
    let tuple = pg_sys::pg_detoast_datum(row.cast_mut_ptr()).cast();
    let column = |name: &CStr| {
        let mut is_null = false;
        let value = pg_sys::GetAttributeByName(tuple, name.as_ptr(), &mut is_null);
        (value, is_null)
    };
    let value = |name: &CStr| {
        let (value, is_null) = column(name);
        i64::from_datum(value, is_null)
    };
    let (url, url_is_null) = column(c"url");
    let (status, status_is_null) = column(c"redirect_status");
    Some(LiveLink {
        id: value(c"id")?,
        url: String::from_datum(url, url_is_null)?,
        redirect_status: i16::from_datum(status, status_is_null)?,
        expires_at: value(c"expires_at"),
        limited: value(c"max_visits").is_some(),
    })
}

/// Calls `function` with `arguments` (none NULL) through the function manager.
///
/// # Safety
/// As for call_nullable().
unsafe fn call(function: pg_sys::Oid, arguments: &[pg_sys::Datum]) -> Option<pg_sys::Datum> {
    let arguments: Vec<Option<pg_sys::Datum>> = arguments.iter().copied().map(Some).collect();
    call_nullable(function, &arguments)
}

/// Calls `function` with `arguments` (None: NULL) through the function manager, which runs a
/// SECURITY DEFINER function as its owner; None for a NULL result, which the function manager's
/// own helpers refuse.
///
/// # Safety
/// The function takes exactly these arguments, of its argument types.
unsafe fn call_nullable(
    function: pg_sys::Oid,
    arguments: &[Option<pg_sys::Datum>],
) -> Option<pg_sys::Datum> {
    let mut lookup = pg_sys::FmgrInfo::default();
    pg_sys::fmgr_info(function, &mut lookup);
    let fcinfo = pg_sys::palloc0(
        std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + std::mem::size_of::<pg_sys::NullableDatum>() * arguments.len(),
    )
    .cast::<pg_sys::FunctionCallInfoBaseData>();
    (*fcinfo).flinfo = &mut lookup;
    (*fcinfo).fncollation = pg_sys::InvalidOid;
    (*fcinfo).nargs = arguments.len() as i16;
    for (slot, value) in (*fcinfo)
        .args
        .as_mut_slice(arguments.len())
        .iter_mut()
        .zip(arguments)
    {
        *slot = pg_sys::NullableDatum {
            value: value.unwrap_or(pg_sys::Datum::from(0)),
            isnull: value.is_none(),
        };
    }
    let function_pointer = lookup.fn_addr.expect("fmgr_info sets fn_addr");
    let result = pg_sys::ffi::pg_guard_ffi_boundary(|| function_pointer(fcinfo));
    let is_null = (*fcinfo).isnull;
    pg_sys::pfree(fcinfo.cast());
    (!is_null).then_some(result)
}

/// The OID of the extension's function `name(argument_types)` in `schema`.
fn function_oid(schema: pg_sys::Oid, name: &CStr, argument_types: &[pg_sys::Oid]) -> pg_sys::Oid {
    // SAFETY: a syscache lookup with keys of the types the cache expects.
    let oid = unsafe {
        let arguments =
            pg_sys::buildoidvector(argument_types.as_ptr(), argument_types.len() as i32);
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::PROCNAMEARGSNSP as i32,
            pg_sys::Anum_pg_proc_oid as pg_sys::AttrNumber,
            pg_sys::Datum::from(name.as_ptr()),
            pg_sys::Datum::from(arguments),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0),
        )
    };
    if oid == pg_sys::InvalidOid {
        error!(
            "snowlink: the extension's function {}() is missing",
            name.to_string_lossy()
        );
    }
    oid
}
