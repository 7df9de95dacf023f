//! The baseline of the redirect benchmark (bench/http.sh): snowlink-http answering from a plain
//! `SELECT url FROM TABLE WHERE code = $1` instead of shortlink_target(). Configured as the
//! server is; the table is the one argument.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(table) = std::env::args().nth(1) else {
        eprintln!("usage: plain_redirects TABLE");
        return ExitCode::from(2);
    };
    snowlink_http::serve(snowlink_http::Redirects::PlainTable(table)).await
}
