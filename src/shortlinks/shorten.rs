//! shorten(), in Rust: the arguments checked and put in normal form, the live link of the same URL
//! found again (unless `force_new`), or a new link inserted with a generated or custom code.
//!
//! It runs as its caller, so that the row-level security of shortlinks (sql/src/owners.sql) sees
//! whose link it makes and which links it may hand back. The two statements it runs go through
//! SPI, prepared once per backend; they name every operator with its schema, so that no
//! search_path of the caller can choose another. What needs the extension owner's rights (the
//! code counter and key, the URL locks) it calls through the function manager, which runs those
//! narrow SECURITY DEFINER functions as their owner. Written in PL/pgSQL, shorten() spent as long
//! in its own expressions, which PostgreSQL prepares again in every transaction, as in its INSERT.

use std::ffi::CStr;

use pgrx::prelude::*;

use super::kept_statement::KeptStatement;
use super::{check_shorten, domains, labels, link_lookup, reserved};
use crate::error::{OrRaise, SqlError, SqlState};
use crate::extension;

/// A new link, or no row when its code is taken.
const INSERT: &str = "INSERT INTO {schema}.shortlinks AS s
    (id, code, url, valid_from, expires_at, max_visits, redirect_status, title, tags, domain)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
RETURNING *";
const INSERT_TYPES: &[pg_sys::Oid] = &[
    pg_sys::INT8OID,
    pg_sys::TEXTOID,
    pg_sys::TEXTOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::INT8OID,
    pg_sys::INT2OID,
    pg_sys::TEXTOID,
    pg_sys::TEXTARRAYOID,
    pg_sys::TEXTOID,
];

/// The oldest live link (of the caller's owner, by row-level security) with this URL and these
/// options, which shorten() hands back instead of making another, among the links of one code
/// (`code_condition`). A link with max_visits is never shared: its visits belong to whoever asked
/// for it.
macro_rules! find_link {
    ($code_condition:literal) => {
        concat!(
            "SELECT * FROM {schema}.shortlinks AS s
WHERE ",
            $code_condition,
            "
  AND s.url OPERATOR(pg_catalog.=) $1
  AND (s.domain OPERATOR(pg_catalog.=) $2 OR (s.domain IS NULL AND $2 IS NULL))
  AND s.redirect_status OPERATOR(pg_catalog.=) $4
  AND (s.expires_at OPERATOR(pg_catalog.=) $5 OR (s.expires_at IS NULL AND $5 IS NULL))
  AND (s.valid_from OPERATOR(pg_catalog.=) $6 OR (s.valid_from IS NULL AND $6 IS NULL))
  AND (s.title OPERATOR(pg_catalog.=) $7 OR (s.title IS NULL AND $7 IS NULL))
  AND s.tags OPERATOR(pg_catalog.=) $8
  AND s.max_visits IS NULL
  AND NOT s.disabled
ORDER BY s.id
LIMIT 1"
        )
    };
}
/// On one server, through the hash index on the URL: of any code, or of the custom code asked for.
const FIND: &str = find_link!("($3 IS NULL OR s.code OPERATOR(pg_catalog.=) $3)");
/// On Citus, among the codes that shortlink_url_links lists under the URL: in their shards only.
const FIND_AMONG: &str = find_link!("s.code OPERATOR(pg_catalog.=) ANY ($3)");
const FIND_TYPES: &[pg_sys::Oid] = &[
    pg_sys::TEXTOID,
    pg_sys::TEXTOID,
    pg_sys::TEXTOID,
    pg_sys::INT2OID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TEXTOID,
    pg_sys::TEXTARRAYOID,
];
const FIND_AMONG_TYPES: &[pg_sys::Oid] = &[
    pg_sys::TEXTOID,
    pg_sys::TEXTOID,
    pg_sys::TEXTARRAYOID,
    pg_sys::INT2OID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TEXTOID,
    pg_sys::TEXTARRAYOID,
];

thread_local! {
    static INSERT_STATEMENT: KeptStatement = const { KeptStatement::new(INSERT, INSERT_TYPES) };
    static FIND_STATEMENT: KeptStatement = const { KeptStatement::new(FIND, FIND_TYPES) };
    static FIND_AMONG_STATEMENT: KeptStatement =
        const { KeptStatement::new(FIND_AMONG, FIND_AMONG_TYPES) };
}

/// A link as shorten() is asked for it, checked and in normal form, and the row type it returns.
struct Request {
    row_type: pg_sys::Oid,
    url: String,
    code: Option<String>,
    expires_at: Option<TimestampWithTimeZone>,
    max_visits: Option<i64>,
    redirect_status: i16,
    valid_from: Option<TimestampWithTimeZone>,
    title: Option<String>,
    tags: Vec<String>,
    domain: Option<String>,
}

