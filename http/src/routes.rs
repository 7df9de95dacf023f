//! The router: redirects, the API (api.rs), the health check and the OpenAPI document, which is
//! generated from the same handlers as the router, so that it names every route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{error, info, info_span, Instrument};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::code_rule::{is_custom_code, METRICS_ENDPOINT};
use crate::config::Config;
use crate::database::{Caller, Database};
use crate::error::{ApiError, ErrorBody};
use crate::site::{Served, Site};
use crate::{api, metrics, qr};

/// The page of links that do not resolve, unless SNOWLINK_HTTP_NOT_FOUND_PAGE names another:
/// styled in the page itself, so that it loads nothing else.
const NOT_FOUND_PAGE: &str = include_str!("pages/not_found.html");
/// What the built-in page may load: nothing but its own style.
const NOT_FOUND_PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

pub struct App {
    pub database: Database,
    pub site: Site,
    pub token: Option<String>,
    not_found_page: Option<String>,
    /// Requests per API key to /ids and the routes that write.
    rate_limiter: Option<DefaultKeyedRateLimiter<String>>,
    metrics: PrometheusHandle,
    /// Whether GET /metrics is served on METRICS_LISTEN rather than with the other routes.
    metrics_elsewhere: bool,
}

impl App {
    pub fn new(
        config: Config,
        database: Database,
        metrics: PrometheusHandle,
        metrics_elsewhere: bool,
    ) -> App {
        App {
            database,
            site: config.site,
            token: config.token,
            not_found_page: config.not_found_page,
            rate_limiter: config
                .rate_limit
                .map(|per_minute| DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute))),
            metrics,
            metrics_elsewhere,
        }
    }

    /// 429 with Retry-After when the caller's key has used up its requests for now.
    pub fn limit_rate(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(());
        };
        let key = match caller {
            Caller::ApiKey(key) => key.clone(),
            // No key starts with a space.
            Caller::Token => " token".to_owned(),
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many_requests(wait.as_secs() + 1)
        })
    }

    /// Forgets the keys that have not been used for a while, so that a client sending made-up
    /// keys cannot grow the limiter without end, and folds the metrics' histograms.
    pub fn upkeep(&self) {
        if let Some(limiter) = &self.rate_limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.metrics.run_upkeep();
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "snowlink-http",
        description = "Short links of a PostgreSQL database with the snowlink extension: \
                       redirects, and an API for the holders of an API key.",
        license(name = "PostgreSQL", identifier = "PostgreSQL")
    ),
    modifiers(&BearerKey),
    tags(
        (name = "redirects", description = "following short links; anyone"),
        (name = "links", description = "making and managing links; an API key"),
        (name = "ids", description = "snowflake IDs; an API key"),
        (name = "service", description = "the server itself")
    )
)]
struct ApiDocument;

/// The security scheme of the API: `Authorization: Bearer KEY`.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a key of snowlink_api_key_create()"))
                    .build(),
            ),
        );
    }
}

/// The routes and their OpenAPI document.
fn routes() -> (Router<Arc<App>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDocument::openapi())
        .routes(routes!(api::create_link, api::list_links))
        .routes(routes!(api::get_link, api::change_link, api::delete_link))
        .routes(routes!(api::link_visits))
        .routes(routes!(api::ids))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi))
        .routes(routes!(redirect))
        .routes(routes!(qr::qr_svg))
        .routes(routes!(qr::qr_png))
        .split_for_parts()
}

pub fn router(app: Arc<App>) -> Router {
    let (router, document) = routes();
    let document = document.to_pretty_json().expect("the document serializes");
    observed(
        router
            .fallback(not_found)
            .method_not_allowed_fallback(async || ApiError::method_not_allowed())
            .layer(Extension(Arc::new(document)))
            .layer(middleware::from_fn(refuse_transfer_encoding)),
    )
    .with_state(app)
}

/// GET /metrics alone, for METRICS_LISTEN.
pub fn metrics_router(app: Arc<App>) -> Router {
    observed(
        Router::new()
            .route(
                &format!("/{METRICS_ENDPOINT}"),
                axum::routing::get(render_metrics),
            )
            .fallback(async || ApiError::not_found("this address serves GET /metrics only")),
    )
    .with_state(app)
}

/// Each request with its ID (the client's X-Request-Id, or a new UUID), returned in the response,
/// on every log line written while it is served; counted and timed in the metrics.
fn observed(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// A request with both Content-Length and Transfer-Encoding can be read two ways, and a proxy in
/// front may have read it the other way: what one takes for its body, the other takes for a
/// second request (request smuggling). hyper drops the Content-Length before the request gets
/// here, so every request with Transfer-Encoding is refused, and its connection closed: nothing
/// after it on the connection is served. The bodies snowlink-http takes, small JSON objects, come
/// with Content-Length from every client.
async fn refuse_transfer_encoding(request: Request, next: Next) -> Response {
    if request.headers().contains_key(TRANSFER_ENCODING) {
        return ApiError::bad_request(
            "Transfer-Encoding is not accepted: send the body with Content-Length",
        )
        .closing()
        .into_response();
    }
    next.run(request).await
}

/// One log line per request, in a span with its ID, method and path that every line written
/// while it is served carries; its status and time go to the metrics too, by route.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span =
        info_span!("request", id = %request_id, method = %method, path = %request.uri().path());
    let response = next.run(request).instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    metrics::request(&route, method.as_str(), status, seconds);
    span.in_scope(|| info!(status, ms = seconds * 1000.0, "answered"));
    response
}

