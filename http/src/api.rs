//! The API: links made, listed, read, changed and deleted, their visits, and snowflake IDs, for
//! the holders of an API key (`Authorization: Bearer KEY`). JSON in and out; IDs as strings, since
//! JSON numbers lose precision past 2^53. Each handler's `#[utoipa::path]` is its entry in
//! /openapi.json.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use crate::code_rule::{is_custom_code, IDS_ENDPOINT, LINKS_ENDPOINT};
use crate::database::{Caller, LinkChange, LinkRow, LinkSearch, NewLink};
use crate::error::{ApiError, ErrorBody};
use crate::routes::App;

/// The first segments of the API's paths: a path under them that no route takes is answered in
/// JSON, not with the page of links that do not resolve.
pub const API_SEGMENTS: [&str; 2] = [LINKS_ENDPOINT, IDS_ENDPOINT];
/// The most IDs one GET /ids hands out.
const MAX_IDS: i32 = 1000;
/// The largest request body.
const MAX_BODY: usize = 64 * 1024;
/// How long a client has to send the body of a request.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Links per page of GET /links when the request does not say.
const DEFAULT_PAGE_SIZE: i32 = 50;

/// A link.
#[derive(Serialize, ToSchema)]
pub struct Link {
    /// The link's snowflake ID.
    #[schema(example = "7403847395328000001")]
    id: String,
    #[schema(example = "spring-sale")]
    code: String,
    /// The host that serves the link; null: the default domain.
    #[schema(example = "s.example.com")]
    domain: Option<String>,
    /// Where the link is followed: its domain's, or for the default domain
    /// SNOWLINK_HTTP_PUBLIC_URL's; null when neither is known.
    #[schema(example = "https://s.example.com/spring-sale")]
    short_url: Option<String>,
    /// The target, as stored (normalized by shorten()).
    #[schema(example = "https://example.com/sale?id=42")]
    url: String,
    title: Option<String>,
    tags: Vec<String>,
    /// Whose link it is, within the server's database role: an API key's owner.
    owner: String,
    created_at: DateTime<Utc>,
    valid_from: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    max_visits: Option<i64>,
    /// 301, 302, 307 or 308.
    redirect_status: i16,
    disabled: bool,
}

impl Link {
    fn new(row: LinkRow, app: &App) -> Link {
        Link {
            id: row.id.to_string(),
            short_url: app.site.short_url(row.domain.as_deref(), &row.code),
            code: row.code,
            domain: row.domain,
            url: row.url,
            title: row.title,
            tags: row.tags,
            owner: row.owner,
            created_at: row.created_at,
            valid_from: row.valid_from,
            expires_at: row.expires_at,
            max_visits: row.max_visits,
            redirect_status: row.redirect_status,
            disabled: row.disabled,
        }
    }
}

/// The caller of an API route, from `Authorization: Bearer`: SNOWLINK_HTTP_TOKEN (compared in
/// constant time), or else an API key that the database checks in the request's transaction.
/// Taken before the body is read: a request refused here closes its connection, its body unread.
impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        if !app.database.serves_api {
            return Err(ApiError::not_found(
                "this server only redirects: its database role is not in snowlink_user",
            ));
        }
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .filter(|presented| !presented.is_empty());
        let Some(presented) = presented else {
            return Err(
                ApiError::unauthorized("send Authorization: Bearer with an API key").closing(),
            );
        };
        if let Some(token) = &app.token {
            if bool::from(presented.ct_eq(token.as_bytes())) {
                return Ok(Caller::Token);
            }
        }
        match std::str::from_utf8(presented) {
            Ok(key) => Ok(Caller::ApiKey(key.to_owned())),
            Err(_) => Err(ApiError::unauthorized("API key is unknown or revoked").closing()),
        }
    }
}

/// A JSON body: at most MAX_BODY bytes (413), sent within BODY_TIMEOUT (408), and an object of
/// the route's fields, none unknown (400). Refusals before the whole body was read close the
/// connection.
pub struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &Arc<App>) -> Result<JsonBody<T>, ApiError> {
        let body = read_body(request).await.map_err(ApiError::closing)?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| {
                ApiError::bad_request(format!(
                    "the body is not a JSON object of this route's fields: {error}"
                ))
            })
    }
}

