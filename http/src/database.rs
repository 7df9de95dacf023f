//! The database side: a pool of connections, the extension's schema, and the SQL of each endpoint.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

use crate::config::{Config, DATABASE_TIMEOUT};

/// The first release with shortlink_target().
const MIN_EXTENSION_VERSION: (u32, u32) = (0, 2);

/// Where redirects come from.
pub enum Redirects {
    /// shortlink_target(): the extension's live links, with their visits counted.
    Shortlinks,
    /// For the benchmarks' baseline: `SELECT url FROM <table> WHERE code = $1`, always 302,
    /// nothing counted. The table is named as SQL text.
    PlainTable(String),
}

pub struct Database {
    pool: Pool,
    statements: Statements,
}

/// The SQL of each endpoint, naming the extension's schema, so that no search_path matters.
struct Statements {
    target: String,
    ids: String,
    shorten: String,
}

/// What shorten() takes: the fields of POST /links.
pub struct NewLink<'a> {
    pub url: &'a str,
    pub code: Option<&'a str>,
    pub expires_at: Option<&'a str>,
    pub max_visits: Option<i64>,
    pub redirect_status: Option<i32>,
    pub force_new: Option<bool>,
    pub valid_from: Option<&'a str>,
}

pub struct Target {
    pub url: String,
    pub status: u16,
    pub cache_control: String,
}

/// Why the database did not answer as asked.
pub enum Failure {
    /// The caller's mistake, with PostgreSQL's message: 4xx.
    Refused {
        sqlstate: String,
        message: String,
        conflict: bool,
    },
    /// The database cannot be reached or cannot answer now: 503.
    Unavailable(String),
    /// Anything else: 500, logged.
    Internal(String),
}

impl Database {
    /// Connects once, to fail at start with a clear message rather than on the first request, and
    /// finds the extension.
    pub async fn connect(config: &Config, redirects: Redirects) -> Result<Database, String> {
        let manager = Manager::from_config(
            config.database.clone(),
            NoTls,
            ManagerConfig {
                // A connection the server closed is dropped and replaced on its next use.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(DATABASE_TIMEOUT),
                create: Some(DATABASE_TIMEOUT),
                recycle: Some(DATABASE_TIMEOUT),
            })
            .build()
            .map_err(|error| format!("cannot make the connection pool: {error}"))?;
        let client = pool
            .get()
            .await
            .map_err(|error| format!("cannot connect to the database of DATABASE_URL: {error}"))?;

        let extension = client
            .query_opt(
                "SELECT pg_catalog.quote_ident(n.nspname), e.extversion
                 FROM pg_catalog.pg_extension AS e
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
                 WHERE e.extname = 'snowlink'",
                &[],
            )
            .await
            .map_err(|error| format!("cannot look for the extension snowlink: {error}"))?;
        let Some(extension) = extension else {
            return Err(
                "the extension snowlink is not installed in the database of \
                        DATABASE_URL: run CREATE EXTENSION snowlink there"
                    .into(),
            );
        };
        let schema: String = extension.get(0);
        let version: String = extension.get(1);
        if version_number(&version) < MIN_EXTENSION_VERSION {
            return Err(format!(
                "the database has snowlink {version}; snowlink-http needs 0.2.0 or later: \
                 run ALTER EXTENSION snowlink UPDATE"
            ));
        }

        let database = Database {
            pool,
            statements: Statements::in_schema(&schema, redirects),
        };
        if config.token.is_some() {
            let may_shorten: bool = client
                .query_one(
                    // shorten() by name: its arguments differ between versions.
                    "SELECT coalesce(pg_catalog.bool_or(
                                pg_catalog.has_function_privilege(p.oid, 'EXECUTE')), false)
                     FROM pg_catalog.pg_proc AS p
                     JOIN pg_catalog.pg_extension AS e ON e.extnamespace = p.pronamespace
                     WHERE e.extname = 'snowlink' AND p.proname = 'shorten'",
                    &[],
                )
                .await
                .map_err(|error| format!("cannot check the privileges of the role: {error}"))?
                .get(0);
            if !may_shorten {
                return Err(
                    "SNOWLINK_HTTP_TOKEN is set, but the role of DATABASE_URL may not call \
                     shorten(): GRANT snowlink_user TO that role, or unset the token"
                        .into(),
                );
            }
        }
        Ok(database)
    }

    /// The redirect for `code`, with the visit counted; None when the code does not resolve.
    pub async fn target(&self, code: &str) -> Result<Option<Target>, Failure> {
        let client = self.client().await?;
        let row = within_timeout(&client, async {
            let statement = client.prepare_cached(&self.statements.target).await?;
            client.query_opt(&statement, &[&code]).await
        })
        .await?;
        Ok(row.map(|row| Target {
            url: row.get(0),
            status: u16::try_from(row.get::<_, i32>(1)).unwrap_or(500),
            cache_control: row.get(2),
        }))
    }

    /// `count` new snowflake IDs, as decimal strings.
    pub async fn ids(&self, count: i32) -> Result<Vec<String>, Failure> {
        let client = self.client().await?;
        let rows = within_timeout(&client, async {
            let statement = client.prepare_cached(&self.statements.ids).await?;
            client.query(&statement, &[&count]).await
        })
        .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// shorten(): the link as a JSON object, with its id as a string.
    pub async fn shorten(&self, link: &NewLink<'_>) -> Result<String, Failure> {
        let client = self.client().await?;
        let row = within_timeout(&client, async {
            let statement = client
                .prepare_typed_cached(
                    &self.statements.shorten,
                    &[
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::INT8,
                        Type::INT4,
                        Type::BOOL,
                        Type::TEXT,
                    ],
                )
                .await?;
            client
                .query_one(
                    &statement,
                    &[
                        &link.url,
                        &link.code,
                        &link.expires_at,
                        &link.max_visits,
                        &link.redirect_status,
                        &link.force_new,
                        &link.valid_from,
                    ],
                )
                .await
        })
        .await?;
        Ok(row.get(0))
    }

    /// Whether the database answers.
    pub async fn is_healthy(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        self.pool
            .get()
            .await
            .map_err(|error| Failure::Unavailable(format!("no database connection: {error}")))
    }
}