/// Follows a short link: its status (301, 302, 307 or 308) with Location and Cache-Control, and
/// the visit counted. Looked up in the domain of the request's Host (SNOWLINK_HTTP_DOMAINS);
/// answers HEAD too, as GET without the body, and counts that visit as well.
#[utoipa::path(get, path = "/{code}", tag = "redirects",
    params(("code" = String, Path, description = "the link's code")),
    responses(
        (status = 301, description = "the link, moved for good",
         headers(("Location" = String), ("Cache-Control" = String))),
        (status = 302, description = "the link (the default status)",
         headers(("Location" = String), ("Cache-Control" = String))),
        (status = 307, description = "the link, the method kept",
         headers(("Location" = String), ("Cache-Control" = String))),
        (status = 308, description = "the link, moved for good, the method kept",
         headers(("Location" = String), ("Cache-Control" = String))),
        (status = 404, description = "no live link: a page", content_type = "text/html", body = String),
        (status = 421, description = "a host that SNOWLINK_HTTP_DOMAINS does not list: a page",
         content_type = "text/html", body = String),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
async fn redirect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    code: Result<Path<String>, PathRejection>,
) -> Response {
    // What cannot be a code is not looked up.
    let Ok(Path(code)) = code else {
        return page(&app, StatusCode::NOT_FOUND);
    };
    if !is_custom_code(&code) {
        return page(&app, StatusCode::NOT_FOUND);
    }
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    let domain = match app.site.serves(host) {
        Served::DefaultDomain => None,
        Served::Domain(domain) => Some(domain),
        Served::Refused => return page(&app, StatusCode::MISDIRECTED_REQUEST),
    };
    match app.database.target(&code, domain.as_deref()).await {
        Ok(Some(target)) => {
            metrics::redirect(target.status);
            let status = StatusCode::from_u16(target.status).unwrap_or(StatusCode::FOUND);
            let (Ok(location), Ok(cache_control)) = (
                HeaderValue::from_str(&target.url),
                HeaderValue::from_str(&target.cache_control),
            ) else {
                error!("link {code} has a URL that is not a header value");
                return ApiError::internal().into_response();
            };
            (
                status,
                [(LOCATION, location), (CACHE_CONTROL, cache_control)],
            )
                .into_response()
        }
        Ok(None) => {
            metrics::redirect(StatusCode::NOT_FOUND.as_u16());
            page(&app, StatusCode::NOT_FOUND)
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The page of links that do not resolve, with `status`: not cached, since the link may be made
/// or turned on later.
pub fn page(app: &App, status: StatusCode) -> Response {
    let mut response = (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        app.not_found_page
            .clone()
            .unwrap_or_else(|| NOT_FOUND_PAGE.to_owned()),
    )
        .into_response();
    if app.not_found_page.is_none() {
        response.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NOT_FOUND_PAGE_POLICY),
        );
    }
    response
}

/// A path that no route takes: the API's paths answer in JSON, any other gets the page.
async fn not_found(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path();
    let first_segment = path.trim_start_matches('/').split('/').next();
    if first_segment.is_some_and(|segment| api::API_SEGMENTS.contains(&segment)) {
        ApiError::not_found(format!("no route {path}")).into_response()
    } else {
        page(&app, StatusCode::NOT_FOUND)
    }
}

/// Whether the process answers: for a liveness probe, which should not restart the server when
/// the database is away.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "the server answers", content_type = "text/plain", body = String)))]
async fn healthz() -> Response {
    (StatusCode::OK, [(CACHE_CONTROL, "no-store")], "ok\n").into_response()
}

/// Whether the server can serve: the database answers and has a version of snowlink that the
/// server supports. For a readiness probe or a load balancer.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "ready", content_type = "text/plain", body = String),
        (status = 503, description = "not ready, and why", content_type = "text/plain", body = String)))]
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.database.readiness().await {
        Ok(()) => (StatusCode::OK, [(CACHE_CONTROL, "no-store")], "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CACHE_CONTROL, "no-store")],
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// The server's metrics in the Prometheus text format, unless METRICS_LISTEN serves them apart.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "the metrics", content_type = "text/plain", body = String),
        (status = 404, description = "served on METRICS_LISTEN instead", content_type = "text/html", body = String)))]
async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    if app.metrics_elsewhere {
        return page(&app, StatusCode::NOT_FOUND);
    }
    render_metrics(State(app)).await
}

async fn render_metrics(State(app): State<Arc<App>>) -> Response {
    metrics::pool(app.database.pool_status());
    (
        [
            (CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        app.metrics.render(),
    )
        .into_response()
}

/// This document: every route of the server, in OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
async fn openapi(Extension(document): Extension<Arc<String>>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        document.as_ref().clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code_rule::HTTP_ENDPOINTS;

    /// Each path of the router whose first segment could be a code is an endpoint that no code may
    /// take (code_rule.rs): a link cannot hide a route, nor a route a link.
    #[test]
    fn no_code_can_take_a_route() {
        let (_, document) = routes();
        let mut first_segments: Vec<&str> = document
            .paths
            .paths
            .keys()
            .filter_map(|path| path.trim_start_matches('/').split('/').next())
            .filter(|segment| is_custom_code(segment))
            .collect();
        first_segments.sort();
        first_segments.dedup();
        let mut endpoints = HTTP_ENDPOINTS.to_vec();
        endpoints.sort();
        assert_eq!(first_segments, endpoints);
    }
}
