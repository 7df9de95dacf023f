//! Errors that SQL functions raise. Plain Rust builds and compares them; `raise` hands them to
//! PostgreSQL.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// The SQLSTATE classes that snowlink raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 22003 numeric_value_out_of_range
    OutOfRange,
    /// 22P02 invalid_text_representation
    InvalidText,
    /// 22023 invalid_parameter_value
    InvalidParameter,
    /// 22004 null_value_not_allowed
    NullValue,
    /// 23505 unique_violation
    UniqueViolation,
    /// 0A000 feature_not_supported
    FeatureNotSupported,
    /// 25006 read_only_sql_transaction
    ReadOnlyTransaction,
    /// 53400 configuration_limit_exceeded
    ConfigurationLimitExceeded,
    /// 55P03 lock_not_available
    LockNotAvailable,
    /// 58000 system_error: something outside PostgreSQL, such as the system clock
    SystemError,
    /// 58030 io_error
    IoError,
    /// XX000 internal_error
    InternalError,
    /// XX001 data_corrupted
    DataCorrupted,
}

impl SqlState {
    fn pg_code(self) -> PgSqlErrorCode {
        match self {
            SqlState::OutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::InvalidText => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            SqlState::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            SqlState::NullValue => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            SqlState::UniqueViolation => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            SqlState::FeatureNotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            SqlState::ReadOnlyTransaction => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            SqlState::ConfigurationLimitExceeded => {
                PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED
            }
            SqlState::LockNotAvailable => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            SqlState::SystemError => PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            SqlState::IoError => PgSqlErrorCode::ERRCODE_IO_ERROR,
            SqlState::InternalError => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            SqlState::DataCorrupted => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        }
    }
}

/// An error as PostgreSQL shows it: SQLSTATE, message, and optional detail and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl SqlError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        SqlError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises this error as a PostgreSQL ERROR; the current transaction aborts.
    pub fn raise(self, function: &'static str) -> ! {
        let mut report = ErrorReport::new(self.state.pg_code(), self.message, function);
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// Unwraps a result inside a SQL function, raising its error as a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self, function: &'static str) -> T;
}

impl<T> OrRaise<T> for Result<T, SqlError> {
    fn or_raise(self, function: &'static str) -> T {
        self.unwrap_or_else(|error| error.raise(function))
    }
}
