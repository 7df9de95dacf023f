//! The server's metrics, in the Prometheus text format at GET /metrics: requests by route, method
//! and status with their latency, redirects by status, the database pool, and database errors by
//! SQLSTATE class. Recorded through the `metrics` facade, rendered by metrics-exporter-prometheus.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const REQUESTS: &str = "snowlink_http_requests_total";
const REQUEST_SECONDS: &str = "snowlink_http_request_duration_seconds";
const REDIRECTS: &str = "snowlink_http_redirects_total";
const POOL_MAX: &str = "snowlink_http_db_pool_max_connections";
const POOL_OPEN: &str = "snowlink_http_db_pool_connections";
const POOL_IN_USE: &str = "snowlink_http_db_pool_connections_in_use";
const POOL_WAITING: &str = "snowlink_http_db_pool_waiting_requests";
const POOL_WAIT_SECONDS: &str = "snowlink_http_db_pool_wait_seconds";
const DATABASE_ERRORS: &str = "snowlink_http_db_errors_total";
const BUILD_INFO: &str = "snowlink_http_build_info";

/// Latency buckets, in seconds: a redirect takes about a millisecond, and nothing waits more than
/// the database timeout (5 s).
const SECONDS_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Installs the recorder of the process (once, at start) and describes every metric.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|builder| builder.install_recorder())
        .map_err(|error| format!("cannot set up the metrics: {error}"))?;
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(REQUEST_SECONDS, "time to answer a request, by route");
    describe_counter!(
        REDIRECTS,
        "links looked up, by the status answered: 301, 302, 307, 308, or 404 for none"
    );
    describe_gauge!(
        POOL_MAX,
        "most database connections (SNOWLINK_HTTP_POOL_SIZE)"
    );
    describe_gauge!(POOL_OPEN, "database connections open");
    describe_gauge!(POOL_IN_USE, "database connections in use by a request");
    describe_gauge!(POOL_WAITING, "requests waiting for a database connection");
    describe_histogram!(
        POOL_WAIT_SECONDS,
        "time a request waited for a database connection"
    );
    describe_counter!(
        DATABASE_ERRORS,
        "database errors by SQLSTATE class (08: connection, 57: cancelled after the timeout)"
    );
    describe_gauge!(BUILD_INFO, "the version of snowlink-http, as a label");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// A request answered: `route` is the route's path as the router has it (`/{code}`), so that the
/// labels stay few.
pub fn request(route: &str, method: &str, status: u16, seconds: f64) {
    counter!(REQUESTS, "route" => route.to_owned(), "method" => method.to_owned(),
             "status" => status.to_string())
    .increment(1);
    histogram!(REQUEST_SECONDS, "route" => route.to_owned()).record(seconds);
}

/// A link looked up for a redirect: its status, or 404.
pub fn redirect(status: u16) {
    counter!(REDIRECTS, "status" => status.to_string()).increment(1);
}

pub fn pool_wait(seconds: f64) {
    histogram!(POOL_WAIT_SECONDS).record(seconds);
}

/// The pool as it is now, set just before each scrape.
pub fn pool(status: deadpool_postgres::Status) {
    gauge!(POOL_MAX).set(status.max_size as f64);
    gauge!(POOL_OPEN).set(status.size as f64);
    gauge!(POOL_IN_USE).set(status.size.saturating_sub(status.available) as f64);
    gauge!(POOL_WAITING).set(status.waiting as f64);
}

/// A database error of a SQLSTATE class (its first two characters).
pub fn database_error(class: &str) {
    counter!(DATABASE_ERRORS, "class" => class.to_owned()).increment(1);
}
