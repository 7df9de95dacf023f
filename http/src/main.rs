//! The snowlink-http server (src/lib.rs).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    snowlink_http::serve(snowlink_http::Redirects::Shortlinks).await
}
