//! URL short links. The tables and the SQL functions users call live in sql/src/, by job; this
//! module gives them URL checks, generated codes, resolve() and shortlink_target(); src/visits/
//! counts the visits.

pub mod code_rule;
pub mod codes;
mod domains;
mod kept_statement;
mod labels;
mod link_lookup;
mod link_query;
mod link_state;
mod redirect_status;
mod release_0_1_0;
mod reserved;
mod resolve;
mod shorten;
mod table_cache;
pub mod urls;

use std::ffi::{CStr, CString};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::base62;
use crate::error::{OrRaise, SqlError, SqlState};
use codes::CodeKey;
use link_state::LinkState;
use table_cache::TableCache;
use urls::UrlPolicy;

/// How shorten() makes codes when it is given none.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum CodeStyle {
    /// A keyed permutation of a counter: 7 characters, reveals nothing.
    #[name = c"keyed"]
    Keyed,
    /// base62 of the link's snowflake ID: up to 11 characters, needs no shared counter.
    #[name = c"snowflake"]
    Snowflake,
}

const DEFAULT_MAX_URL_LENGTH: i32 = 8000;
const DEFAULT_URL_SCHEMES: &CStr = c"http,https";

static MAX_URL_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_URL_LENGTH);
static ALLOWED_URL_SCHEMES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(DEFAULT_URL_SCHEMES));
static CODE_STYLE: GucSetting<CodeStyle> = GucSetting::<CodeStyle>::new(CodeStyle::Keyed);
/// Whose request this is (`_shortlink_owner()`); declared so that it is documented in pg_settings
/// and SHOW knows it before the first SET.
static OWNER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"snowlink.max_url_length",
        c"Longest URL, in bytes, that shorten() accepts.",
        c"",
        &MAX_URL_LENGTH,
        1,
        1 << 20,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_string_guc(
        c"snowlink.allowed_url_schemes",
        c"Comma-separated URL schemes that shorten() accepts.",
        c"javascript, data, vbscript and file are refused whatever this says.",
        &ALLOWED_URL_SCHEMES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"snowlink.owner",
        c"Owner of the links that this session makes and sees, within the current role.",
        c"Empty: the current role. Applications that serve many users set it per transaction with SET LOCAL.",
        &OWNER,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"snowlink.code_style",
        c"How shorten() makes codes: keyed (7 characters, unguessable) or snowflake.",
        c"snowflake codes are base62 of the link's ID and need no counter shared between servers.",
        &CODE_STYLE,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The URL as shorten() stores it, or an ERROR saying why it is refused.
#[pg_extern(stable, parallel_safe)]
fn shortlink_normalize_url(url: &str) -> String {
    normalize_url(url).or_raise("shortlink_normalize_url")
}

/// For shortlinks_import(): the URL as shorten() stores it, or NULL when the code or the URL of
/// the row to import is refused (`_shortlink_import_refusal()` says why).
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_import_url(code: Option<&str>, url: Option<&str>) -> Option<String> {
    check_import(code, url).ok()
}

/// For shortlinks_import(): why the code or the URL of the row to import is refused, or NULL.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_import_refusal(code: Option<&str>, url: Option<&str>) -> Option<String> {
    check_import(code, url).err()
}

/// For shortlinks_import(): why the title, tags or domain of a row to import are refused, or NULL
/// when shorten() would take them (NULL ones included).
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_labels_refusal(
    title: Option<&str>,
    tags: Option<Vec<Option<String>>>,
    domain: Option<&str>,
) -> Option<String> {
    let tags: Vec<Option<&str>> = tags.iter().flatten().map(Option::as_deref).collect();
    let refusal = title
        .map(labels::normalize_title)
        .transpose()
        .err()
        .or_else(|| labels::normalize_tags(&tags).err())
        .or_else(|| domain.map(domains::normalize_domain).transpose().err());
    refusal.map(|error| error.message)
}

