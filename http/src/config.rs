//! Configuration from the environment, checked before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

/// Where to listen when LISTEN is not set: loopback only, for a reverse proxy in front.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// A shorter token is too easy to guess to guard link creation.
const MIN_TOKEN_LENGTH: usize = 16;
/// How long a request waits for the database (a connection, or the answer to its query) before it
/// is answered 503; the query is cancelled then.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `snowlink-http --help` prints: every setting, with its default.
pub fn usage() -> String {
    format!(
        "Usage: snowlink-http [--help | --version]

Serves the short links of a PostgreSQL database with the snowlink extension over HTTP:
GET /CODE redirects, GET /ids?n=N hands out snowflake IDs, POST /links makes a link (with a token
only), GET /healthz tells whether the database answers.

Settings, from the environment:
  DATABASE_URL             libpq connection string or URI of the database (required), for
                           example postgresql://redirects@localhost/app
  LISTEN                   address and port to listen on (default {DEFAULT_LISTEN})
  SNOWLINK_HTTP_TOKEN      bearer token of POST /links, at least {MIN_TOKEN_LENGTH} characters;
                           unset, POST /links does not exist
  SNOWLINK_HTTP_POOL_SIZE  most database connections (default 4 per CPU)

A request waits at most {} s for the database, and gets 503 after that. Exit codes: 0 after
SIGTERM or Ctrl-C, 2 for a configuration error, 3 when the database cannot be used.
",
        DATABASE_TIMEOUT.as_secs()
    )
}

pub struct Config {
    pub database: tokio_postgres::Config,
    pub listen: SocketAddr,
    /// The bearer token of POST /links; without one, the endpoint does not exist.
    pub token: Option<String>,
    pub pool_size: usize,
}

impl Config {
    /// Reads DATABASE_URL, LISTEN, SNOWLINK_HTTP_TOKEN and SNOWLINK_HTTP_POOL_SIZE.
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

        let token = match lookup("SNOWLINK_HTTP_TOKEN") {
            Some(token) if token.len() < MIN_TOKEN_LENGTH => {
                return Err(format!(
                    "SNOWLINK_HTTP_TOKEN has {} characters, fewer than {MIN_TOKEN_LENGTH}: \
                     set a longer one, or unset it to turn POST /links off",
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
        ])
        .unwrap();
        assert_eq!(config.database.get_application_name(), Some("redirects"));
        assert_eq!(config.listen, "0.0.0.0:80".parse().unwrap());
        assert_eq!(config.token.as_deref(), Some("a-token-of-enough-length"));
        assert_eq!(config.pool_size, 32);
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
    }

    /// The settings as the man page, the packaged settings file and the README give them: every
    /// one there, with the defaults of this file.
    #[test]
    fn the_documents_agree_with_the_code() {
        let man_page = include_str!("../../packaging/snowlink-http.1");
        let settings_file = include_str!("../../packaging/snowlink-http.env");
        let readme = include_str!("../../README.md");
        for setting in [
            "DATABASE_URL",
            "LISTEN",
            "SNOWLINK_HTTP_TOKEN",
            "SNOWLINK_HTTP_POOL_SIZE",
        ] {
            assert!(
                usage().contains(&format!("\n  {setting} ")),
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
                readme.contains(&format!("| `{setting}` |")),
                "{setting} in the README"
            );
        }
        let token_length = format!("at least {MIN_TOKEN_LENGTH} characters");
        let timeout = format!("{} s", DATABASE_TIMEOUT.as_secs());
        for document in [man_page, settings_file, readme] {
            assert!(document.contains(DEFAULT_LISTEN) && document.contains(&token_length));
        }
        assert!(man_page.contains(&timeout) && readme.contains(&timeout));
    }
}
