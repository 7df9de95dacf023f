//! The extension's SQL functions that Rust code calls: the narrow SECURITY DEFINER functions of
//! sql/shortlinks.sql that write the visits a process counted or gathered (a backend, or the
//! visit writer) and count a visit of a limited link. They are called through the function manager, so PostgreSQL switches to the extension's
//! owner and pins their search_path as for any SECURITY DEFINER call; no Rust code changes the
//! user id, and no query text is parsed. They need no grant: only resolve() and the visit writes
//! of src/visits/ call them, on behalf of a caller who may call resolve().

use std::ffi::CStr;

use pgrx::prelude::*;

use super::link_lookup::LiveLink;

/// The schema of the called function: the extension's.
pub fn schema_of(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Oid {
    // SAFETY: PostgreSQL passes the call's valid fcinfo and flinfo.
    unsafe { pg_sys::get_func_namespace((*(*fcinfo).flinfo).fn_oid) }
}

/// Writes the visits this process holds: `_shortlinks_flush_visits()`.
pub fn flush_visits(schema: pg_sys::Oid) {
    let function = function_oid(schema, c"_shortlinks_flush_visits", &[]);
    // SAFETY: a function of the extension that takes no argument and returns void.
    unsafe { call(function, &[]) };
}

/// The live link of `code`, with its visit counted: `_shortlink_visit(code)`.
pub fn visit(schema: pg_sys::Oid, code: &str) -> Option<LiveLink> {
    let function = function_oid(schema, c"_shortlink_visit", &[pg_sys::TEXTOID]);
    let argument = code.into_datum().expect("a &str is never NULL");
    // SAFETY: the function takes text and returns a shortlinks row, or NULL when the code does not
    // resolve; the row is read in the memory context it was made in, by column names and types
    // that link_lookup.rs checks the table for.
    unsafe {
        let link = call(function, &[argument])?;
        // PL/pgSQL may return the row as an expanded record: flatten it into a tuple.
        let tuple = pg_sys::pg_detoast_datum(link.cast_mut_ptr()).cast();
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
}

/// Calls `function` with `arguments` (none NULL) through the function manager, which runs a
/// SECURITY DEFINER function as its owner; None for a NULL result, which the function manager's
/// own helpers refuse.
///
/// # Safety
/// The function takes exactly these arguments, of its argument types.
unsafe fn call(function: pg_sys::Oid, arguments: &[pg_sys::Datum]) -> Option<pg_sys::Datum> {
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
            value: *value,
            isnull: false,
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
