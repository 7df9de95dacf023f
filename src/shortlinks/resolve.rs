//! resolve() and shortlink_target(), the calls behind every click, in Rust.
//!
//! A SECURITY DEFINER function in PL/pgSQL, with its pinned search_path, ran at about half the
//! throughput of a plain SELECT by code. These functions instead read the link straight from the
//! code index (link_lookup.rs), which no search_path or privilege of the caller can redirect, and
//! hand the visit to the visit writer (src/visits/). Only links with max_visits, whose visits are
//! counted under the row lock, tables that Citus manages, and the writing of visits run SQL: the
//! narrow SECURITY DEFINER functions of extension.rs.

use pgrx::prelude::*;

use super::extension;
use super::link_lookup::{self, LiveLink, Lookup};
use crate::visits;

/// The longest time a browser or proxy may keep a permanent redirect: a day, so that a disabled
/// link stops working within one.
const MAX_CACHE_SECONDS: i64 = 86_400;
const MICROSECONDS_PER_SECOND: i64 = 1_000_000;

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    visit_live_link(code, fcinfo).map(|(link, _)| link.url)
}

/// What an HTTP front answers for a code: the URL, the redirect status and the Cache-Control
/// value, with the visit counted; no row when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn shortlink_target(
    code: &str,
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(url, String),
        name!(status, i32),
        name!(cache_control, String),
    ),
> {
    let target = visit_live_link(code, fcinfo).map(|(link, now)| {
        let cache_control = cache_control(&link, now);
        (link.url, i32::from(link.redirect_status), cache_control)
    });
    TableIterator::new(target)
}

/// The live link of `code`, with its visit counted, and the now() it was live at.
fn visit_live_link(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<(LiveLink, i64)> {
    // The extension's schema is this function's, looked up on every call (a syscache hit), so
    // that a new CREATE EXTENSION in another schema is followed.
    let schema = extension::schema_of(fcinfo);
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let link = match link_lookup::find(schema, code, now) {
        Lookup::NotLive => None,
        Lookup::Live(link) if !link.limited => {
            visits::record_visit(schema, link.id);
            Some(link)
        }
        // Also when the table is not as expected: the PL/pgSQL path reads it with a query.
        Lookup::Live(_) | Lookup::Unavailable => extension::visit(schema, code),
    };
    link.map(|link| (link, now))
}

/// How long browsers and proxies may keep the redirect. Permanent redirects are kept: a day at
/// most, and not past the link's expiry. Every visit of a temporary or limited link comes back.
fn cache_control(link: &LiveLink, now: i64) -> String {
    let permanent = matches!(link.redirect_status, 301 | 308);
    if !permanent || link.limited {
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