fn check_import(code: Option<&str>, url: Option<&str>) -> Result<String, String> {
    let code = code.ok_or("code is NULL")?;
    if let Some(refusal) = code_rule::custom_code_refusal(code) {
        return Err(refusal);
    }
    let url = url.ok_or("url is NULL")?;
    normalize_url(url).map_err(|refusal| refusal.message)
}

/// For shorten(): the URL as it is stored, once the URL, the custom code (if any) and the redirect
/// status pass the rules that need no table. The reserved codes of the table are checked by
/// `_shortlink_reserved_refusal()`.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_checked_url(
    url: Option<&str>,
    code: Option<&str>,
    redirect_status: Option<i32>,
) -> String {
    check_shorten(url, code, redirect_status)
        .map(|(url, _)| url)
        .or_raise("shorten")
}

/// The URL as stored and the redirect status, once they and the custom code (if any) pass.
fn check_shorten(
    url: Option<&str>,
    code: Option<&str>,
    redirect_status: Option<i32>,
) -> Result<(String, i16), SqlError> {
    let url = url.ok_or_else(|| SqlError::new(SqlState::NullValue, "url must not be NULL"))?;
    let url = normalize_url(url)?;
    let redirect_status = redirect_status::check(redirect_status)?;
    if let Some(refusal) = code.and_then(code_rule::custom_code_refusal) {
        return Err(SqlError::new(SqlState::InvalidParameter, refusal));
    }
    Ok((url, redirect_status))
}

/// A link's tags in their normal form (labels.rs): trimmed, lower-cased, sorted, once each.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_tags(tags: Vec<Option<String>>) -> Vec<String> {
    let tags: Vec<Option<&str>> = tags.iter().map(Option::as_deref).collect();
    labels::normalize_tags(&tags).or_raise("_shortlink_tags")
}

/// A link's title in its normal form (labels.rs): trimmed, NULL when empty.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_title(title: &str) -> Option<String> {
    labels::normalize_title(title).or_raise("_shortlink_title")
}

/// A link's domain in its normal form (domains.rs): lower-case ASCII, with the port if any.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_domain(domain: &str) -> String {
    domains::normalize_domain(domain).or_raise("_shortlink_domain")
}

/// The owner of the current request, for the links it makes and may see (sql/src/owners.sql): the
/// owner that the application names with `SET LOCAL snowlink.owner = 'user-42'`, or else the
/// current role. In Rust rather than SQL, which PostgreSQL would inline into the column's default
/// and into each policy, and prepare again for every statement.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_owner() -> String {
    match OWNER.get() {
        Some(owner) if !owner.is_empty() => owner.to_string_lossy().into_owned(),
        // SAFETY: the name of the current role, which exists.
        _ => unsafe {
            CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false))
                .to_string_lossy()
                .into_owned()
        },
    }
}

/// Whether a link's code, URL, redirect status, title, tags and domain are as shorten() stores
/// them: what the row-level security of sql/src/owners.sql asks of every row a role writes. A value
/// that shorten() refuses raises shorten()'s error. One function rather than an expression of
/// five: PostgreSQL prepares a policy's expression again for every statement.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_is_well_formed(
    code: Option<&str>,
    url: Option<&str>,
    redirect_status: Option<i16>,
    title: Option<&str>,
    tags: Option<Vec<Option<String>>>,
    domain: Option<&str>,
) -> bool {
    let (normal_url, _) =
        check_shorten(url, code, redirect_status.map(i32::from)).or_raise("shorten");
    let tags: Vec<Option<&str>> = tags.iter().flatten().map(Option::as_deref).collect();
    url == Some(normal_url.as_str())
        && title.is_none_or(|title| {
            labels::normalize_title(title)
                .or_raise("shorten")
                .as_deref()
                == Some(title)
        })
        && labels::normalize_tags(&tags)
            .or_raise("shorten")
            .iter()
            .map(|tag| Some(tag.as_str()))
            .eq(tags.iter().copied())
        && domain
            .is_none_or(|domain| domains::normalize_domain(domain).or_raise("shorten") == domain)
}

