//! resolve() and shortlink_target(), the calls behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. These functions instead read the link straight from the
//! code index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! hand the visit to the visit writer (src/visits/). Only tables that Citus manages, the counting
//! of visits of links with max_visits (by the visit writer, src/visits/limited.rs), and the
//! writing of visits run SQL: the narrow SECURITY DEFINER functions of extension.rs.

use pgrx::prelude::*;

use super::link_lookup::{self, LiveLink, Lookup};
use super::release_0_1_0::{self, is_release_0_1_0};
use super::{domains, link_query, redirect_status};
use crate::error::{OrRaise, SqlError};
use crate::{extension, visits};

/// The longest time a browser or proxy may keep a permanent redirect: a day, so that a disabled
/// link stops working within one.
const MAX_CACHE_SECONDS: i64 = 86_400;
const MICROSECONDS_PER_SECOND: i64 = 1_000_000;

/// The target URL of a live link of the default domain, with the visit counted; NULL when the code
/// does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    visit_live_link(code, None, fcinfo)
        .or_raise("resolve")
        .map(|(link, _)| link.url)
}

/// resolve(code, domain): the same for a link of `domain` (NULL: the default domain), which is
/// compared in its normal form, so that any way of writing the host finds the link.
#[pg_extern(volatile, parallel_unsafe, name = "resolve")]
fn resolve_in_domain(
    code: Option<&str>,
    domain: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let domain = normal_domain(domain).or_raise("resolve");
    visit_live_link(code?, domain.as_deref(), fcinfo)
        .or_raise("resolve")
        .map(|(link, _)| link.url)
}

fn normal_domain(domain: Option<&str>) -> Result<Option<String>, SqlError> {
    domain.map(domains::normalize_domain).transpose()
}

/// The function info record of shortlink_target_wrapper (PG_FUNCTION_INFO_V1).
#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_shortlink_target_wrapper() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `shortlink_target(code text) RETURNS TABLE (url text, status int, cache_control text)`,
/// declared in sql/src/resolve.sql: what an HTTP front answers for a code of the default domain,
/// with the visit counted; no row when the code does not resolve.
///
/// Written against the function manager rather than with #[pg_extern]: with pgrx's value-per-call
/// iterator it ran at about 0.85 of resolve()'s throughput (pgbench, 2 clients), paying on every
/// call for a multi-call memory context and a result descriptor built from the catalog. This
/// hands the row over in a tuple store, with a copy of the descriptor the executor passes in.
///
/// # Safety
/// Called by PostgreSQL's function manager, with the arguments of the SQL declaration (STRICT).
#[unsafe(no_mangle)]
#[doc(hidden)]
#[pg_guard]
pub unsafe extern "C-unwind" fn shortlink_target_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let code: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 0);
    shortlink_target(fcinfo, code, None)
}

/// The function info record of shortlink_target_in_domain_wrapper (PG_FUNCTION_INFO_V1).
#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_shortlink_target_in_domain_wrapper() -> &'static pg_sys::Pg_finfo_record
{
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `shortlink_target(code text, domain text)`: the same for a code of `domain` (NULL: the default
/// domain), compared in its normal form; no row for a NULL code.
///
/// # Safety
/// Called by PostgreSQL's function manager, with the arguments of the SQL declaration.
#[unsafe(no_mangle)]
#[doc(hidden)]
#[pg_guard]
pub unsafe extern "C-unwind" fn shortlink_target_in_domain_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let code: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 0);
    let domain: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 1);
    let domain = normal_domain(domain).or_raise("shortlink_target");
    shortlink_target(fcinfo, code, domain.as_deref())
}

