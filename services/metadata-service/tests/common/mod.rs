//! Helpers shared by the integration tests of this crate.

/// A new, empty database on the PostgreSQL server named by `E2E_POSTGRES_URL`
/// (scripts/test starts one; its absence fails the test rather than skipping it).
pub async fn fresh_postgres_database(prefix: &str) -> String {
    let admin = std::env::var("E2E_POSTGRES_URL").expect(
        "E2E_POSTGRES_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let db = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connects");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .expect("database created");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}
