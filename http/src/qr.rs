//! QR codes of short links: the public short URL of a live link, as SVG or PNG.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use image::{ImageFormat, Luma};
use qrcode::render::svg;
use qrcode::QrCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::QueryParameters;
use crate::code_rule::is_custom_code;
use crate::error::{ApiError, ErrorBody};
use crate::routes::{page, App};
use crate::site::Served;

/// The sides of a PNG, in pixels, that a request may ask for, and the side when it does not.
const MIN_PNG_SIZE: u32 = 64;
const MAX_PNG_SIZE: u32 = 2048;
const DEFAULT_PNG_SIZE: u32 = 256;
/// The side of the SVG, in its own units: it scales to whatever size it is shown at.
const SVG_SIZE: u32 = 256;
/// A QR code stays right as long as its link's URL does: it may be kept a while.
const QR_CACHE_CONTROL: &str = "public, max-age=300";

/// The QR code of a link, as SVG.
#[utoipa::path(get, path = "/{code}/qr.svg", tag = "redirects",
    params(("code" = String, Path, description = "the link's code")),
    responses(
        (status = 200, description = "the QR code of the link's public short URL",
         content_type = "image/svg+xml", body = String),
        (status = 404, description = "no live link, or no public URL for it", body = ErrorBody),
        (status = 421, description = "a host that SNOWLINK_HTTP_DOMAINS does not list: a page",
         content_type = "text/html", body = String),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn qr_svg(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let url = match short_url(&app, &headers, &code).await {
        Ok(url) => url,
        Err(response) => return response,
    };
    let image = qr_code(&url)
        .render::<svg::Color>()
        .min_dimensions(SVG_SIZE, SVG_SIZE)
        .build();
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, QR_CACHE_CONTROL),
        ],
        image,
    )
        .into_response()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PngQuery {
    /// The side of the image in pixels, 64 to 2048; the image is at least large enough for its
    /// modules.
    #[param(minimum = 64, maximum = 2048, default = 256)]
    size: Option<u32>,
}

/// The QR code of a link, as PNG.
#[utoipa::path(get, path = "/{code}/qr.png", tag = "redirects",
    params(("code" = String, Path, description = "the link's code"), PngQuery),
    responses(
        (status = 200, description = "the QR code of the link's public short URL",
         content_type = "image/png", body = Vec<u8>),
        (status = 400, description = "a size out of range", body = ErrorBody),
        (status = 404, description = "no live link, or no public URL for it", body = ErrorBody),
        (status = 421, description = "a host that SNOWLINK_HTTP_DOMAINS does not list: a page",
         content_type = "text/html", body = String),
        (status = 503, description = "the database cannot answer now", body = ErrorBody)))]
pub async fn qr_png(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(code): Path<String>,
    QueryParameters(query): QueryParameters<PngQuery>,
) -> Response {
    let size = query.size.unwrap_or(DEFAULT_PNG_SIZE);
    if !(MIN_PNG_SIZE..=MAX_PNG_SIZE).contains(&size) {
        return ApiError::bad_request(format!(
            "size must be from {MIN_PNG_SIZE} to {MAX_PNG_SIZE} pixels, not {size}"
        ))
        .into_response();
    }
    let url = match short_url(&app, &headers, &code).await {
        Ok(url) => url,
        Err(response) => return response,
    };
    let image = qr_code(&url)
        .render::<Luma<u8>>()
        .min_dimensions(size, size)
        .max_dimensions(size, size)
        .build();
    let mut png = Cursor::new(Vec::new());
    if let Err(error) = image.write_to(&mut png, ImageFormat::Png) {
        tracing::error!("cannot encode a PNG: {error}");
        return ApiError::internal().into_response();
    }
    (
        [
            (CONTENT_TYPE, "image/png"),
            (CACHE_CONTROL, QR_CACHE_CONTROL),
        ],
        png.into_inner(),
    )
        .into_response()
}

/// The public short URL of `code` in the domain of the request, if the link is live there; else
/// the response that says why not.
async fn short_url(app: &App, headers: &HeaderMap, code: &str) -> Result<String, Response> {
    if !is_custom_code(code) {
        return Err(page(app, StatusCode::NOT_FOUND));
    }
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    let domain = match app.site.serves(host) {
        Served::DefaultDomain => None,
        Served::Domain(domain) => Some(domain),
        Served::Refused => return Err(page(app, StatusCode::MISDIRECTED_REQUEST)),
    };
    let Some(url) = app.site.short_url(domain.as_deref(), code) else {
        return Err(ApiError::not_found(
            "links of the default domain have no public URL: set SNOWLINK_HTTP_PUBLIC_URL",
        )
        .into_response());
    };
    match app.database.is_live(code, domain.as_deref()).await {
        Ok(true) => Ok(url),
        Ok(false) => Err(page(app, StatusCode::NOT_FOUND)),
        Err(error) => Err(ApiError::from(error).into_response()),
    }
}

/// The QR code of a short URL. A short URL (a host and a code of at most 64 characters) is far
/// below the most a QR code holds, so encoding cannot fail.
fn qr_code(url: &str) -> QrCode {
    QrCode::new(url.as_bytes()).expect("a short URL fits in a QR code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_short_url_fits() {
        let host = format!("{}.example", "h".repeat(240));
        let url = format!("https://{host}:65535/{}", "c".repeat(64));
        assert!(QrCode::new(url.as_bytes()).is_ok());
    }
}
