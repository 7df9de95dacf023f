//! snowlink-http: serves snowlink's short links over HTTP.
//!
//! `GET /{code}` redirects with the link's status (routes.rs); the API (api.rs) makes, lists,
//! changes and deletes links and hands out snowflake IDs for holders of an API key, every rule
//! the database's (database.rs); `GET /openapi.json` describes it all. Configured from the
//! environment (config.rs, `--help`). The binary is src/main.rs; examples/plain_redirects.rs is
//! the baseline of the benchmarks.

mod api;
mod config;
mod database;
mod error;
mod qr;
mod routes;
mod server;
mod site;

// The extension's rule for codes and the names of the endpoints, compiled here from their one
// definition. Refusing a custom code is the database's part.
#[path = "../../src/shortlinks/code_rule.rs"]
#[allow(dead_code)]
mod code_rule;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use database::Database;
pub use database::Redirects;
pub use routes::openapi_json;
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
    let listen = config.listen;
    let app = Arc::new(App::new(config, database));
    if app.token.is_some() {
        eprintln!(
            "snowlink-http: SNOWLINK_HTTP_TOKEN is deprecated and goes in 0.4.0: give each \
             client an API key of snowlink_api_key_create() instead"
        );
    }
    let forgetting = app.clone();
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            forgetting.forget_idle_keys();
        }
    });
    let max_connections = server::max_connections();
    eprintln!(
        "snowlink-http: listening on http://{listen}, up to {max_connections} connections{}",
        if app.database.serves_api {
            ", API on"
        } else {
            ", redirects only (the role is not in snowlink_user)"
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
