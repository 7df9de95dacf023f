//! Calls from Rust into the extension's SQL functions: the narrow SECURITY DEFINER functions of
//! snowlink_internal (sql/src/internal_schema.sql) that find a live link with a query, count a
//! visit of a limited link, and write the visits a process counted or gathered (a backend, or the
//! visit writer). They are called through the function manager, so PostgreSQL switches to the
//! extension's owner and pins their search_path as for any SECURITY DEFINER call; no Rust code
//! changes the user id, and no query text is parsed. They need no grant: only resolve(),
//! shortlink_target() and the visit writes of src/visits/ call them, on behalf of a caller who
//! may call resolve().
//!
//! A database still at 0.1.0 has its functions in the extension's schema
//! (src/shortlinks/release_0_1_0.rs).

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::prelude::*;

/// The schema of the extension's internal functions, from sql/src/internal_schema.sql.
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
pub fn internal_schema() -> Option<pg_sys::Oid> {
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

/// The function `name(argument_types)` of snowlink_internal, or in a database at 0.1.0 of the
/// extension's `schema`.
pub fn internal_function(
    schema: pg_sys::Oid,
    name: &CStr,
    argument_types: &[pg_sys::Oid],
) -> pg_sys::Oid {
    function_oid(internal_schema().unwrap_or(schema), name, argument_types)
}

/// As internal_function(), or None when the extension's SQL, of an earlier version, has no such
/// function.
pub fn find_internal_function(
    schema: pg_sys::Oid,
    name: &CStr,
    argument_types: &[pg_sys::Oid],
) -> Option<pg_sys::Oid> {
    find_function(internal_schema().unwrap_or(schema), name, argument_types)
}

/// Calls `function` with `arguments` (none NULL) through the function manager.
///
/// # Safety
/// As for call_nullable().
pub unsafe fn call(function: pg_sys::Oid, arguments: &[pg_sys::Datum]) -> Option<pg_sys::Datum> {
    let arguments: Vec<Option<pg_sys::Datum>> = arguments.iter().copied().map(Some).collect();
    call_nullable(function, &arguments)
}

/// Calls `function` with `arguments` (None: NULL) through the function manager, which runs a
/// SECURITY DEFINER function as its owner; None for a NULL result, which the function manager's
/// own helpers refuse.
///
/// # Safety
/// The function takes exactly these arguments, of its argument types.
pub unsafe fn call_nullable(
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
pub fn function_oid(
    schema: pg_sys::Oid,
    name: &CStr,
    argument_types: &[pg_sys::Oid],
) -> pg_sys::Oid {
    find_function(schema, name, argument_types).unwrap_or_else(|| {
        error!(
            "snowlink: the extension's function {}() is missing",
            name.to_string_lossy()
        )
    })
}

/// The OID of the function `name(argument_types)` in `schema`, if there is one.
fn find_function(
    schema: pg_sys::Oid,
    name: &CStr,
    argument_types: &[pg_sys::Oid],
) -> Option<pg_sys::Oid> {
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
    (oid != pg_sys::InvalidOid).then_some(oid)
}