/// The row of shortlink_target() for `code` of `domain` (in normal form; None: the default
/// domain), in a tuple store.
///
/// # Safety
/// `fcinfo` is the call's, from the function manager.
unsafe fn shortlink_target(
    fcinfo: pg_sys::FunctionCallInfo,
    code: Option<&str>,
    domain: Option<&str>,
) -> pg_sys::Datum {
    let result_info = (*fcinfo).resultinfo.cast::<pg_sys::ReturnSetInfo>();
    let materialize = pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32;
    let accepted = !result_info.is_null()
        && (*result_info).type_ == pg_sys::NodeTag::T_ReturnSetInfo
        && (*result_info).allowedModes & materialize != 0
        && !(*result_info).expectedDesc.is_null()
        && (*(*result_info).expectedDesc).natts == 3;
    if !accepted {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "shortlink_target() must be called where a set of rows is accepted, as in FROM"
        );
    }
    let target = code
        .and_then(|code| visit_live_link(code, domain, fcinfo).or_raise("shortlink_target"))
        .map(|(link, now)| {
            let cache_control = cache_control(&link, now);
            [
                link.url.into_datum(),
                i32::from(link.redirect_status).into_datum(),
                cache_control.into_datum(),
            ]
        });

    let random_access = (*result_info).allowedModes
        & pg_sys::SetFunctionReturnMode::SFRM_Materialize_Random as i32
        != 0;
    // The store lives as long as the query that reads it.
    let caller_context =
        pg_sys::MemoryContextSwitchTo((*(*result_info).econtext).ecxt_per_query_memory);
    // A copy: the executor frees the descriptor it is handed, and reuses the one it passed in.
    let description = pg_sys::CreateTupleDescCopy((*result_info).expectedDesc);
    let store = pg_sys::tuplestore_begin_heap(random_access, false, pg_sys::work_mem);
    if let Some(columns) = target {
        let mut values = columns.map(|column| column.expect("a column of a live link is not NULL"));
        let mut nulls = [false; 3];
        pg_sys::tuplestore_putvalues(store, description, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
    pg_sys::MemoryContextSwitchTo(caller_context);
    (*result_info).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
    (*result_info).setResult = store;
    (*result_info).setDesc = description;
    pg_sys::Datum::from(0)
}

/// The live link of `code` in `domain` (in normal form; None: the default domain), with its visit
/// counted, and the now() it was live at.
fn visit_live_link(
    code: &str,
    domain: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<Option<(LiveLink, i64)>, SqlError> {
    // The extension's schema is this function's, looked up on every call (a syscache hit), so
    // that a new CREATE EXTENSION in another schema is followed.
    let schema = extension::schema_of(fcinfo);
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let link = match link_lookup::find(schema, code, domain, now) {
        Lookup::NotLive => return Ok(None),
        Lookup::Live(link) if !(link.limited && is_release_0_1_0()) => link,
        // A table that Citus manages, or that is not as the extension made it, is read with a
        // query; so is a limited link in a database at 0.1.0, whose SQL counts its visit itself.
        // (0.1.0 has no domains.)
        Lookup::Live(_) | Lookup::Unavailable if is_release_0_1_0() => {
            if domain.is_some() {
                return Ok(None);
            }
            let link = release_0_1_0::query_and_count_live_link(schema, code);
            return Ok(link.map(|link| (link, now)));
        }
        Lookup::Live(_) | Lookup::Unavailable => {
            match link_query::query_live_link(schema, code, domain, now) {
                None => return Ok(None),
                Some(link) => link,
            }
        }
    };
    let counted = if link.limited {
        visits::count_limited_visit(schema, link.id, code)?
    } else {
        visits::record_visit(schema, link.id);
        true
    };
    Ok(counted.then_some((link, now)))
}

/// How long browsers and proxies may keep the redirect. Permanent redirects are kept: a day at
/// most, and not past the link's expiry. Every visit of a temporary or limited link comes back.
fn cache_control(link: &LiveLink, now: i64) -> String {
    if !redirect_status::is_permanent(link.redirect_status) || link.limited {
        return "no-store".into();
    }
    // A live link expires after now; 'infinity' is i64::MAX, hence the saturation.
    let seconds = link.expires_at.map_or(MAX_CACHE_SECONDS, |expires_at| {
        expires_at.saturating_sub(now) / MICROSECONDS_PER_SECOND
    });
    format!("public, max-age={}", seconds.min(MAX_CACHE_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000_000;

    fn link(redirect_status: i16, expires_at: Option<i64>, limited: bool) -> LiveLink {
        LiveLink {
            id: 1,
            url: "https://example.com/".into(),
            redirect_status,
            expires_at,
            limited,
        }
    }

    #[test]
    fn temporary_redirects_are_not_cached() {
        assert_eq!(cache_control(&link(302, None, false), NOW), "no-store");
        assert_eq!(cache_control(&link(307, None, false), NOW), "no-store");
    }

    #[test]
    fn permanent_redirects_are_cached_for_a_day_at_most() {
        assert_eq!(
            cache_control(&link(301, None, false), NOW),
            "public, max-age=86400"
        );
        assert_eq!(
            cache_control(&link(308, Some(i64::MAX), false), NOW),
            "public, max-age=86400"
        );
    }

    #[test]
    fn permanent_redirects_are_not_cached_past_the_expiry() {
        let in_90_5_seconds = NOW + 90_500_000;
        assert_eq!(
            cache_control(&link(301, Some(in_90_5_seconds), false), NOW),
            "public, max-age=90"
        );
    }

    #[test]
    fn limited_links_are_not_cached() {
        assert_eq!(cache_control(&link(301, None, true), NOW), "no-store");
    }
}
