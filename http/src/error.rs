//! The one shape of every error the server answers, as JSON: `{"error": {"code", "message",
//! "sqlstate"}}`, and which HTTP status each database error is.

use axum::http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::database::Failure;

/// An error answered to the client.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    sqlstate: Option<String>,
    /// Seconds after which a retry may succeed.
    retry_after: Option<u64>,
    /// Whether the connection is closed after the response: the request's body, not read, is not
    /// taken for the next request.
    close: bool,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// What went wrong, for programs: bad_request, unauthorized, forbidden, not_found,
    /// method_not_allowed, request_timeout, conflict, payload_too_large, too_many_requests,
    /// internal_error or unavailable.
    #[schema(example = "conflict")]
    code: &'static str,
    /// What went wrong, for people; for a refusal of the database, PostgreSQL's message.
    #[schema(example = "custom code \"sale\" is already taken")]
    message: String,
    /// The SQLSTATE of the database's refusal, or null.
    #[schema(example = "23505")]
    sqlstate: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            sqlstate: None,
            retry_after: None,
            close: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take this method",
        )
    }

    pub fn request_timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn too_many_requests(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many requests with this key; try again later",
            )
        }
    }

    /// 500; what went wrong is logged, not told.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// The connection is closed after this response, whatever the client sent after.
    pub fn closing(self) -> ApiError {
        ApiError {
            close: true,
            ..self
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> ApiError {
        match failure {
            Failure::Refused { sqlstate, message } => {
                let Some((status, code)) = status_of_sqlstate(&sqlstate) else {
                    tracing::error!("{sqlstate}: {message}");
                    return ApiError::internal();
                };
                let error = ApiError {
                    sqlstate: Some(sqlstate),
                    ..ApiError::new(status, code, message)
                };
                match status {
                    StatusCode::SERVICE_UNAVAILABLE => ApiError {
                        retry_after: Some(1),
                        ..error
                    },
                    _ => error,
                }
            }
            Failure::ReadOnlyKey => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API key is read-only",
            ),
            Failure::Unavailable(message) => {
                tracing::warn!("{message}");
                ApiError::unavailable("the database cannot answer now; try again")
            }
        }
    }
}

/// The HTTP status of a refusal by the database, by its SQLSTATE; None for what the client cannot
/// have caused (500, logged).
fn status_of_sqlstate(sqlstate: &str) -> Option<(StatusCode, &'static str)> {
    Some(match sqlstate {
        // A taken code.
        "23505" => (StatusCode::CONFLICT, "conflict"),
        // An unknown or revoked API key.
        "28000" => (StatusCode::UNAUTHORIZED, "unauthorized"),
        // Something the caller may not do (a link's domain cannot change).
        "42501" => (StatusCode::FORBIDDEN, "forbidden"),
        _ => match &sqlstate[..2] {
            // Data exceptions and integrity violations: what the caller sent.
            "22" | "23" => (StatusCode::BAD_REQUEST, "bad_request"),
            // Read-only (a hot standby), serialization failures, deadlocks, shutdown, too many
            // connections: worth a retry.
            "25" | "40" | "53" | "57" | "08" => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => return None,
        },
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                sqlstate: self.sqlstate,
            },
        };
        let mut response = (
            self.status,
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "no-store"),
            ],
            serde_json::to_string(&body).expect("an error serializes"),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_have_their_status() {
        let status = |sqlstate| status_of_sqlstate(sqlstate).map(|(status, _)| status.as_u16());
        assert_eq!(status("23505"), Some(409));
        assert_eq!(status("23514"), Some(400));
        assert_eq!(status("22023"), Some(400));
        assert_eq!(status("22007"), Some(400));
        assert_eq!(status("28000"), Some(401));
        assert_eq!(status("42501"), Some(403));
        assert_eq!(status("25006"), Some(503));
        assert_eq!(status("40001"), Some(503));
        assert_eq!(status("57014"), Some(503));
        assert_eq!(status("42883"), None);
        assert_eq!(status("XX000"), None);
    }
}
