//! snowlink-http: serves snowlink's short links over HTTP.
//!
//! `GET /{code}` redirects with the link's status; `GET /ids?n=N` hands out snowflake IDs;
//! `POST /links` makes a link (with a token only); `GET /healthz` tells whether the database
//! answers. Configured by DATABASE_URL, LISTEN, SNOWLINK_HTTP_TOKEN and SNOWLINK_HTTP_POOL_SIZE;
//! see the README. The binary is src/main.rs; examples/plain_redirects.rs is the baseline of the
//! benchmarks.

mod config;
mod database;
mod routes;
mod server;

// The extension's rule for codes and the names of the endpoints, compiled here from their one
// definition. Refusing a custom code is the database's part.
#[path = "../../src/shortlinks/code_rule.rs"]
#[allow(dead_code)]
mod code_rule;

use std::process::ExitCode;
use std::sync::Arc;

use config::Config;
use database::Database;
pub use database::Redirects;
use routes::App;

/// Answers `--help` and `--version`, and refuses any other argument; None when there is none, and
/// the server is to run.
pub fn answer_command_line(mut arguments: impl Iterator<Item = String>) -> Option<ExitCode> {
    let argument = arguments.next()?;
    Some(match argument.as_str() {
        "--help" | "-h" => {
            print!("{}", config::usage());
            ExitCode::SUCCESS
        }
        "--version" | "-V" => {
            println!("snowlink-http {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            let error = format!(
                "unknown argument \"{argument}\": settings come from the environment, see --help"
            );
            exit("configuration", error, EXIT_CONFIGURATION)
        }
    })
}

/// Exit codes when snowlink-http cannot start.
const EXIT_CONFIGURATION: u8 = 2;
const EXIT_DATABASE: u8 = 3;

/// Reads the configuration from the environment and serves until SIGTERM or Ctrl-C.
pub async fn serve(redirects: Redirects) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return exit("configuration", error, EXIT_CONFIGURATION),
    };
    let database = match Database::connect(&config, redirects).await {
        Ok(database) => database,
        Err(error) => return exit("database", error, EXIT_DATABASE),
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            let error = format!("cannot listen on {}: {error}", config.listen);
            return exit("configuration", error, EXIT_CONFIGURATION);
        }
    };
    let app = Arc::new(App {
        database,
        token: config.token,
    });
    let max_connections = server::max_connections();
    eprintln!(
        "snowlink-http: listening on http://{}{}, up to {max_connections} connections",
        config.listen,
        if app.token.is_some() {
            " (POST /links on)"
        } else {
            ""
        }
    );
    server::run(
        listener,
        routes::router(app),
        max_connections,
        shutdown_requested(),
    )
    .await;
    eprintln!("snowlink-http: stopped");
    ExitCode::SUCCESS
}

fn exit(what: &str, error: String, code: u8) -> ExitCode {
    eprintln!("snowlink-http: {what} error: {error}");
    ExitCode::from(code)
}

/// SIGTERM (as from a service manager) or Ctrl-C: stop accepting, finish the requests in flight
/// (server.rs gives them a few seconds).
async fn shutdown_requested() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("snowlink-http: shutting down");
}