async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(request.into_body(), MAX_BODY),
    )
    .await
    {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::payload_too_large(format!(
            "the body is larger than {MAX_BODY} bytes, or was cut off"
        ))),
        Err(_) => Err(ApiError::request_timeout(format!(
            "the body did not come within {} s",
            BODY_TIMEOUT.as_secs()
        ))),
    }
}

/// Query parameters, none unknown (400).
pub struct QueryParameters<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParameters<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::from_request_parts(parts, state)
            .await
            .map(|Query(query)| QueryParameters(query))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A code from the path; what cannot be a code is no link (404), without asking the database.
fn link_code(code: &str) -> Result<&str, ApiError> {
    if is_custom_code(code) {
        Ok(code)
    } else {
        Err(no_link(code))
    }
}

fn no_link(code: &str) -> ApiError {
    ApiError::not_found(format!("no link \"{code}\" of this key's owner"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdsQuery {
    /// How many IDs, 1 to 1000.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 1000, default = 1)]
    n: Option<String>,
}

/// New snowflake IDs, as a JSON array of strings.
#[utoipa::path(get, path = "/ids", tag = "ids", params(IdsQuery), security(("api_key" = [])),
    responses(
        (status = 200, description = "the IDs", body = Vec<String>,
         example = json!(["7403847395328000001", "7403847395328000002"])),
        (status = 400, description = "n is not from 1 to 1000", body = ErrorBody),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 429, description = "too many requests with this key", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn ids(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParameters(query): QueryParameters<IdsQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    app.limit_rate(&caller)?;
    let count = match query.n.as_deref() {
        None => 1,
        Some(n) => match n.parse::<i32>() {
            Ok(count) if (1..=MAX_IDS).contains(&count) => count,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "n must be a whole number from 1 to {MAX_IDS}, not \"{n}\""
                )))
            }
        },
    };
    Ok(Json(app.database.ids(&caller, count).await?))
}

/// The body of POST /links: the arguments of shorten().
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLinkBody {
    /// The target: http or https, at most snowlink.max_url_length bytes.
    #[schema(example = "https://example.com/sale?id=42")]
    url: String,
    /// A custom code (1 to 64 of 0-9 A-Z a-z _ -); without one, a code is generated.
    #[schema(example = "spring-sale")]
    code: Option<String>,
    title: Option<String>,
    tags: Option<Vec<String>>,
    /// The host that serves the link; without one, the default domain.
    domain: Option<String>,
    /// A timestamptz, best with an offset: 2027-01-01T00:00:00Z.
    expires_at: Option<String>,
    /// A timestamptz; the link resolves from then on.
    valid_from: Option<String>,
    max_visits: Option<i64>,
    /// 301, 302 (the default), 307 or 308.
    redirect_status: Option<i32>,
    /// A new link even when the owner has a live one for the URL with the same options.
    force_new: Option<bool>,
}

