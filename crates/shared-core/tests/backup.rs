#![allow(clippy::unwrap_used)]
//! SQLite backups (`VACUUM INTO` under concurrent writes), retention,
//! inspection of corrupt files and restore.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use shared_core::Settings;
use shared_core::db::backup::{BackupError, inspect, sqlite_backup, sqlite_restore};
use shared_core::db::{Db, Pool};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions, Connection};

/// Rows written before the backup, so the snapshot takes a measurable time.
const SEED_ROWS: i64 = 200_000;

/// A SQLite database opened the way the binaries open it (WAL, pool).
async fn connect(path: &Path) -> Db {
    let env: HashMap<String, String> = [
        ("ENVIRONMENT", "local".to_owned()),
        ("SECRET_KEY", "test-secret-key-of-at-least-32-bytes!".to_owned()),
        ("DATABASE_URL", format!("sqlite:{}", path.display())),
        ("DATABASE_POOL_SIZE", "4".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_map(shared_core::config::vars::ReadBy::Api, &env).unwrap().settings;
    Db::connect(&settings.database).await.unwrap()
}

fn pool(db: &Db) -> SqlitePool {
    match &*db.pool() {
        Pool::Sqlite { pool, .. } => pool.clone(),
        Pool::Postgres(_) => unreachable!("a SQLite test database"),
    }
}

/// A WAL database with an `item` table (one of the tables reports count)
/// holding `rows` rows of 100 random bytes.
async fn seeded(path: &Path, rows: i64) -> Db {
    let db = connect(path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool(&db)).await.unwrap();
    assert_eq!(mode, "wal");
    sqlx::query("CREATE TABLE item (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)").execute(&pool(&db)).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO item (payload) SELECT randomblob(100) FROM n",
    )
    .bind(rows)
    .execute(&pool(&db))
    .await
    .unwrap();
    db
}

async fn open_plain(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new().filename(path).connect().await.unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

/// `app-YYYYMMDDTHHMMSS.mmmZ.db`
fn assert_backup_name(name: &str) {
    let stamp = name.strip_prefix("app-").and_then(|s| s.strip_suffix("Z.db")).unwrap();
    let (date_time, millis) = stamp.split_once('.').unwrap();
    let (date, time) = date_time.split_once('T').unwrap();
    assert!(date.len() == 8 && time.len() == 6 && millis.len() == 3, "{name}");
    assert!([date, time, millis].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn online_backup_under_concurrent_writes_restores_everything_committed_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded(&tmp.path().join("live.db"), SEED_ROWS).await;
    let backups = tmp.path().join("backups/nested");

    // A writer committing one row per statement, all through the backup.
    let committed = Arc::new(AtomicI64::new(SEED_ROWS));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let done = sqlx::query("INSERT INTO item (payload) VALUES (randomblob(100))")
                    .execute(&pool(&db))
                    .await
                    .unwrap();
                // `execute` returns once the autocommit transaction committed.
                committed.store(done.last_insert_rowid(), Ordering::SeqCst);
            }
        })
    };
    while committed.load(Ordering::SeqCst) < SEED_ROWS + 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let max_before = committed.load(Ordering::SeqCst);
    let started = Instant::now();
    let report = sqlite_backup(&db, &backups, 3).await.unwrap();
    let took = started.elapsed();
    let max_after = committed.load(Ordering::SeqCst);
    // The writer goes on after the backup, too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed.load(Ordering::SeqCst) <= max_after {
        assert!(Instant::now() < deadline, "the writer stopped committing after the backup");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let max_final = committed.load(Ordering::SeqCst);

    println!(
        "backup of {max_before} rows: {} bytes in {took:?}; writer committed ids {max_before}..{max_after} \
         during it, {max_final} in all",
        report.bytes
    );
    assert!(max_after > max_before, "the writer was blocked during the backup");
    assert_eq!(report.integrity, "ok");
    assert!(report.path.starts_with(std::path::absolute(&backups).unwrap()));
    assert_backup_name(&file_name(&report.path));
    assert_eq!(report.bytes, std::fs::metadata(&report.path).unwrap().len());
    let (table, backed_up) = &report.row_counts[0];
    assert_eq!((report.row_counts.len(), table.as_str()), (1, "item"));
    assert!(*backed_up >= max_before && *backed_up <= max_after, "{backed_up} rows in the backup");
    // Only the backup itself: no temporary file, no -wal/-shm beside it.
    assert_eq!(names_in(&backups), vec![file_name(&report.path)]);

    // inspect agrees with the report.
    let inspected = inspect(&report.path).await.unwrap();
    assert_eq!((inspected.integrity.as_str(), &inspected.row_counts), ("ok", &report.row_counts));

    // Restore into a new file and read it as the app would.
    let target = tmp.path().join("restored/app.db");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let restored = sqlite_restore(&report.path, &target).await.unwrap();
    assert_eq!(restored.path, target);
    assert_eq!(restored.row_counts, report.row_counts);
    assert_eq!(names_in(target.parent().unwrap()), vec!["app.db".to_owned()]);

    let restored_db = connect(&target).await;
    let integrity: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&pool(&restored_db)).await.unwrap();
    assert_eq!(integrity, vec!["ok".to_owned()]);
    let (up_to_max, total, max_id): (i64, i64, i64) =
        sqlx::query_as("SELECT COUNT(*) FILTER (WHERE id <= $1), COUNT(*), MAX(id) FROM item")
            .bind(max_before)
            .fetch_one(&pool(&restored_db))
            .await
            .unwrap();
    assert_eq!(up_to_max, max_before, "every row committed before the backup is in it");
    assert!(total >= max_before && max_id >= max_before);
    assert_eq!(total, max_id, "ids are contiguous: the snapshot is one consistent state");
    // The restored database is writable.
    sqlx::query("INSERT INTO item (payload) VALUES (x'00')").execute(&pool(&restored_db)).await.unwrap();
    restored_db.close().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_only_the_newest_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded(&tmp.path().join("live.db"), 100).await;
    let dir = tmp.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Not ours: retention leaves them alone.
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    std::fs::write(dir.join("other-20200101T000000Z.db"), "keep me").unwrap();
    // An old backup of the older naming, and one with no time in its name.
    std::fs::write(dir.join("app-20200101T000000Z.db"), "old").unwrap();

    let mut made = Vec::new();
    for _ in 0..5 {
        let report = sqlite_backup(&db, &dir, 3).await.unwrap();
        made.push(file_name(&report.path));
    }
    let mut unique = made.clone();
    unique.dedup();
    assert_eq!(unique.len(), 5, "names are unique even within one second: {made:?}");
    assert!(made.windows(2).all(|w| w[0] < w[1]), "names sort by time: {made:?}");
    // A backup holds every password hash: readable by its owner only, whatever the umask.
    for name in &made[2..] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join(name)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    let mut expected: Vec<String> = made[2..].to_vec();
    expected.extend(["notes.txt".to_owned(), "other-20200101T000000Z.db".to_owned()]);
    expected.sort();
    assert_eq!(names_in(&dir), expected);

    // Two at once (same millisecond likely): both get their own file.
    let (a, b) = tokio::join!(sqlite_backup(&db, &dir, 10), sqlite_backup(&db, &dir, 10));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.path, b.path);
    assert_eq!(names_in(&dir).iter().filter(|n| n.starts_with("app-")).count(), 5);

    // keep = 1 leaves only the newest.
    let last = sqlite_backup(&db, &dir, 1).await.unwrap();
    let left: Vec<String> = names_in(&dir).into_iter().filter(|n| n.starts_with("app-")).collect();
    assert_eq!(left, vec![file_name(&last.path)]);
    db.close().await;
}

