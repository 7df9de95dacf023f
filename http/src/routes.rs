//! The router: redirects, the API (api.rs), the health check and the OpenAPI document, which is
//! generated from the same handlers as the router, so that it names every route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::code_rule::is_custom_code;
use crate::config::Config;
use crate::database::{Caller, Database};
use crate::error::{ApiError, ErrorBody};
use crate::site::{Served, Site};
use crate::{api, qr};

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
}

impl App {
    pub fn new(config: Config, database: Database) -> App {
        App {
            database,
            site: config.site,
            token: config.token,
            not_found_page: config.not_found_page,
            rate_limiter: config
                .rate_limit
                .map(|per_minute| DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute))),
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
    /// keys cannot grow the limiter without end.
    pub fn forget_idle_keys(&self) {
        if let Some(limiter) = &self.rate_limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
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
        .routes(routes!(openapi))
        .routes(routes!(redirect))
        .routes(routes!(qr::qr_svg))
        .routes(routes!(qr::qr_png))
        .split_for_parts()
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    routes()
        .1
        .to_pretty_json()
        .expect("the document serializes")
}

pub fn router(app: Arc<App>) -> Router {
    let (router, _) = routes();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(async || ApiError::method_not_allowed())
        .layer(Extension(Arc::new(openapi_json())))
        .layer(middleware::from_fn(refuse_transfer_encoding))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
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

/// One line per request on stderr: method, path, status and time taken.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    eprintln!(
        "{method} {path} {} {:.1} ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
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
            let status = StatusCode::from_u16(target.status).unwrap_or(StatusCode::FOUND);
            let (Ok(location), Ok(cache_control)) = (
                HeaderValue::from_str(&target.url),
                HeaderValue::from_str(&target.cache_control),
            ) else {
                eprintln!("snowlink-http: link {code} has a URL that is not a header value");
                return ApiError::internal().into_response();
            };
            (
                status,
                [(LOCATION, location), (CACHE_CONTROL, cache_control)],
            )
                .into_response()
        }
        Ok(None) => page(&app, StatusCode::NOT_FOUND),
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

/// Whether the server answers and the database does.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "the database answers", content_type = "text/plain", body = String),
        (status = 503, description = "the database does not answer", content_type = "text/plain", body = String)))]
async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.database.is_healthy().await {
        (StatusCode::OK, [(CACHE_CONTROL, "no-store")], "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CACHE_CONTROL, "no-store")],
            "the database does not answer\n",
        )
            .into_response()
    }
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
