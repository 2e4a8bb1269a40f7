//! SQLite's `-wal` file stays bounded under writes: the automatic checkpoint
//! must run after each committing statement (see `db::returned`). A
//! property of SQLite's file, so this test has no Postgres twin.

use std::collections::HashMap;

use shared_core::Settings;
use shared_core::config::vars::ReadBy;
use shared_core::db::{Db, items, jobs, migrate, users};

#[tokio::test]
async fn the_wal_is_checkpointed_while_items_are_created_and_updated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let env = HashMap::from([("DATABASE_URL".to_owned(), format!("sqlite:{}", path.display()))]);
    let settings = Settings::from_map(ReadBy::Api, &env).unwrap().settings;
    let db = Db::connect(&settings.database).await.unwrap();
    migrate::run(&db).await.unwrap();
    let owner = users::create_if_absent(
        &db,
        users::NewUser {
            email: "owner@example.com",
            hashed_password: "x",
            full_name: None,
            is_active: true,
            is_superuser: false,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let description = "d".repeat(200);
    for i in 0..1500 {
        let item = items::create(&db, owner.id, &format!("item {i}"), Some(&description)).await.unwrap();
        let changes = items::ItemChanges { title: Some(format!("item {i}, renamed")), ..Default::default() };
        items::update(&db, item.id, changes).await.unwrap().unwrap();
    }
    assert!(jobs::cancel(&db, uuid::Uuid::new_v4()).await.unwrap().is_none());
    let wal = std::fs::metadata(dir.path().join("app.db-wal")).unwrap().len();
    // The automatic checkpoint restarts the WAL every 1000 pages (4 MB); without
    // it, these 3,000 writes left it at 32 MB.
    assert!(wal < 8 * 1024 * 1024, "-wal is {wal} bytes: the automatic checkpoint did not run");
    db.close().await;
}
