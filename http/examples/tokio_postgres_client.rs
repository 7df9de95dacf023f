//! The tokio-postgres snippet of docs/applications.md as a program: scripts/clients_test.sh runs
//! it against a scratch server (`DATABASE_URL`) and checks that the page shows the lines between
//! the two marks exactly as they are here.

use tokio_postgres::NoTls;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, connection) =
        tokio_postgres::connect(&std::env::var("DATABASE_URL")?, NoTls).await?;
    tokio::spawn(connection);
    // docs/applications.md: from here
    let url = "https://example.com/";
    let row = client
        .query_one("SELECT id, code FROM shorten($1)", &[&url])
        .await?;
    let (id, code): (i64, String) = (row.get(0), row.get(1));
    // None when the code does not resolve.
    let target = client
        .query_opt(
            "SELECT url, status, cache_control FROM shortlink_target($1)",
            &[&code],
        )
        .await?;
    // docs/applications.md: to here
    let target: Option<String> = target.map(|row| row.get(0));
    println!("{id} {code} {}", target.unwrap_or_default());
    Ok(())
}