/// Runs `query` on `client`, giving up after DATABASE_TIMEOUT: the query is cancelled, so that
/// the connection is free for the next request, and the request gets 503.
async fn within_timeout<T>(
    client: &deadpool_postgres::Object,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(DATABASE_TIMEOUT, query).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            // A cancel goes through PgBouncer too, where a statement_timeout in the startup
            // options would be refused.
            let _ = client.cancel_token().cancel_query(NoTls).await;
            Err(Failure::Unavailable(format!(
                "the database did not answer within {} s",
                DATABASE_TIMEOUT.as_secs()
            )))
        }
    }
}

impl Statements {
    fn in_schema(schema: &str, redirects: Redirects) -> Statements {
        Statements {
            target: match redirects {
                Redirects::Shortlinks => {
                    format!("SELECT url, status, cache_control FROM {schema}.shortlink_target($1)")
                }
                Redirects::PlainTable(table) => {
                    format!("SELECT url, 302, 'no-store' FROM {table} WHERE code = $1")
                }
            },
            ids: format!(
                "SELECT {schema}.snowflake_next()::pg_catalog.text
                 FROM pg_catalog.generate_series(1, $1::pg_catalog.int4)"
            ),
            // Timestamps arrive as text and are read in the session's time zone, as in psql.
            shorten: format!(
                "SELECT pg_catalog.json_build_object(
                     'id', l.id::pg_catalog.text, 'code', l.code, 'url', l.url,
                     'created_at', l.created_at, 'valid_from', l.valid_from,
                     'expires_at', l.expires_at, 'max_visits', l.max_visits,
                     'redirect_status', l.redirect_status)::pg_catalog.text
                 FROM {schema}.shorten(
                     url => $1, code => $2, expires_at => $3::pg_catalog.timestamptz,
                     max_visits => $4, redirect_status => coalesce($5, 302),
                     force_new => coalesce($6, false),
                     valid_from => $7::pg_catalog.timestamptz) AS l"
            ),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        let Some(database_error) = error.as_db_error() else {
            // The connection broke: the pool replaces it.
            return Failure::Unavailable(format!("database connection failed: {error}"));
        };
        let sqlstate = database_error.code();
        let message = database_error.message().to_string();
        let class = &sqlstate.code()[..2];
        match class {
            // Data exceptions and integrity violations: what the caller sent.
            "22" | "23" => Failure::Refused {
                sqlstate: sqlstate.code().into(),
                message,
                conflict: *sqlstate == SqlState::UNIQUE_VIOLATION,
            },
            // Read-only (a hot standby), serialization failures, deadlocks, shutdown, too many
            // connections: worth a retry.
            "25" | "40" | "53" | "57" | "08" => Failure::Unavailable(message),
            _ => Failure::Internal(format!("{}: {message}", sqlstate.code())),
        }
    }
}

/// The (major, minor) of a version such as "0.2.0"; (0, 0) for one that cannot be read.
fn version_number(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|part| part.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_number("0.1.0") < MIN_EXTENSION_VERSION);
        assert!(version_number("0.2.0") >= MIN_EXTENSION_VERSION);
        assert!(version_number("0.10.1") >= MIN_EXTENSION_VERSION);
        assert!(version_number("1.0") >= MIN_EXTENSION_VERSION);
        assert!(version_number("unknown") < MIN_EXTENSION_VERSION);
    }
}