/// The function info record of shorten_wrapper (PG_FUNCTION_INFO_V1).
#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_shorten_wrapper() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `shorten(url, code, expires_at, max_visits, redirect_status, force_new, valid_from, title,
/// tags, domain) RETURNS shortlinks`, declared in sql/src/shorten.sql. Written against the
/// function manager, as it returns a row of the table's own type.
///
/// # Safety
/// Called by PostgreSQL's function manager, with the arguments of the SQL declaration.
#[unsafe(no_mangle)]
#[doc(hidden)]
#[pg_guard]
pub unsafe extern "C-unwind" fn shorten_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let url: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 0);
    let code: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 1);
    let expires_at: Option<TimestampWithTimeZone> = pgrx::fcinfo::pg_getarg(fcinfo, 2);
    let max_visits: Option<i64> = pgrx::fcinfo::pg_getarg(fcinfo, 3);
    let redirect_status: Option<i32> = pgrx::fcinfo::pg_getarg(fcinfo, 4);
    let force_new: Option<bool> = pgrx::fcinfo::pg_getarg(fcinfo, 5);
    let valid_from: Option<TimestampWithTimeZone> = pgrx::fcinfo::pg_getarg(fcinfo, 6);
    let title: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 7);
    let tags: Option<Vec<Option<String>>> = pgrx::fcinfo::pg_getarg(fcinfo, 8);
    let domain: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 9);

    let (url, redirect_status) = check_shorten(url, code, redirect_status).or_raise("shorten");
    let tags: Vec<Option<&str>> = tags.iter().flatten().map(Option::as_deref).collect();
    let request = Request {
        row_type: pg_sys::get_func_rettype((*(*fcinfo).flinfo).fn_oid),
        url,
        code: code.map(str::to_owned),
        expires_at,
        max_visits,
        redirect_status,
        valid_from,
        title: title
            .map(labels::normalize_title)
            .transpose()
            .or_raise("shorten")
            .flatten(),
        tags: labels::normalize_tags(&tags).or_raise("shorten"),
        domain: domain
            .map(domains::normalize_domain)
            .transpose()
            .or_raise("shorten"),
    };
    check_options(&request).or_raise("shorten");
    // Said here, for every way of making or finding a link: the statement that would fail first
    // (the lock's, a SELECT with an UPDATE in its WITH) would name the wrong command.
    if pg_sys::XactReadOnly {
        SqlError::new(
            SqlState::ReadOnlyTransaction,
            "cannot execute shorten() in a read-only transaction",
        )
        .raise("shorten");
    }
    let schema = extension::schema_of(fcinfo);
    if let Some(code) = &request.code {
        reserved::check_custom_code(schema, code).or_raise("shorten");
    }
    let reuse = !force_new.unwrap_or(false) && request.max_visits.is_none();
    let distributed = link_lookup::is_distributed(schema);
    pg_sys::SPI_connect();
    let existing = if reuse {
        existing_link(schema, &request, distributed)
    } else {
        None
    };
    let link = existing.unwrap_or_else(|| {
        let link = new_link(schema, &request);
        if distributed {
            note_url_link(schema, &request, link);
        }
        link
    });
    pg_sys::SPI_finish();
    link
}

/// The checks of the options against one another and the clock.
fn check_options(request: &Request) -> Result<(), SqlError> {
    if let Some(max_visits) = request.max_visits.filter(|&visits| visits <= 0) {
        return Err(SqlError::new(
            SqlState::InvalidParameter,
            format!("max_visits must be positive, not {max_visits}"),
        ));
    }
    // SAFETY: reads the transaction's start time, which is now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    if let Some(expires_at) = request.expires_at {
        if pg_sys::TimestampTz::from(expires_at) <= now {
            return Err(SqlError::new(
                SqlState::InvalidParameter,
                format!("expires_at {expires_at} is not in the future"),
            ));
        }
        if let Some(valid_from) = request.valid_from {
            if pg_sys::TimestampTz::from(valid_from) >= pg_sys::TimestampTz::from(expires_at) {
                return Err(SqlError::new(
                    SqlState::InvalidParameter,
                    format!("valid_from {valid_from} is not before expires_at {expires_at}"),
                ));
            }
        }
    }
    Ok(())
}

