//! The database side: a pool of connections, the extension's schema, and the SQL of each route.
//! Every rule (who may see or change a link, what a link may hold, whether a key is valid) is the
//! extension's; this file only calls its functions, each request of the API in one transaction
//! that starts with the caller's key.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, NoTls, Row};

use std::time::Instant;

use crate::config::{Config, DATABASE_TIMEOUT};
use crate::metrics;

/// The first release with API keys, owners and domains.
const MIN_EXTENSION_VERSION: (u32, u32) = (0, 3);

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
    /// The extension's schema, quoted.
    schema: String,
    /// Whether the role of DATABASE_URL may use API keys (it is in snowlink_user): without it,
    /// the server only redirects.
    pub serves_api: bool,
}

/// Who sends a request of the API.
pub enum Caller {
    /// A key of snowlink_api_key_create(), checked by the database for each request.
    ApiKey(String),
    /// SNOWLINK_HTTP_TOKEN: the role of DATABASE_URL itself, as its own owner.
    Token,
}

/// What a request does with the links: a read-only key may only read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A link as the API shows it: the columns of shortlinks that the caller chose or may change.
pub struct LinkRow {
    pub id: i64,
    pub code: String,
    pub domain: Option<String>,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub valid_from: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_visits: Option<i64>,
    pub redirect_status: i16,
    pub disabled: bool,
}

/// The columns of LinkRow, from a shortlinks row named `l`.
const LINK_COLUMNS: &str = "l.id, l.code, l.domain, l.url, l.title, l.tags, l.owner, l.created_at, \
                            l.valid_from, l.expires_at, l.max_visits, l.redirect_status, l.disabled";

impl LinkRow {
    fn from_row(row: &Row) -> LinkRow {
        LinkRow {
            id: row.get(0),
            code: row.get(1),
            domain: row.get(2),
            url: row.get(3),
            title: row.get(4),
            tags: row.get(5),
            owner: row.get(6),
            created_at: row.get(7),
            valid_from: row.get(8),
            expires_at: row.get(9),
            max_visits: row.get(10),
            redirect_status: row.get(11),
            disabled: row.get(12),
        }
    }
}

/// The arguments of shorten(): the fields of POST /links. Times are text, read by PostgreSQL as
/// timestamptz input in the session's time zone, as psql would.
pub struct NewLink<'a> {
    pub url: &'a str,
    pub code: Option<&'a str>,
    pub title: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub domain: Option<&'a str>,
    pub expires_at: Option<&'a str>,
    pub valid_from: Option<&'a str>,
    pub max_visits: Option<i64>,
    pub redirect_status: Option<i32>,
    pub force_new: Option<bool>,
}

/// The arguments of shortlink_update() (NULL: unchanged; `clear`: the columns to make NULL), and
/// of shortlink_disable().
pub struct LinkChange<'a> {
    pub url: Option<&'a str>,
    pub title: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub expires_at: Option<&'a str>,
    pub valid_from: Option<&'a str>,
    pub max_visits: Option<i64>,
    pub redirect_status: Option<i32>,
    pub disabled: Option<bool>,
    pub clear: Vec<&'static str>,
}

/// The arguments of shortlinks_list().
pub struct LinkSearch<'a> {
    pub search: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub after_id: Option<i64>,
    pub page_size: i32,
}

/// A link's visits: shortlink_stats() and shortlink_daily_visits().
pub struct Visits {
    pub visits: i64,
    pub first_visit_at: Option<DateTime<Utc>>,
    pub last_visit_at: Option<DateTime<Utc>>,
    pub days: Vec<(NaiveDate, i64)>,
}

pub struct Target {
    pub url: String,
    pub status: u16,
    pub cache_control: String,
}

/// Why the database did not answer as asked.
pub enum Failure {
    /// PostgreSQL refused the statement: its SQLSTATE and message (error.rs says which HTTP
    /// status that is).
    Refused { sqlstate: String, message: String },
    /// A read-only key asked to write.
    ReadOnlyKey,
    /// The database cannot be reached or cannot answer now: 503.
    Unavailable(String),
}