/// Makes a link with shorten(): a new one (201), or the owner's live link with the same URL and
/// options (201 too, the same link).
#[utoipa::path(post, path = "/links", tag = "links", request_body = NewLinkBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "the link", body = Link,
         headers(("Location" = String, description = "the link in the API"))),
        (status = 400, description = "a URL, code, time or field that shorten() refuses", body = ErrorBody),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 403, description = "a read-only key", body = ErrorBody),
        (status = 409, description = "the custom code is taken", body = ErrorBody),
        (status = 413, description = "a body over 64 KiB", body = ErrorBody),
        (status = 429, description = "too many requests with this key", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn create_link(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewLinkBody>,
) -> Result<Response, ApiError> {
    app.limit_rate(&caller)?;
    let link = NewLink {
        url: &body.url,
        code: body.code.as_deref(),
        title: body.title.as_deref(),
        tags: body.tags.as_deref(),
        domain: body.domain.as_deref(),
        expires_at: body.expires_at.as_deref(),
        valid_from: body.valid_from.as_deref(),
        max_visits: body.max_visits,
        redirect_status: body.redirect_status,
        force_new: body.force_new,
    };
    let link = Link::new(app.database.shorten(&caller, &link).await?, &app);
    let mut location = format!("/links/{}", link.code);
    if let Some(domain) = &link.domain {
        location.push_str(&format!("?domain={domain}"));
    }
    let mut response = (StatusCode::CREATED, Json(link)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Links whose code, URL or title holds this text, in any case.
    search: Option<String>,
    /// Links with this tag.
    tag: Option<String>,
    /// Links of this domain; without it, of every domain.
    domain: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Links per page, 1 to 1000.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<i32>,
}

/// A page of links.
#[derive(Serialize, ToSchema)]
pub struct LinkPage {
    /// Newest first.
    links: Vec<Link>,
    /// The `after` of the next page; null on the last page. A full page may be followed by an
    /// empty one.
    next: Option<String>,
}

/// The key's owner's links, newest first, a page at a time (shortlinks_list()).
#[utoipa::path(get, path = "/links", tag = "links", params(ListQuery), security(("api_key" = [])),
    responses(
        (status = 200, description = "a page of links", body = LinkPage),
        (status = 400, description = "a limit, cursor or domain that is not valid", body = ErrorBody),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn list_links(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParameters(query): QueryParameters<ListQuery>,
) -> Result<Json<LinkPage>, ApiError> {
    let after_id = match query.after.as_deref() {
        None => None,
        Some(after) => Some(after.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "after must be the next of a page, a whole number, not \"{after}\""
            ))
        })?),
    };
    let page_size = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let search = LinkSearch {
        search: query.search.as_deref(),
        tag: query.tag.as_deref(),
        domain: query.domain.as_deref(),
        after_id,
        page_size,
    };
    let rows = app.database.links(&caller, &search).await?;
    let next = match rows.last() {
        Some(last) if rows.len() == usize::try_from(page_size).unwrap_or(0) => {
            Some(last.id.to_string())
        }
        _ => None,
    };
    let links = rows.into_iter().map(|row| Link::new(row, &app)).collect();
    Ok(Json(LinkPage { links, next }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DomainQuery {
    /// The link's domain; without it, the default domain.
    domain: Option<String>,
}

/// One of the key's owner's links.
#[utoipa::path(get, path = "/links/{code}", tag = "links",
    params(("code" = String, Path, description = "the link's code"), DomainQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "the link", body = Link),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 404, description = "no such link of the key's owner", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn get_link(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(code): Path<String>,
    QueryParameters(query): QueryParameters<DomainQuery>,
) -> Result<Json<Link>, ApiError> {
    let code = link_code(&code)?;
    match app
        .database
        .link(&caller, code, query.domain.as_deref())
        .await?
    {
        Some(row) => Ok(Json(Link::new(row, &app))),
        None => Err(no_link(code)),
    }
}

/// The body of PATCH /links/{code}: the fields to change. A field left out stays as it is; null
/// clears title, valid_from, expires_at or max_visits.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkChangeBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    title: Option<Option<String>>,
    /// Replaces the tags; [] removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    max_visits: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    redirect_status: Option<Option<i32>>,
    /// true stops the link, false starts it again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    disabled: Option<Option<bool>>,
}

/// A field that is present, even as null: Some(None) for null, None when left out.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::deserialize(deserializer).map(Some)
}

impl LinkChangeBody {
    /// The arguments of shortlink_update(): each field's value, and the fields given as null in
    /// `clear` (shortlink_update() refuses those that cannot be cleared).
    fn change(&self) -> LinkChange<'_> {
        let nulls = [
            ("url", matches!(self.url, Some(None))),
            ("title", matches!(self.title, Some(None))),
            ("tags", matches!(self.tags, Some(None))),
            ("expires_at", matches!(self.expires_at, Some(None))),
            ("valid_from", matches!(self.valid_from, Some(None))),
            ("max_visits", matches!(self.max_visits, Some(None))),
            (
                "redirect_status",
                matches!(self.redirect_status, Some(None)),
            ),
            ("disabled", matches!(self.disabled, Some(None))),
        ];
        let clear = nulls
            .into_iter()
            .filter_map(|(name, null)| null.then_some(name))
            .collect();
        LinkChange {
            url: self.url.as_ref().and_then(Option::as_deref),
            title: self.title.as_ref().and_then(Option::as_deref),
            tags: self.tags.as_ref().and_then(Option::as_deref),
            expires_at: self.expires_at.as_ref().and_then(Option::as_deref),
            valid_from: self.valid_from.as_ref().and_then(Option::as_deref),
            max_visits: self.max_visits.flatten(),
            redirect_status: self.redirect_status.flatten(),
            disabled: self.disabled.flatten(),
            clear,
        }
    }
}

