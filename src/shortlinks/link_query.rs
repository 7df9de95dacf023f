//! The live link of a code read with a query, where resolve() cannot read the code index itself
//! (link_lookup.rs), as for a table that Citus manages: `_shortlink_by_code(code, domain)` of
//! sql/src/resolve.sql, called through the function manager (src/extension.rs), reads the row,
//! and link_state.rs decides here whether it resolves.

use std::ffi::CStr;

use pgrx::prelude::*;

use super::link_lookup::{self, LiveLink};
use super::link_state::LinkState;
use crate::extension;

/// The live link of `code` in `domain` (None: the default domain) in the extension of `schema`,
/// as of the caller's snapshot; `now` is the statement's now(). Called after link_lookup::find(),
/// whose check of the table tells how to plan the query.
pub fn query_live_link(
    schema: pg_sys::Oid,
    code: &str,
    domain: Option<&str>,
    now: i64,
) -> Option<LiveLink> {
    let text = pg_sys::TEXTOID;
    let Some(function) =
        extension::find_internal_function(schema, c"_shortlink_by_code", &[text, text])
    else {
        // 0.2.0's SQL, until ALTER EXTENSION UPDATE: live links of the default domain only.
        if domain.is_some() {
            return None;
        }
        let function = extension::internal_function(schema, c"_shortlink_live", &[text]);
        // SAFETY: 0.2.0's function takes text and returns a shortlinks row, or NULL.
        return unsafe { call_for_link(function, code, &[]) };
    };
    let plan_cache_mode = if link_lookup::plan_at_each_call(schema) {
        c"force_custom_plan"
    } else {
        c"auto"
    };
    // SAFETY: the function takes two texts and returns a record with the columns read_link()
    // reads, all NULL when there is no such link.
    let (state, link) = unsafe {
        with_plan_cache_mode(plan_cache_mode, || call_for_row(function, code, &[domain]))
    }?;
    state.is_live(now).then_some(link)
}

/// Runs `call` with plan_cache_mode set to `mode`, as a function's SET clause would; the setting
/// the caller had comes back after it, or with the end of the (sub)transaction if it fails.
///
/// `_shortlink_by_code()` takes plan_cache_mode from here rather than from a SET clause of its
/// own, which would hide this one: its plan is kept where this node holds no shard of a table
/// that Citus manages (as on a coordinator: resolve() ran about a tenth faster there), and made
/// at each call where it does.
///
/// # Safety
/// In a transaction.
unsafe fn with_plan_cache_mode<T>(mode: &CStr, call: impl FnOnce() -> T) -> T {
    let nest_level = pg_sys::NewGUCNestLevel();
    pg_sys::set_config_option(
        c"plan_cache_mode".as_ptr(),
        mode.as_ptr(),
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
    let result = call();
    pg_sys::AtEOXact_GUC(true, nest_level);
    result
}

/// Calls `function(code, more...)`, which returns a shortlinks row of a live link, or NULL.
///
/// # Safety
/// The function takes text arguments, as many as given, and returns a shortlinks row (or NULL).
pub(super) unsafe fn call_for_link(
    function: pg_sys::Oid,
    code: &str,
    more: &[Option<&str>],
) -> Option<LiveLink> {
    call_for_row(function, code, more).map(|(_, link)| link)
}

/// Calls `function(code, more...)`, which returns a row with the columns read_link() reads.
///
/// # Safety
/// As for call_for_link(), with any such row.
unsafe fn call_for_row(
    function: pg_sys::Oid,
    code: &str,
    more: &[Option<&str>],
) -> Option<(LinkState, LiveLink)> {
    let arguments: Vec<Option<pg_sys::Datum>> = std::iter::once(Some(code))
        .chain(more.iter().copied())
        .map(|argument| argument.and_then(IntoDatum::into_datum))
        .collect();
    extension::call_nullable(function, &arguments).and_then(|row| read_link(row))
}

/// The columns of a link that resolve() needs, and those that decide whether it resolves.
///
/// # Safety
/// `row` is a shortlinks row, or a record with the same columns, in the current memory context;
/// the columns are read by name, with the types that link_lookup.rs checks the table for.
unsafe fn read_link(row: pg_sys::Datum) -> Option<(LinkState, LiveLink)> {
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
    let (disabled, disabled_is_null) = column(c"disabled");
    let state = LinkState {
        disabled: bool::from_datum(disabled, disabled_is_null).unwrap_or(true),
        valid_from: value(c"valid_from"),
        expires_at: value(c"expires_at"),
        max_visits: value(c"max_visits"),
        visits: value(c"visits").unwrap_or(0),
    };
    let link = LiveLink {
        id: value(c"id")?,
        url: String::from_datum(url, url_is_null)?,
        redirect_status: i16::from_datum(status, status_is_null)?,
        expires_at: state.expires_at,
        limited: state.max_visits.is_some(),
    };
    Some((state, link))
}
