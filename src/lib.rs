//! snowlink: Snowflake IDs, base62 codes and URL short links for PostgreSQL.

use pgrx::prelude::*;

mod base62;
mod data_file;
mod error;
mod extension;
mod locks;
mod shortlinks;
mod snowflake;
mod visits;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx adds a Rust backtrace to the DETAIL of an error that it raises again after Rust code
    // called into PostgreSQL, when RUST_BACKTRACE is set in the server's environment. Errors read
    // the same whatever that environment: RUST_LIB_BACKTRACE, which backtraces read first, is off.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    snowflake::register_settings();
    shortlinks::register_settings();
    visits::register_settings();
}

/// The schema of the functions that only the extension's own code calls (sql/src/internal_schema.sql
/// says why).
#[pg_schema]
mod snowlink_internal {}

extension_sql_file!(
    "../sql/src/internal_schema.sql",
    requires = [snowlink_internal]
);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