/// A copy of `good` with garbage written over its middle.
fn corrupt_copy(good: &Path, to: &Path) -> PathBuf {
    let mut bytes = std::fs::read(good).unwrap();
    let mid = bytes.len() / 2;
    let mut x: u32 = 0x1234_5678;
    for b in &mut bytes[mid - 20_000..mid + 20_000] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x.to_le_bytes()[0];
    }
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_fail_inspection_and_are_never_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded(&tmp.path().join("live.db"), 20_000).await;
    let good = sqlite_backup(&db, &tmp.path().join("backups"), 3).await.unwrap();
    db.close().await;

    let corrupt = corrupt_copy(&good.path, &tmp.path().join("corrupt.db"));
    let err = inspect(&corrupt).await.unwrap_err();
    println!("corrupt file: {err}");
    assert!(matches!(err, BackupError::Integrity(_)), "{err:?}");

    let garbage = tmp.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a_u8; 64 * 1024]).unwrap();
    let err = inspect(&garbage).await.unwrap_err();
    println!("garbage file: {err}");
    assert!(matches!(err, BackupError::Integrity(_)), "{err:?}");

    let missing = inspect(&tmp.path().join("missing.db")).await.unwrap_err();
    assert!(matches!(missing, BackupError::Io(..)), "{missing:?}");

    // A live target, with a marker row, that must survive refused restores.
    let target_dir = tmp.path().join("data");
    let target = target_dir.join("app.db");
    let live = connect(&target).await;
    sqlx::query("CREATE TABLE marker (v TEXT)").execute(&pool(&live)).await.unwrap();
    sqlx::query("INSERT INTO marker VALUES ('original')").execute(&pool(&live)).await.unwrap();
    live.close().await;
    let before = std::fs::read(&target).unwrap();
    let names_before = names_in(&target_dir);

    for bad in [&corrupt, &garbage] {
        let err = sqlite_restore(bad, &target).await.unwrap_err();
        assert!(matches!(err, BackupError::Integrity(ref m) if m.contains(bad.to_str().unwrap())), "{err:?}");
        assert_eq!(std::fs::read(&target).unwrap(), before, "the target is untouched");
        assert_eq!(names_in(&target_dir), names_before, "no temporary file is left");
    }
    let err = sqlite_restore(&target, &target).await.unwrap_err();
    assert!(matches!(err, BackupError::Io(..)), "{err:?}");

    // The good backup does go in, and a stale WAL of the old file is dropped.
    std::fs::write(target_dir.join("app.db-wal"), vec![0x77_u8; 4096]).unwrap();
    std::fs::write(target_dir.join("app.db-shm"), vec![0x77_u8; 4096]).unwrap();
    let restored = sqlite_restore(&good.path, &target).await.unwrap();
    assert_eq!(restored.row_counts, vec![("item".to_owned(), 20_000)]);
    assert_eq!(names_in(&target_dir), vec!["app.db".to_owned()]);
    let mut conn = open_plain(&target).await;
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item").fetch_one(&mut conn).await.unwrap();
    let marker: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'marker'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((items, marker), (20_000, 0));
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_not_backed_up_here() {
    let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let db = Db::new(Pool::Postgres(pool));
    let dir = tempfile::tempdir().unwrap();
    let err = sqlite_backup(&db, dir.path(), 3).await.unwrap_err();
    assert!(matches!(err, BackupError::NotSqlite), "{err:?}");
    assert!(names_in(dir.path()).is_empty());
}