/// Changes a link (shortlink_update(), and shortlink_disable() for `disabled`): the link as it is
/// now. A redirect of the code sees the change from then on.
#[utoipa::path(patch, path = "/links/{code}", tag = "links", request_body = LinkChangeBody,
    params(("code" = String, Path, description = "the link's code"), DomainQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "the link, changed", body = Link),
        (status = 400, description = "a value that shortlink_update() refuses", body = ErrorBody),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 403, description = "a read-only key", body = ErrorBody),
        (status = 404, description = "no such link of the key's owner", body = ErrorBody),
        (status = 413, description = "a body over 64 KiB", body = ErrorBody),
        (status = 429, description = "too many requests with this key", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn change_link(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(code): Path<String>,
    QueryParameters(query): QueryParameters<DomainQuery>,
    JsonBody(body): JsonBody<LinkChangeBody>,
) -> Result<Json<Link>, ApiError> {
    app.limit_rate(&caller)?;
    let code = link_code(&code)?;
    match app
        .database
        .change_link(&caller, code, query.domain.as_deref(), &body.change())
        .await?
    {
        Some(row) => Ok(Json(Link::new(row, &app))),
        None => Err(no_link(code)),
    }
}

/// Deletes a link and its visits (shortlink_delete()): its code resolves to nothing from then on.
#[utoipa::path(delete, path = "/links/{code}", tag = "links",
    params(("code" = String, Path, description = "the link's code"), DomainQuery),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 403, description = "a read-only key", body = ErrorBody),
        (status = 404, description = "no such link of the key's owner", body = ErrorBody),
        (status = 429, description = "too many requests with this key", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn delete_link(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(code): Path<String>,
    QueryParameters(query): QueryParameters<DomainQuery>,
) -> Result<StatusCode, ApiError> {
    app.limit_rate(&caller)?;
    let code = link_code(&code)?;
    if app
        .database
        .delete_link(&caller, code, query.domain.as_deref())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_link(code))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VisitsQuery {
    /// The link's domain; without it, the default domain.
    domain: Option<String>,
    /// The first day (UTC, YYYY-MM-DD); without it, the day the link was made.
    from: Option<String>,
    /// The last day; without it, today (UTC).
    to: Option<String>,
}

/// A link's visits.
#[derive(Serialize, ToSchema)]
pub struct LinkVisits {
    /// Every visit counted.
    visits: i64,
    first_visit_at: Option<DateTime<Utc>>,
    last_visit_at: Option<DateTime<Utc>>,
    /// Visits per day (UTC) from `from` to `to`, 0 for a day without; none for a link with
    /// max_visits.
    days: Vec<DayVisits>,
}

#[derive(Serialize, ToSchema)]
struct DayVisits {
    day: NaiveDate,
    visits: i64,
}

/// A link's visits: in all (shortlink_stats()) and per day (shortlink_daily_visits()).
#[utoipa::path(get, path = "/links/{code}/visits", tag = "links",
    params(("code" = String, Path, description = "the link's code"), VisitsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "the visits", body = LinkVisits),
        (status = 400, description = "a day that is not a date, or a range over 100 years", body = ErrorBody),
        (status = 401, description = "no key, or a revoked one", body = ErrorBody),
        (status = 404, description = "no such link of the key's owner", body = ErrorBody),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn link_visits(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(code): Path<String>,
    QueryParameters(query): QueryParameters<VisitsQuery>,
) -> Result<Json<LinkVisits>, ApiError> {
    let code = link_code(&code)?;
    let Some(visits) = app
        .database
        .visits(
            &caller,
            code,
            query.domain.as_deref(),
            query.from.as_deref(),
            query.to.as_deref(),
        )
        .await?
    else {
        return Err(no_link(code));
    };
    Ok(Json(LinkVisits {
        visits: visits.visits,
        first_visit_at: visits.first_visit_at,
        last_visit_at: visits.last_visit_at,
        days: visits
            .days
            .into_iter()
            .map(|(day, visits)| DayVisits { day, visits })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_clears_what_is_null_and_keeps_what_is_left_out() {
        let body: LinkChangeBody = serde_json::from_str(
            r#"{"title": null, "url": "https://example.com/", "max_visits": null, "tags": []}"#,
        )
        .unwrap();
        let change = body.change();
        assert_eq!(change.clear, ["title", "max_visits"]);
        assert_eq!(change.url, Some("https://example.com/"));
        assert_eq!(change.tags, Some(&[][..]));
        assert_eq!((change.expires_at, change.disabled), (None, None));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<LinkChangeBody>(r#"{"code": "x"}"#).is_err());
        assert!(serde_json::from_str::<NewLinkBody>(r#"{"url": "u", "colour": 1}"#).is_err());
    }
}
