//! The endpoints: redirects, IDs, new links and the health check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, LOCATION, RETRY_AFTER,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::code_rule::{is_custom_code, HEALTH_ENDPOINT, IDS_ENDPOINT, LINKS_ENDPOINT};
use crate::database::{Database, Failure, NewLink};

/// The most IDs one GET /ids hands out.
const MAX_IDS: i32 = 1000;
/// The largest body of POST /links: room for the longest URL that snowlink.max_url_length allows
/// (1 MB), and the other fields.
const MAX_BODY: usize = (1 << 20) + 64 * 1024;
/// How long a client has to send the body of POST /links.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
<title>Link not found</title></head>\n<body><h1>Link not found</h1>\n<p>This short link does not \
exist, has expired or was turned off.</p></body>\n</html>\n";

pub struct App {
    pub database: Database,
    pub token: Option<String>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(&format!("/{HEALTH_ENDPOINT}"), get(healthz))
        .route(&format!("/{IDS_ENDPOINT}"), get(ids))
        .route(&format!("/{LINKS_ENDPOINT}"), post(create_link))
        // GET routes answer HEAD too, without the body.
        .route("/{code}", get(redirect))
        .fallback(not_found)
        .layer(middleware::from_fn(refuse_transfer_encoding))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// A request with both Content-Length and Transfer-Encoding can be read two ways, and a proxy in
/// front may have read it the other way: what one takes for its body, the other takes for a
/// second request (request smuggling). hyper drops the Content-Length before the request gets
/// here, so every request with Transfer-Encoding is refused, and its connection closed: nothing
/// after it on the connection is served. The one body snowlink-http takes, a small JSON object,
/// comes with Content-Length from every client.
async fn refuse_transfer_encoding(request: Request, next: Next) -> Response {
    if request.headers().contains_key(TRANSFER_ENCODING) {
        let mut response = refusal(
            StatusCode::BAD_REQUEST,
            "Transfer-Encoding is not accepted: send the body with Content-Length",
            None,
        );
        close_after(&mut response);
        return response;
    }
    next.run(request).await
}

/// Has the connection closed once the response is sent, whatever the client sent after.
fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
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

async fn redirect(
    State(app): State<Arc<App>>,
    code: Result<Path<String>, PathRejection>,
) -> Response {
    // What cannot be a code is not looked up.
    let Ok(Path(code)) = code else {
        return not_found().await;
    };
    if !is_custom_code(&code) {
        return not_found().await;
    }
    match app.database.target(&code).await {
        Ok(Some(target)) => {
            let status = StatusCode::from_u16(target.status).unwrap_or(StatusCode::FOUND);
            let (Ok(location), Ok(cache_control)) = (
                HeaderValue::from_str(&target.url),
                HeaderValue::from_str(&target.cache_control),
            ) else {
                return failure(Failure::Internal(format!(
                    "link {code} has a URL that is not a header value"
                )));
            };
            (
                status,
                [(LOCATION, location), (CACHE_CONTROL, cache_control)],
            )
                .into_response()
        }
        Ok(None) => not_found().await,
        Err(error) => failure(error),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        NOT_FOUND_PAGE,
    )
        .into_response()
}

#[derive(Deserialize)]
struct IdsQuery {
    n: Option<String>,
}

/// GET /ids?n=N: N new snowflake IDs as a JSON array of strings (JSON numbers lose precision
/// past 2^53, and snowflake IDs are far past it).
async fn ids(
    State(app): State<Arc<App>>,
    query: Result<Query<IdsQuery>, QueryRejection>,
) -> Response {
    let requested = match query {
        Ok(Query(query)) => query.n,
        Err(rejection) => {
            return refusal(StatusCode::BAD_REQUEST, &rejection.body_text(), None);
        }
    };
    let count = match requested.as_deref() {
        None => 1,
        Some(n) => match n.parse::<i32>() {
            Ok(count) if (1..=MAX_IDS).contains(&count) => count,
            _ => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    &format!("n must be a whole number from 1 to {MAX_IDS}, not \"{n}\""),
                    None,
                )
            }
        },
    };
    match app.database.ids(count).await {
        Ok(ids) => json(
            StatusCode::OK,
            serde_json::to_string(&ids).expect("strings serialize"),
        ),
        Err(error) => failure(error),
    }
}

/// The body of POST /links: the URL and the optional arguments of shorten().
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    url: String,
    code: Option<String>,
    expires_at: Option<String>,
    max_visits: Option<i64>,
    redirect_status: Option<i32>,
    force_new: Option<bool>,
    valid_from: Option<String>,
}

/// POST /links: shorten(), for holders of the token only; 201 with the link. The token is checked
/// before the body is read, and the body must come within BODY_TIMEOUT and MAX_BODY bytes; a
/// request refused before its body was read closes its connection.
async fn create_link(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(token) = &app.token else {
        return not_found().await;
    };
    if !is_authorized(request.headers(), token) {
        let mut response = refusal(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer with the token of SNOWLINK_HTTP_TOKEN",
            None,
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        close_after(&mut response);
        return response;
    }
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(mut response) => {
            close_after(&mut response);
            return response;
        }
    };
    let request: LinkRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a link request: {error}"),
                None,
            )
        }
    };
    let link = NewLink {
        url: &request.url,
        code: request.code.as_deref(),
        expires_at: request.expires_at.as_deref(),
        max_visits: request.max_visits,
        redirect_status: request.redirect_status,
        force_new: request.force_new,
        valid_from: request.valid_from.as_deref(),
    };
    match app.database.shorten(&link).await {
        Ok(link) => json(StatusCode::CREATED, link),
        Err(error) => failure(error),
    }
}

/// The body of `request`, or the response that refuses it: too large (413) or too slow (408).
async fn read_body(request: Request) -> Result<Bytes, Response> {
    match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(request.into_body(), MAX_BODY),
    )
    .await
    {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY} bytes, or was cut off"),
            None,
        )),
        Err(_) => Err(refusal(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the body did not come within {} s", BODY_TIMEOUT.as_secs()),
            None,
        )),
    }
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
fn is_authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    presented.ct_eq(token.as_bytes()).into()
}

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

fn failure(failure: Failure) -> Response {
    match failure {
        Failure::Refused {
            sqlstate,
            message,
            conflict,
        } => {
            let status = if conflict {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            refusal(status, &message, Some(&sqlstate))
        }
        Failure::Unavailable(message) => {
            eprintln!("snowlink-http: {message}");
            let mut response = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot answer now; try again",
                None,
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Failure::Internal(message) => {
            eprintln!("snowlink-http: {message}");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
        }
    }
}

/// An error as JSON: {"error": message, "sqlstate": code}.
fn refusal(status: StatusCode, message: &str, sqlstate: Option<&str>) -> Response {
    let mut body = serde_json::json!({ "error": message });
    if let Some(sqlstate) = sqlstate {
        body["sqlstate"] = sqlstate.into();
    }
    json(status, body.to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
        ],
        Body::from(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn only_the_bearer_token_authorizes() {
        let token = "0123456789abcdef";
        assert!(is_authorized(&headers("Bearer 0123456789abcdef"), token));
        assert!(!is_authorized(&headers("Bearer 0123456789abcdeF"), token));
        assert!(!is_authorized(&headers("Bearer 0123456789abcdef0"), token));
        assert!(!is_authorized(&headers("Basic 0123456789abcdef"), token));
        assert!(!is_authorized(&headers("0123456789abcdef"), token));
        assert!(!is_authorized(&HeaderMap::new(), token));
    }
}
