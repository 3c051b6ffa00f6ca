//! Every error leaves as `{"error": code, "message": text}` with a 4xx/5xx status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"error": self.code, "message": self.message}))
    }
}

impl From<engine::store::StoreError> for ApiError {
    fn from(e: engine::store::StoreError) -> Self {
        tracing::error!("store: {e}");
        ApiError::internal("storage failure")
    }
}

impl From<sfu::SfuError> for ApiError {
    fn from(e: sfu::SfuError) -> Self {
        match e {
            sfu::SfuError::BadSdp(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_sdp", m),
            sfu::SfuError::Rejected(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_sdp", m),
            other => ApiError::internal(other.to_string()),
        }
    }
}
