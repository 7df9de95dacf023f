//! Configuration from the environment, checked before anything starts.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::site::Site;

/// Where to listen when LISTEN is not set: loopback only, for a reverse proxy in front.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// A shorter token is too easy to guess to guard link creation.
const MIN_TOKEN_LENGTH: usize = 16;
/// Requests per minute per API key to /ids and the routes that write, when
/// SNOWLINK_HTTP_RATE_LIMIT does not say.
const DEFAULT_RATE_LIMIT: u32 = 600;
/// How long a request waits for the database (a connection, or the answer to its query) before it
/// is answered 503; the query is cancelled then.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `snowlink-http --help` prints: every setting, with its default.
pub fn usage() -> String {
    format!(
        "Usage: snowlink-http [--help | --version]

Serves the short links of a PostgreSQL database with the snowlink extension over HTTP:
GET /CODE redirects, GET /CODE/qr.svg and /CODE/qr.png show its QR code, and, for holders of an
API key of snowlink_api_key_create(), /links makes, lists, changes and deletes links and /ids hands
out snowflake IDs. GET /openapi.json describes every route; GET /healthz tells whether the
database answers.

Settings, from the environment:
  DATABASE_URL             libpq connection string or URI of the database (required), for
                           example postgresql://redirects@localhost/app
  LISTEN                   address and port to listen on (default {DEFAULT_LISTEN})
  METRICS_LISTEN           address and port of GET /metrics alone; unset, /metrics is served
                           on LISTEN
  SNOWLINK_HTTP_PUBLIC_URL where links of the default domain are followed, such as
                           https://s.example.com (for short_url and QR codes)
  SNOWLINK_HTTP_DOMAINS    hosts, separated by commas, whose own links are served; unset, every
                           host serves the default domain's links
  SNOWLINK_HTTP_NOT_FOUND_PAGE
                           HTML file answered for links that do not resolve (default: a page
                           built in)
  SNOWLINK_HTTP_RATE_LIMIT requests per minute per API key to /ids and the routes that write
                           (default {DEFAULT_RATE_LIMIT}; 0: no limit)
  SNOWLINK_HTTP_TOKEN      deprecated, until 0.4.0: a bearer token, at least {MIN_TOKEN_LENGTH}
                           characters, that acts as the role of DATABASE_URL itself; use API keys
  SNOWLINK_HTTP_POOL_SIZE  most database connections (default 4 per CPU)
  SNOWLINK_HTTP_LOG_FORMAT text (the default: a line for people) or json (an object per line)
  RUST_LOG                 which log lines: error, warn, info (the default), debug or trace,
                           or per module as in snowlink_http=debug

A request waits at most {} s for the database, and gets 503 after that. Exit codes: 0 after
SIGTERM or Ctrl-C, 2 for a configuration error, 3 when the database cannot be used.
",
        DATABASE_TIMEOUT.as_secs()
    )
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// A line for people.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl LogFormat {
    /// SNOWLINK_HTTP_LOG_FORMAT, read before anything else, so that every message after is written
    /// in it.
    pub fn from_env() -> Result<LogFormat, String> {
        LogFormat::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<LogFormat, String> {
        match lookup("SNOWLINK_HTTP_LOG_FORMAT").as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!(
                "SNOWLINK_HTTP_LOG_FORMAT is \"{other}\", not text or json"
            )),
        }
    }
}

pub struct Config {
    pub database: tokio_postgres::Config,
    pub listen: SocketAddr,
    /// Where GET /metrics is served alone; None: on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub site: Site,
    /// The page of links that do not resolve; None: the built-in one.
    pub not_found_page: Option<String>,
    /// Requests per minute per API key; None: no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// The bearer token of SNOWLINK_HTTP_TOKEN.
    pub token: Option<String>,
    pub pool_size: usize,
}

