//! The bundled SQLite is built with the options in `.cargo/config.toml`
//! (read from the file, so the two cannot drift apart). A build run outside
//! the repository, or a Dockerfile stage without the file, would silently
//! lose them. A property of SQLite's build, so this test has
//! no Postgres twin.

use std::collections::HashMap;

use shared_core::Settings;
use shared_core::config::vars::ReadBy;
use shared_core::db::{Db, Pool};

#[tokio::test]
async fn sqlite_is_built_with_the_options_of_cargo_config() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("app.db").display());
    let env = HashMap::from([("DATABASE_URL".to_owned(), url)]);
    let settings = Settings::from_map(ReadBy::Api, &env).unwrap().settings;
    let db = Db::connect(&settings.database).await.unwrap();
    let in_use = db.pool();
    let Pool::Sqlite { pool, .. } = &*in_use else { panic!("a sqlite: URL opens SQLite") };
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(pool).await.unwrap();
    // SQLite lists `-DSQLITE_X=1` as `X=1`.
    let wanted: Vec<&str> = include_str!("../../../.cargo/config.toml")
        .split(['"', ' '])
        .filter_map(|w| w.strip_prefix("-DSQLITE_"))
        .collect();
    assert!(!wanted.is_empty(), ".cargo/config.toml names no SQLite option");
    for wanted in wanted {
        assert!(options.iter().any(|option| option == wanted), "SQLite is built without {wanted}: {options:?}");
    }
    db.close().await;
}
