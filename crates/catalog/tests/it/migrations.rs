//! Schema versions: catalogs written before migrations moved to sqlx open and keep their data,
//! a newer schema is refused, an outdated PostgreSQL schema waits for `catalog migrate`, and a
//! value this build cannot read is reported, never guessed.

use meshwork_catalog::{CatalogError, CatalogStore, Location, OpenMode, SqlCatalog};
use sqlx::{AnyConnection, Connection};

use super::{Backend, id, publication};

async fn raw(location: &Location) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = match location {
        Location::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
        Location::Postgres { url, .. } => url.clone(),
    };
    AnyConnection::connect(&url).await.unwrap()
}

async fn execute(conn: &mut AnyConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn a_catalog_from_before_sqlx_migrations_opens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    std::fs::File::create(&path).unwrap();
    let location = Location::Sqlite(path);
    {
        // What the release before sqlx left: its seven migrations, recorded in its own table.
        let mut conn = raw(&location).await;
        let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        execute(&mut conn, "CREATE TABLE meshwork_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)").await;
        for (i, file) in files.iter().take(7).enumerate() {
            execute(&mut conn, &std::fs::read_to_string(file).unwrap()).await;
            execute(&mut conn, &format!("INSERT INTO meshwork_migrations VALUES ({}, '2026-11-01T00:00:00Z')", i + 1)).await;
        }
        execute(&mut conn, "INSERT INTO settings (key, value) VALUES ('mask_salt', 'kept')").await;
        conn.close().await.unwrap();
    }
    let catalog = SqlCatalog::open(&location).await.unwrap();
    assert_eq!(catalog.mask_salt().await.unwrap(), "kept");
    let status = catalog.migration_status().await.unwrap();
    assert_eq!(status.applied, status.known);
    catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
    drop(catalog);
    // Adopted once: reopening finds sqlx's history only.
    let catalog = SqlCatalog::open(&location).await.unwrap();
    assert_eq!(catalog.products().await.unwrap().len(), 1);
    let mut conn = raw(&location).await;
    let legacy: Option<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'meshwork_migrations'").fetch_optional(&mut conn).await.unwrap();
    assert_eq!(legacy, None);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused_on_every_backend() {
    for backend in Backend::all().await {
        drop(backend.open().await);
        let mut conn = raw(&backend.location).await;
        let checksum = if backend.name == "postgres" { r"'\x00'::bytea" } else { "X'00'" };
        execute(
            &mut conn,
            &format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', TRUE, {checksum}, 0)"),
        )
        .await;
        conn.close().await.unwrap();
        let error = SqlCatalog::open(&backend.location).await.unwrap_err();
        assert!(matches!(error, CatalogError::Corrupt(_)), "{}: {error}", backend.name);
        assert!(error.to_string().contains("9999") && error.to_string().contains("upgrade meshwork"), "{error}");
        backend.finish().await;
    }
}

#[tokio::test]
async fn an_outdated_postgres_schema_waits_for_an_explicit_migrate() {
    let backend = Backend::all().await.pop().unwrap();
    assert_eq!(backend.name, "postgres");
    drop(backend.open().await);
    let mut conn = raw(&backend.location).await;
    // The newest migration (0014, differential-privacy budgets) undone, as a schema of the
    // previous release.
    execute(&mut conn, "DROP TABLE privacy_budgets; DELETE FROM _sqlx_migrations WHERE version = 14").await;
    conn.close().await.unwrap();
    let error = SqlCatalog::open(&backend.location).await.unwrap_err();
    assert!(matches!(error, CatalogError::Outdated { applied: 13, known: 14 }), "{error}");
    assert!(error.to_string().contains("meshwork catalog migrate"), "{error}");
    let catalog = SqlCatalog::open_with(&backend.location, OpenMode::Upgrade).await.unwrap();
    let status = catalog.migration_status().await.unwrap();
    assert_eq!((status.applied, status.known), (14, 14));
    catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
    drop(catalog);
    backend.finish().await;
}

#[tokio::test]
async fn a_stored_value_this_build_cannot_read_is_reported_with_its_row() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
        let mut conn = raw(&backend.location).await;
        execute(&mut conn, "UPDATE products SET status = 'retired'").await;
        conn.close().await.unwrap();
        let error = catalog.products().await.unwrap_err();
        assert!(matches!(error, CatalogError::Corrupt(_)), "{error}");
        let message = error.to_string();
        assert!(message.contains("products `sales.orders` status") && message.contains("`retired`"), "{}: {message}", backend.name);
        assert!(catalog.product(&id("sales.orders")).await.is_err());
        backend.finish().await;
    }
}

#[tokio::test]
async fn an_unreadable_sqlite_file_and_an_unreachable_server_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-db"), "plain text, not sqlite").unwrap();
    let err = SqlCatalog::open(&Location::Sqlite(dir.path().join("not-a-db"))).await.unwrap_err();
    assert!(err.to_string().contains("not-a-db"), "{err}");
    let unreachable = Location::Postgres { url: "postgres://meshwork@127.0.0.1:1/mesh".into(), password: Some("s3cret-value".into()) };
    let err = SqlCatalog::open(&unreachable).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("postgres://meshwork@127.0.0.1:1/mesh"), "{message}");
    assert!(!message.contains("s3cret-value"), "the password never shows: {message}");
}