/// Whether a link may redirect with `status` (redirect_status.rs): the CHECK constraint of the
/// column shortlinks.redirect_status, so that the table and shorten() know one list of statuses.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_is_redirect_status(status: i16) -> bool {
    redirect_status::REDIRECT_STATUSES.contains(&status)
}

/// The code of a new link whose ID is `id`, in the style snowlink.code_style sets: the ID in
/// base 62, or (keyed) the next value of this server's share of shortlink_code_seq permuted with
/// the code key. Declared SECURITY DEFINER in sql/src/shorten.sql, as shorten() runs as its caller,
/// who can neither move the counter nor read the key. It needs no pinned search_path: it finds
/// the sequence and `_shortlink_key()`, whose body names every object with its schema, by their
/// schema's OID. One call instead of four from PL/pgSQL, each of whose expressions PostgreSQL
/// prepares again in every transaction.
#[pg_extern(
    volatile,
    parallel_unsafe,
    security_definer,
    schema = "snowlink_internal"
)]
fn _shortlink_generated_code(id: i64, fcinfo: pg_sys::FunctionCallInfo) -> String {
    if CODE_STYLE.get() == CodeStyle::Snowflake {
        return base62::codec::encode(id, base62::codec::Alphabet::base62(), 0)
            .or_raise("_shortlink_generated_code");
    }
    let schema = crate::extension::schema_of(fcinfo);
    // SAFETY: a catalog lookup by name, in a transaction.
    let sequence = unsafe { pg_sys::get_relname_relid(c"shortlink_code_seq".as_ptr(), schema) };
    if sequence == pg_sys::InvalidOid {
        error!("snowlink: the extension's sequence shortlink_code_seq is missing");
    }
    // SAFETY: nextval(regclass) takes the sequence's OID, and checks the (owner's) privileges.
    let local =
        unsafe { pgrx::direct_function_call::<i64>(pg_sys::nextval_oid, &[sequence.into_datum()]) }
            .expect("nextval() returns a value");
    let key = CODE_KEY.with(|cache| cache.get(schema, || read_code_key(schema)));
    server_counter(local)
        .and_then(|counter| codes::keyed_code(counter, &key))
        .or_raise("_shortlink_generated_code")
}

thread_local! {
    static CODE_KEY: TableCache<CodeKey> = const { TableCache::new(c"shortlink_key") };
}

/// The code key, made on first use by `_shortlink_key()`.
fn read_code_key(schema: pg_sys::Oid) -> CodeKey {
    let function = crate::extension::internal_function(schema, c"_shortlink_key", &[]);
    // SAFETY: _shortlink_key() takes no argument and returns bytea.
    let key = unsafe { crate::extension::call(function, &[]) }
        .and_then(|key| unsafe { <&[u8]>::from_datum(key, false) })
        .unwrap_or_else(|| error!("snowlink: the code key is missing"));
    CodeKey::from_bytes(key).or_raise("_shortlink_generated_code")
}

/// Whether a link with these columns resolves `at` (link_state.rs), for the SQL that reads links
/// with a query.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_is_live(
    disabled: bool,
    valid_from: Option<TimestampWithTimeZone>,
    expires_at: Option<TimestampWithTimeZone>,
    max_visits: Option<i64>,
    visits: i64,
    at: TimestampWithTimeZone,
) -> bool {
    LinkState {
        disabled,
        valid_from: valid_from.map(pg_sys::TimestampTz::from),
        expires_at: expires_at.map(pg_sys::TimestampTz::from),
        max_visits,
        visits,
    }
    .is_live(at.into())
}