impl Config {
    /// Reads the settings of usage().
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let url = lookup("DATABASE_URL").ok_or(
            "DATABASE_URL is not set: give a libpq connection string or URI, \
             for example postgresql://app@localhost/app",
        )?;
        let mut database: tokio_postgres::Config = url
            .parse()
            .map_err(|error| format!("DATABASE_URL is not a connection string or URI: {error}"))?;
        if database.get_application_name().is_none() {
            database.application_name("snowlink-http");
        }
        if database.get_connect_timeout().is_none() {
            database.connect_timeout(DATABASE_TIMEOUT);
        }

        let listen = lookup("LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen.parse().map_err(|_| {
            format!("LISTEN is \"{listen}\", not an address:port such as {DEFAULT_LISTEN}")
        })?;
        let metrics_listen = match lookup("METRICS_LISTEN") {
            None => None,
            Some(address) => Some(address.parse().map_err(|_| {
                format!(
                    "METRICS_LISTEN is \"{address}\", not an address:port such as 127.0.0.1:9090"
                )
            })?),
        };

        let site = Site::new(
            lookup("SNOWLINK_HTTP_PUBLIC_URL").as_deref(),
            lookup("SNOWLINK_HTTP_DOMAINS").as_deref(),
        )?;
        let not_found_page = match lookup("SNOWLINK_HTTP_NOT_FOUND_PAGE") {
            None => None,
            Some(path) => Some(std::fs::read_to_string(&path).map_err(|error| {
                format!("SNOWLINK_HTTP_NOT_FOUND_PAGE: cannot read \"{path}\": {error}")
            })?),
        };
        let rate_limit = match lookup("SNOWLINK_HTTP_RATE_LIMIT") {
            None => NonZeroU32::new(DEFAULT_RATE_LIMIT),
            Some(limit) => NonZeroU32::new(limit.parse().map_err(|_| {
                format!(
                    "SNOWLINK_HTTP_RATE_LIMIT is \"{limit}\", not a number of requests per \
                     minute (0: no limit)"
                )
            })?),
        };

        let token = match lookup("SNOWLINK_HTTP_TOKEN") {
            Some(token) if token.len() < MIN_TOKEN_LENGTH => {
                return Err(format!(
                    "SNOWLINK_HTTP_TOKEN has {} characters, fewer than {MIN_TOKEN_LENGTH}: \
                     set a longer one, or unset it and use API keys",
                    token.len()
                ))
            }
            token => token,
        };

        let default_pool_size = 4 * std::thread::available_parallelism().map_or(1, usize::from);
        let pool_size = match lookup("SNOWLINK_HTTP_POOL_SIZE") {
            None => default_pool_size,
            Some(size) => size.parse().ok().filter(|&size| size > 0).ok_or(format!(
                "SNOWLINK_HTTP_POOL_SIZE is \"{size}\", not a positive number of connections"
            ))?,
        };

        Ok(Config {
            database,
            listen,
            metrics_listen,
            site,
            not_found_page,
            rate_limit,
            token,
            pool_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(variables: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| {
            variables
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn only_the_database_is_required() {
        let config = config(&[("DATABASE_URL", "host=/run/postgresql dbname=app")]).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert!(config.token.is_none());
        assert_eq!(config.rate_limit, NonZeroU32::new(DEFAULT_RATE_LIMIT));
        assert!(config.not_found_page.is_none());
        assert!(config.pool_size >= 4);
        assert_eq!(
            config.database.get_application_name(),
            Some("snowlink-http")
        );
        assert_eq!(config.database.get_dbname(), Some("app"));
    }

    #[test]
    fn uris_and_settings_are_read() {
        let config = config(&[
            (
                "DATABASE_URL",
                "postgresql://app@db.internal:6432/links?application_name=redirects",
            ),
            ("LISTEN", "0.0.0.0:80"),
            ("SNOWLINK_HTTP_TOKEN", "a-token-of-enough-length"),
            ("SNOWLINK_HTTP_POOL_SIZE", "32"),
            ("SNOWLINK_HTTP_RATE_LIMIT", "0"),
        ])
        .unwrap();
        assert_eq!(config.database.get_application_name(), Some("redirects"));
        assert_eq!(config.listen, "0.0.0.0:80".parse().unwrap());
        assert_eq!(config.token.as_deref(), Some("a-token-of-enough-length"));
        assert_eq!(config.pool_size, 32);
        assert_eq!(config.rate_limit, None);
    }

    #[test]
    fn mistakes_are_named() {
        let error = |variables: &[(&str, &str)]| config(variables).err().unwrap();
        assert!(error(&[]).starts_with("DATABASE_URL is not set"));
        assert!(error(&[("DATABASE_URL", "postgresql://[")]).starts_with("DATABASE_URL is not"));
        let url = ("DATABASE_URL", "dbname=app");
        assert!(error(&[url, ("LISTEN", "8080")]).starts_with("LISTEN is \"8080\""));
        assert!(error(&[url, ("SNOWLINK_HTTP_TOKEN", "short")]).contains("fewer than 16"));
        assert!(error(&[url, ("SNOWLINK_HTTP_POOL_SIZE", "0")]).contains("positive number"));
        assert!(error(&[url, ("SNOWLINK_HTTP_RATE_LIMIT", "-1")]).contains("per minute"));
        assert!(error(&[url, ("METRICS_LISTEN", "9090")]).starts_with("METRICS_LISTEN is"));
        assert!(error(&[url, ("SNOWLINK_HTTP_PUBLIC_URL", "x")]).contains("not an http"));
        assert!(
            error(&[url, ("SNOWLINK_HTTP_NOT_FOUND_PAGE", "/nonexistent")])
                .contains("cannot read \"/nonexistent\"")
        );
    }

    #[test]
    fn log_formats_are_text_or_json() {
        let format = |value: Option<&str>| LogFormat::from_lookup(|_| value.map(str::to_owned));
        assert_eq!(format(None), Ok(LogFormat::Text));
        assert_eq!(format(Some("json")), Ok(LogFormat::Json));
        assert!(format(Some("JSON"))
            .unwrap_err()
            .contains("not text or json"));
    }

    /// The settings as the man page, the packaged settings file and docs/http.md give them: every
    /// one there, with the defaults of this file.
    #[test]
    fn the_documents_agree_with_the_code() {
        let man_page = include_str!("../../packaging/snowlink-http.1");
        let settings_file = include_str!("../../packaging/snowlink-http.env");
        let http_page = include_str!("../../docs/http.md");
        for setting in [
            "DATABASE_URL",
            "LISTEN",
            "METRICS_LISTEN",
            "SNOWLINK_HTTP_LOG_FORMAT",
            "SNOWLINK_HTTP_PUBLIC_URL",
            "SNOWLINK_HTTP_DOMAINS",
            "SNOWLINK_HTTP_NOT_FOUND_PAGE",
            "SNOWLINK_HTTP_RATE_LIMIT",
            "SNOWLINK_HTTP_TOKEN",
            "SNOWLINK_HTTP_POOL_SIZE",
        ] {
            assert!(
                usage().contains(&format!("\n  {setting}")),
                "{setting} in --help"
            );
            assert!(
                man_page.contains(&format!(".B {setting}\n")),
                "{setting} in the man page"
            );
            assert!(
                settings_file.contains(&format!("#{setting}=")),
                "{setting} in the file"
            );
            assert!(
                http_page.contains(&format!("| `{setting}` |")),
                "{setting} in docs/http.md"
            );
        }
        let token_length = format!("at least {MIN_TOKEN_LENGTH} characters");
        let timeout = format!("{} s", DATABASE_TIMEOUT.as_secs());
        for document in [man_page, settings_file, http_page] {
            assert!(document.contains(DEFAULT_LISTEN) && document.contains(&token_length));
        }
        assert!(man_page.contains(&timeout) && http_page.contains(&timeout));
    }
}
