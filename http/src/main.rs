//! The snowlink-http server (src/lib.rs).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = snowlink_http::answer_command_line(std::env::args().skip(1)) {
        return code;
    }
    snowlink_http::serve(snowlink_http::Redirects::Shortlinks).await
}
