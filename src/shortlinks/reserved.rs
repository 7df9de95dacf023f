//! The reserved codes: a custom code that `shortlink_reserved_codes` lists, in any case, is refused,
//! and a generated code that spells one is skipped. shorten(), the import and the row-level
//! security of shortlinks (sql/src/owners.sql) all ask here.

use std::collections::HashSet;

use pgrx::prelude::*;

use super::kept_statement::KeptStatement;
use super::table_cache::TableCache;
use crate::error::{SqlError, SqlState};
use crate::extension;

/// Every reserved code, as stored: lower-case, as the table's CHECK constraint holds them.
const LOAD: &str =
    "SELECT pg_catalog.array_agg(r.code) FROM {schema}.shortlink_reserved_codes AS r";

thread_local! {
    static LOAD_STATEMENT: KeptStatement = const { KeptStatement::new(LOAD, &[]) };
    static RESERVED_CODES: TableCache<HashSet<String>> =
        const { TableCache::new(c"shortlink_reserved_codes") };
}

const HINT: &str = "The table shortlink_reserved_codes lists the reserved codes.";

/// Why `shortlink_reserved_codes` refuses a custom code, or NULL.
#[pg_extern(stable, parallel_safe, schema = "snowlink_internal")]
fn _shortlink_reserved_refusal(code: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<String> {
    let schema = extension::schema_of(fcinfo);
    is_reserved(schema, code).then(|| refusal(code))
}

/// Refuses a reserved custom code, with the hint that names the table.
pub fn check_custom_code(schema: pg_sys::Oid, code: &str) -> Result<(), SqlError> {
    if is_reserved(schema, code) {
        return Err(SqlError::new(SqlState::InvalidParameter, refusal(code)).with_hint(HINT));
    }
    Ok(())
}

/// Whether the extension in `schema` lists `code` as reserved, in any case. (Custom codes are ASCII,
/// where Rust's lower case is PostgreSQL's lower() in every locale; any other code is refused
/// for its characters.)
pub fn is_reserved(schema: pg_sys::Oid, code: &str) -> bool {
    RESERVED_CODES.with(|cache| {
        cache
            .get(schema, || load(schema))
            .contains(&code.to_lowercase())
    })
}

/// The reserved codes, read with a query.
fn load(schema: pg_sys::Oid) -> HashSet<String> {
    // SAFETY: connects to SPI for the one statement, which returns a text array (NULL: none).
    unsafe {
        pg_sys::SPI_connect();
        let codes = LOAD_STATEMENT
            .with(|statement| statement.execute(schema, &[], true))
            .and_then(|row| row.first_column())
            .and_then(|codes| Vec::<String>::from_datum(codes, false));
        pg_sys::SPI_finish();
        codes.unwrap_or_default().into_iter().collect()
    }
}

fn refusal(code: &str) -> String {
    format!("custom code \"{code}\" is reserved")
}