/// The live link of the request's URL and options, if the caller's owner has one. Concurrent
/// calls for one URL wait for each other on the URL's lock, and so agree on one link. On Citus
/// (`distributed`), the links of the URL are those that shortlink_url_links lists in the lock's
/// shard: the query for them reaches their codes' shards only.
///
/// # Safety
/// Connected to SPI.
unsafe fn existing_link(
    schema: pg_sys::Oid,
    request: &Request,
    distributed: bool,
) -> Option<pg_sys::Datum> {
    let function = extension::internal_function(
        schema,
        c"_shortlink_lock_url",
        &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::BOOLOID],
    );
    let lock_arguments = [
        request.url.as_str().into_datum(),
        request.domain.as_deref().into_datum(),
        distributed.into_datum(),
    ];
    // SAFETY: _shortlink_lock_url(text, text, boolean) returns text[], or NULL.
    let listed = extension::call_nullable(function, &lock_arguments)
        .and_then(|codes| Vec::<Option<String>>::from_datum(codes, false));
    let find = |codes: Option<Vec<&str>>| {
        let code_argument = match &codes {
            Some(codes) => codes.clone().into_datum(),
            None => request.code.as_deref().into_datum(),
        };
        let arguments = [
            request.url.as_str().into_datum(),
            request.domain.as_deref().into_datum(),
            code_argument,
            request.redirect_status.into_datum(),
            request.expires_at.into_datum(),
            request.valid_from.into_datum(),
            request.title.as_deref().into_datum(),
            request.tags.clone().into_datum(),
        ];
        let statement = if codes.is_some() {
            &FIND_AMONG_STATEMENT
        } else {
            &FIND_STATEMENT
        };
        statement
            .with(|statement| statement.execute(schema, &arguments, false))
            .map(|row| row.as_composite(request.row_type))
    };
    if !distributed {
        return find(None);
    }
    let codes: Vec<&str> = listed
        .iter()
        .flatten()
        .flatten()
        .map(String::as_str)
        .filter(|code| request.code.as_deref().is_none_or(|asked| asked == *code))
        .collect();
    if codes.is_empty() {
        return None;
    }
    // A listed link may not show yet: its commit can reach the URL's shard before its code's.
    find(Some(codes.clone())).or_else(|| {
        let function = extension::internal_function(
            schema,
            c"_shortlink_await_codes",
            &[pg_sys::TEXTARRAYOID, pg_sys::TEXTOID, pg_sys::TEXTOID],
        );
        let arguments = [
            codes.clone().into_datum(),
            request.url.as_str().into_datum(),
            request.domain.as_deref().into_datum(),
        ];
        // SAFETY: _shortlink_await_codes(text[], text, text) returns boolean.
        let look_again = extension::call_nullable(function, &arguments)
            .is_some_and(|again| bool::from_datum(again, false).unwrap_or(false));
        look_again.then(|| find(Some(codes))).flatten()
    })
}

/// A new link of the request. Generated codes never repeat one another, in any domain; a new one
/// is drawn only when a custom code of the domain already took the one generated, or it spells
/// a reserved code ('SiteMap'), as rarely as that is.
///
/// # Safety
/// Connected to SPI.
unsafe fn new_link(schema: pg_sys::Oid, request: &Request) -> pg_sys::Datum {
    loop {
        let id = crate::snowflake::snowflake_next();
        let code = match &request.code {
            Some(code) => code.clone(),
            None => {
                let function = extension::internal_function(
                    schema,
                    c"_shortlink_generated_code",
                    &[pg_sys::INT8OID],
                );
                // SAFETY: _shortlink_generated_code(bigint) returns text, never NULL.
                let code = extension::call(function, &[id.into_datum().expect("a bigint")])
                    .and_then(|code| String::from_datum(code, false))
                    .expect("a generated code");
                if reserved::is_reserved(schema, &code) {
                    continue;
                }
                code
            }
        };
        let arguments = [
            id.into_datum(),
            code.as_str().into_datum(),
            request.url.as_str().into_datum(),
            request.valid_from.into_datum(),
            request.expires_at.into_datum(),
            request.max_visits.into_datum(),
            request.redirect_status.into_datum(),
            request.title.as_deref().into_datum(),
            request.tags.clone().into_datum(),
            request.domain.as_deref().into_datum(),
        ];
        if let Some(row) =
            INSERT_STATEMENT.with(|statement| statement.execute(schema, &arguments, false))
        {
            return row.as_composite(request.row_type);
        }
        if let Some(code) = &request.code {
            let domain = request
                .domain
                .as_deref()
                .map(|domain| format!(" on {domain}"))
                .unwrap_or_default();
            SqlError::new(
                SqlState::UniqueViolation,
                format!("custom code \"{code}\" is already taken{domain}"),
            )
            .raise("shorten");
        }
    }
}

/// Lists a new link under its URL in shortlink_url_links, on Citus.
///
/// # Safety
/// `link` is the shortlinks row that new_link() made for `request`.
unsafe fn note_url_link(schema: pg_sys::Oid, request: &Request, link: pg_sys::Datum) {
    let tuple = pg_sys::pg_detoast_datum(link.cast_mut_ptr()).cast();
    let column = |name: &CStr| {
        let mut is_null = false;
        let value = pg_sys::GetAttributeByName(tuple, name.as_ptr(), &mut is_null);
        (!is_null).then_some(value)
    };
    let function = extension::internal_function(
        schema,
        c"_shortlink_note_url_link",
        &[
            pg_sys::TEXTOID,
            pg_sys::TEXTOID,
            pg_sys::TEXTOID,
            pg_sys::INT8OID,
        ],
    );
    let arguments = [
        request.url.as_str().into_datum(),
        request.domain.as_deref().into_datum(),
        column(c"code"),
        column(c"id"),
    ];
    // SAFETY: _shortlink_note_url_link(text, text, text, bigint) returns void.
    extension::call_nullable(function, &arguments);
}