/// Whether a link with these columns can never resolve again after `at` (link_state.rs), for
/// shortlinks_purge_expired().
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_is_spent(
    expires_at: Option<TimestampWithTimeZone>,
    max_visits: Option<i64>,
    visits: i64,
    at: TimestampWithTimeZone,
) -> bool {
    LinkState {
        expires_at: expires_at.map(pg_sys::TimestampTz::from),
        max_visits,
        visits,
        ..LinkState::default()
    }
    .is_spent(at.into())
}

/// Whether Citus manages the extension's links (link_lookup.rs): for the SQL that keeps
/// shortlink_url_links, which only Citus needs.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlinks_distributed(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    link_lookup::is_distributed(crate::extension::schema_of(fcinfo))
}

fn normalize_url(url: &str) -> Result<String, SqlError> {
    // A string setting with a default is never NULL; schemes are ASCII, so no byte of another
    // encoding can match one.
    let schemes = ALLOWED_URL_SCHEMES.get();
    let schemes = schemes
        .as_deref()
        .map(CStr::to_string_lossy)
        .unwrap_or_default();
    let policy = UrlPolicy {
        max_length: MAX_URL_LENGTH.get() as usize,
        allowed_schemes: &schemes,
    };
    urls::normalize(url, &policy)
}

/// The generated code for counter value `counter` under `key`.
#[pg_extern(immutable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_keyed_code(counter: i64, key: &[u8]) -> String {
    CodeKey::from_bytes(key)
        .and_then(|key| codes::keyed_code(counter, &key))
        .or_raise("_shortlink_keyed_code")
}

/// The counter value of this server's `local`-th generated code (see codes::server_counter).
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_server_counter(local: i64) -> i64 {
    server_counter(local).or_raise("_shortlink_server_counter")
}

/// The counter value of this server's `local`-th generated code, for the node range of the
/// settings.
fn server_counter(local: i64) -> Result<i64, SqlError> {
    let settings = crate::snowflake::settings();
    crate::snowflake::generator::check_range(&settings)
        .and_then(|()| codes::server_counter(local, settings.node_min, settings.node_max))
}

// The SQL of short links, by job (sql/src/).
extension_sql_file!(
    "../../sql/src/tables.sql",
    requires = [
        "internal_schema",
        snowflake::snowflake_next,
        _shortlink_owner,
        _shortlink_is_redirect_status
    ]
);
extension_sql_file!(
    "../../sql/src/shorten.sql",
    requires = [
        "tables",
        "snowflake",
        shortlink_normalize_url,
        _shortlink_checked_url,
        _shortlink_generated_code,
        reserved::_shortlink_reserved_refusal,
        _shortlink_title,
        _shortlink_tags,
        _shortlink_domain,
        _shortlink_keyed_code,
        _shortlink_server_counter,
        _shortlinks_distributed
    ]
);
extension_sql_file!(
    "../../sql/src/owners.sql",
    requires = ["tables", "snowflake", "shorten", _shortlink_is_well_formed]
);
extension_sql_file!(
    "../../sql/src/resolve.sql",
    requires = [
        "tables",
        resolve::resolve,
        resolve::resolve_in_domain,
        _shortlink_is_live,
        _shortlink_domain
    ]
);
extension_sql_file!(
    "../../sql/src/import.sql",
    requires = [
        "owners",
        _shortlink_import_url,
        _shortlink_import_refusal,
        _shortlink_labels_refusal
    ]
);
extension_sql_file!(
    "../../sql/src/manage.sql",
    requires = ["owners", _shortlink_is_spent]
);
extension_sql_file!(
    "../../sql/src/api_keys.sql",
    requires = ["owners", snowflake::snowflake_next]
);
extension_sql_file!(
    "../../sql/src/find.sql",
    requires = ["owners", _shortlink_tags, _shortlink_domain]
);
extension_sql_file!(
    "../../sql/src/citus.sql",
    requires = ["tables", "snowflake"]
);