impl Database {
    /// Connects once, to fail at start with a clear message rather than on the first request, and
    /// finds the extension and what the role may do with it.
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
                "the database has snowlink {version}; snowlink-http {} needs 0.3.0 or later: \
                 run ALTER EXTENSION snowlink UPDATE",
                env!("CARGO_PKG_VERSION")
            ));
        }
        let serves_api: bool = client
            .query_one(
                &format!(
                    "SELECT pg_catalog.has_function_privilege(
                         '{schema}.snowlink_api_key_use(pg_catalog.text)', 'EXECUTE')"
                ),
                &[],
            )
            .await
            .map_err(|error| format!("cannot check the privileges of the role: {error}"))?
            .get(0);
        if config.token.is_some() && !serves_api {
            return Err(
                "SNOWLINK_HTTP_TOKEN is set, but the role of DATABASE_URL may not make links: \
                 GRANT snowlink_user TO that role, or unset the token"
                    .into(),
            );
        }
        Ok(Database {
            pool,
            statements: Statements::in_schema(&schema, redirects),
            schema,
            serves_api,
        })
    }

    /// The redirect for `code` in `domain` (None: the default domain), with the visit counted;
    /// None when the code does not resolve there.
    pub async fn target(
        &self,
        code: &str,
        domain: Option<&str>,
    ) -> Result<Option<Target>, Failure> {
        let client = self.client().await?;
        let row = within_timeout(client.cancel_token(), async {
            let statement = client.prepare_cached(&self.statements.target).await?;
            Ok(client.query_opt(&statement, &[&code, &domain]).await?)
        })
        .await?;
        Ok(row.map(|row| Target {
            url: row.get(0),
            status: u16::try_from(row.get::<_, i32>(1)).unwrap_or(500),
            cache_control: row.get(2),
        }))
    }

    /// Whether `code` resolves in `domain` (None: the default domain), no visit counted.
    pub async fn is_live(&self, code: &str, domain: Option<&str>) -> Result<bool, Failure> {
        let client = self.client().await?;
        within_timeout(client.cancel_token(), async {
            let statement = client.prepare_cached(&self.statements.is_live).await?;
            Ok(client
                .query_one(&statement, &[&code, &domain])
                .await?
                .get(0))
        })
        .await
    }

    /// `count` new snowflake IDs, as decimal strings.
    pub async fn ids(&self, caller: &Caller, count: i32) -> Result<Vec<String>, Failure> {
        self.as_caller(caller, Access::Read, async |transaction| {
            let rows = query(transaction, &self.statements.ids, &[&count]).await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
    }

    /// shorten(): the new link, or the live one with the same URL and options.
    pub async fn shorten(&self, caller: &Caller, link: &NewLink<'_>) -> Result<LinkRow, Failure> {
        self.as_caller(caller, Access::Write, async |transaction| {
            let rows = query(
                transaction,
                &self.statements.shorten,
                &[
                    &link.url,
                    &link.code,
                    &link.expires_at,
                    &link.max_visits,
                    &link.redirect_status,
                    &link.force_new,
                    &link.valid_from,
                    &link.title,
                    &link.tags,
                    &link.domain,
                ],
            )
            .await?;
            Ok(LinkRow::from_row(&rows[0]))
        })
        .await
    }

    /// A page of the caller's links, newest first.
    pub async fn links(
        &self,
        caller: &Caller,
        search: &LinkSearch<'_>,
    ) -> Result<Vec<LinkRow>, Failure> {
        self.as_caller(caller, Access::Read, async |transaction| {
            let rows = query(
                transaction,
                &self.statements.list,
                &[
                    &search.search,
                    &search.tag,
                    &search.domain,
                    &search.after_id,
                    &search.page_size,
                ],
            )
            .await?;
            Ok(rows.iter().map(LinkRow::from_row).collect())
        })
        .await
    }

    /// The caller's link of `code` in `domain`, if the caller may see it.
    pub async fn link(
        &self,
        caller: &Caller,
        code: &str,
        domain: Option<&str>,
    ) -> Result<Option<LinkRow>, Failure> {
        self.as_caller(caller, Access::Read, async |transaction| {
            let rows = query(transaction, &self.statements.link, &[&code, &domain]).await?;
            Ok(rows.first().map(LinkRow::from_row))
        })
        .await
    }

    /// shortlink_disable() when `change` turns the link on or off, then shortlink_update(), in
    /// one transaction: the link as it is now, or None when the caller has no such link.
    pub async fn change_link(
        &self,
        caller: &Caller,
        code: &str,
        domain: Option<&str>,
        change: &LinkChange<'_>,
    ) -> Result<Option<LinkRow>, Failure> {
        self.as_caller(caller, Access::Write, async |transaction| {
            if let Some(disabled) = change.disabled {
                let rows = query(
                    transaction,
                    &self.statements.disable,
                    &[&code, &disabled, &domain],
                )
                .await?;
                if !rows[0].get::<_, bool>(0) {
                    return Ok(None);
                }
            }
            let rows = query(
                transaction,
                &self.statements.update,
                &[
                    &code,
                    &change.url,
                    &change.title,
                    &change.tags,
                    &change.expires_at,
                    &change.max_visits,
                    &change.redirect_status,
                    &change.valid_from,
                    &domain,
                    &change.clear,
                ],
            )
            .await?;
            Ok(rows.first().map(LinkRow::from_row))
        })
        .await
    }

    /// shortlink_delete(): whether the caller had such a link.
    pub async fn delete_link(
        &self,
        caller: &Caller,
        code: &str,
        domain: Option<&str>,
    ) -> Result<bool, Failure> {
        self.as_caller(caller, Access::Write, async |transaction| {
            let rows = query(transaction, &self.statements.delete, &[&code, &domain]).await?;
            Ok(rows[0].get(0))
        })
        .await
    }

    /// The visits of the caller's link, in all and per day from `from` to `to` (text, read as
    /// dates by PostgreSQL); None when the caller has no such link.
    pub async fn visits(
        &self,
        caller: &Caller,
        code: &str,
        domain: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<Visits>, Failure> {
        self.as_caller(caller, Access::Read, async |transaction| {
            let rows = query(
                transaction,
                &self.statements.visits,
                &[&code, &domain, &from, &to],
            )
            .await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            Ok(Some(Visits {
                visits: first.get(0),
                first_visit_at: first.get(1),
                last_visit_at: first.get(2),
                days: rows
                    .iter()
                    .filter_map(|row| Some((row.get::<_, Option<NaiveDate>>(3)?, row.get(4))))
                    .collect(),
            }))
        })
        .await
    }

    /// Whether the server can serve, or why not: the database answers, and has the extension at
    /// a version this server supports, in the schema it had at start.
    pub async fn readiness(&self) -> Result<(), String> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|error| format!("no database connection: {error}"))?;
        let version: Option<String> = within_timeout(client.cancel_token(), async {
            Ok(client
                .query_opt(
                    "SELECT e.extversion
                     FROM pg_catalog.pg_extension AS e
                     JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
                     WHERE e.extname = 'snowlink'
                       AND pg_catalog.quote_ident(n.nspname) = $1",
                    &[&self.schema],
                )
                .await?
                .map(|row| row.get(0)))
        })
        .await
        .map_err(|_| "the database does not answer".to_owned())?;
        match version {
            None => Err(format!(
                "the extension snowlink is not in schema {}",
                self.schema
            )),
            Some(version) if version_number(&version) < MIN_EXTENSION_VERSION => Err(format!(
                "the database has snowlink {version}; this server needs 0.3.0 or later"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The connection pool as it is now.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Runs `work` in a transaction of the caller: with an API key, snowlink_api_key_use() first
    /// (refused: 28000), which makes the key's owner that of the transaction; a read-only key
    /// asking to write is refused before anything else runs. Committed when `work` succeeds.
    async fn as_caller<T>(
        &self,
        caller: &Caller,
        access: Access,
        work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut client = self.client().await?;
        let cancel = client.cancel_token();
        within_timeout(cancel, async {
            let transaction = client.transaction().await?;
            if let Caller::ApiKey(key) = caller {
                let rows = query(&transaction, &self.statements.key_use, &[key]).await?;
                if rows[0].get::<_, bool>(0) && access == Access::Write {
                    return Err(Failure::ReadOnlyKey);
                }
            }
            let result = work(&transaction).await?;
            transaction.commit().await?;
            Ok(result)
        })
        .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        let started = Instant::now();
        let client = self.pool.get().await;
        metrics::pool_wait(started.elapsed().as_secs_f64());
        client.map_err(|error| Failure::Unavailable(format!("no database connection: {error}")))
    }
}

/// Runs one statement, prepared once per connection.
async fn query(
    transaction: &Transaction<'_>,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Failure> {
    let statement = transaction.prepare_cached(sql).await?;
    Ok(transaction.query(&statement, parameters).await?)
}

/// Runs `work`, giving up after DATABASE_TIMEOUT: the query is cancelled, so that the connection
/// is free for the next request (a transaction left open is rolled back as it is dropped), and the
/// request gets 503.
async fn within_timeout<T>(
    cancel: CancelToken,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(DATABASE_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => {
            // A cancel goes through PgBouncer too, where a statement_timeout in the startup
            // options would be refused.
            let _ = cancel.cancel_query(NoTls).await;
            metrics::database_error(QUERY_CANCELED_CLASS);
            Err(Failure::Unavailable(format!(
                "the database did not answer within {} s",
                DATABASE_TIMEOUT.as_secs()
            )))
        }
    }
}

/// The SQL of each route, naming the extension's schema, so that no search_path matters.
struct Statements {
    target: String,
    is_live: String,
    key_use: String,
    ids: String,
    shorten: String,
    list: String,
    link: String,
    disable: String,
    update: String,
    delete: String,
    visits: String,
}

impl Statements {
    fn in_schema(schema: &str, redirects: Redirects) -> Statements {
        Statements {
            target: match redirects {
                Redirects::Shortlinks => format!(
                    "SELECT url, status, cache_control FROM {schema}.shortlink_target($1, $2)"
                ),
                Redirects::PlainTable(table) => format!(
                    "SELECT url, 302, 'no-store' FROM {table}
                     WHERE code = $1 AND $2::pg_catalog.text IS NULL"
                ),
            },
            is_live: format!("SELECT {schema}.shortlink_is_live($1, $2)"),
            key_use: format!("SELECT read_only FROM {schema}.snowlink_api_key_use($1)"),
            ids: format!(
                "SELECT {schema}.snowflake_next()::pg_catalog.text
                 FROM pg_catalog.generate_series(1, $1::pg_catalog.int4)"
            ),
            shorten: format!(
                "SELECT {LINK_COLUMNS}
                 FROM {schema}.shorten(
                     url => $1, code => $2, expires_at => $3::pg_catalog.text::pg_catalog.timestamptz,
                     max_visits => $4, redirect_status => coalesce($5, 302),
                     force_new => coalesce($6, false),
                     valid_from => $7::pg_catalog.text::pg_catalog.timestamptz,
                     title => $8, tags => $9, domain => $10) AS l"
            ),
            list: format!(
                "SELECT {LINK_COLUMNS}
                 FROM {schema}.shortlinks_list(search => $1, tag => $2, domain => $3,
                                               after_id => $4, page_size => $5) AS l"
            ),
            link: format!(
                "SELECT {LINK_COLUMNS}
                 FROM {schema}.shortlinks AS l
                 WHERE l.code OPERATOR(pg_catalog.=) $1
                   AND l.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain($2)"
            ),
            disable: format!("SELECT {schema}.shortlink_disable($1, $2, $3)"),
            update: format!(
                "SELECT {LINK_COLUMNS}
                 FROM {schema}.shortlink_update(
                     code => $1, url => $2, title => $3, tags => $4,
                     expires_at => $5::pg_catalog.text::pg_catalog.timestamptz,
                     max_visits => $6, redirect_status => $7,
                     valid_from => $8::pg_catalog.text::pg_catalog.timestamptz,
                     domain => $9, clear => $10) AS l
                 WHERE l.id IS NOT NULL"
            ),
            delete: format!("SELECT {schema}.shortlink_delete($1, $2)"),
            // The totals on every row, and one row with NULL days when the link has none (a
            // link with max_visits, or a range without days).
            visits: format!(
                "SELECT s.visits, s.first_visit_at, s.last_visit_at, d.day, d.visits
                 FROM {schema}.shortlink_stats($1, $2) AS s
                 LEFT JOIN LATERAL {schema}.shortlink_daily_visits(
                     $1, $3::pg_catalog.text::pg_catalog.date,
                     $4::pg_catalog.text::pg_catalog.date, $2) AS d ON true
                 WHERE s.visits IS NOT NULL
                 ORDER BY d.day"
            ),
        }
    }
}

/// The SQLSTATE classes counted for failures that come without a SQLSTATE: a broken connection,
/// and a query cancelled after DATABASE_TIMEOUT.
const CONNECTION_EXCEPTION_CLASS: &str = "08";
const QUERY_CANCELED_CLASS: &str = "57";

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        match error.as_db_error() {
            Some(database_error) => {
                let sqlstate = database_error.code().code();
                metrics::database_error(&sqlstate[..2]);
                Failure::Refused {
                    sqlstate: sqlstate.into(),
                    message: database_error.message().into(),
                }
            }
            // The connection broke: the pool replaces it.
            None => {
                metrics::database_error(CONNECTION_EXCEPTION_CLASS);
                Failure::Unavailable(format!("database connection failed: {error}"))
            }
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
        assert!(version_number("0.2.0") < MIN_EXTENSION_VERSION);
        assert!(version_number("0.3.0") >= MIN_EXTENSION_VERSION);
        assert!(version_number("0.10.1") >= MIN_EXTENSION_VERSION);
        assert!(version_number("1.0") >= MIN_EXTENSION_VERSION);
        assert!(version_number("unknown") < MIN_EXTENSION_VERSION);
    }
}
