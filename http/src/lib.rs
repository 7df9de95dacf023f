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
mod metrics;
mod qr;
mod routes;
mod server;
mod site;

// The extension's rule for codes and the names of the endpoints, compiled here from their one
// definition. Refusing a custom code is the database's part.
#[path = "../../src/shortlinks/code_rule.rs"]
#[allow(dead_code)]
mod code_rule;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;
use tracing::{error, info, warn};

use config::{Config, LogFormat};
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
            // A mistake on the command line, told as --help is, before any logging starts.
            eprintln!(
                "snowlink-http: unknown argument \"{argument}\": settings come from the \
                 environment, see --help"
            );
            ExitCode::from(EXIT_CONFIGURATION)
        }
    })
}

/// Exit codes when snowlink-http cannot start.
const EXIT_CONFIGURATION: u8 = 2;
const EXIT_DATABASE: u8 = 3;
/// How often the rate limiter forgets idle keys and the metrics' histograms are folded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Reads the configuration from the environment and serves until SIGTERM or Ctrl-C.
pub async fn serve(redirects: Redirects) -> ExitCode {
    let log_format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(error) => {
            start_logging(LogFormat::Text);
            return exit("configuration", error, EXIT_CONFIGURATION);
        }
    };
    start_logging(log_format);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return exit("configuration", error, EXIT_CONFIGURATION),
    };
    let metrics = match metrics::install() {
        Ok(metrics) => metrics,
        Err(error) => return exit("configuration", error, EXIT_CONFIGURATION),
    };
    let database = match Database::connect(&config, redirects).await {
        Ok(database) => database,
        Err(error) => return exit("database", error, EXIT_DATABASE),
    };
    let listener = match bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => return exit("configuration", error, EXIT_CONFIGURATION),
    };
    let metrics_listener = match config.metrics_listen {
        None => None,
        Some(address) => match bind(address).await {
            Ok(listener) => Some(listener),
            Err(error) => return exit("configuration", error, EXIT_CONFIGURATION),
        },
    };
    let (listen, metrics_address) = (config.listen, config.metrics_listen);
    let app = Arc::new(App::new(
        config,
        database,
        metrics,
        metrics_listener.is_some(),
    ));
    if app.token.is_some() {
        warn!(
            "SNOWLINK_HTTP_TOKEN is deprecated and goes in 0.4.0: give each client an API key \
             of snowlink_api_key_create() instead"
        );
    }
    let upkeep = app.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            upkeep.upkeep();
        }
    });

    // SIGTERM or Ctrl-C stops every listener.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_requested().await;
        let _ = stop.send(true);
    });
    let max_connections = server::max_connections();
    if let Some(metrics_listener) = metrics_listener {
        if let Some(address) = metrics_address {
            info!("metrics on http://{address}/metrics");
        }
        tokio::spawn(server::run(
            metrics_listener,
            routes::metrics_router(app.clone()),
            max_connections,
            until_stopped(stopped.clone()),
        ));
    }
    info!(
        "listening on http://{listen}, up to {max_connections} connections{}",
        if app.database.serves_api {
            ", API on"
        } else {
            ", redirects only (the role is not in snowlink_user)"
        }
    );
    let router: Router = routes::router(app);
    server::run(listener, router, max_connections, until_stopped(stopped)).await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Logs to stderr in `format`, the lines RUST_LOG asks for (by default, info and above).
fn start_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

fn exit(what: &str, message: String, code: u8) -> ExitCode {
    error!("{what} error: {message}");
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
    info!("shutting down");
}
