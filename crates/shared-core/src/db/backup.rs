//! Online backups of a SQLite database, their inspection and their restore.
//!
//! A backup is made with `VACUUM INTO` on a connection of the live pool: it
//! reads one consistent snapshot (a WAL read transaction), so the api and the
//! worker keep writing while it runs, and the copy never mixes pages of two
//! states the way a plain file copy of a WAL database can. (For Postgres use
//! `pg_dump`.)
//!
//! Backups are named `app-YYYYMMDDTHHMMSS.mmmZ.db` (UTC, milliseconds), so
//! the name sorts by time. Files are written under a temporary name starting
//! with a dot, fsynced, integrity-checked and only then given their final
//! name, so a file matching `app-*.db` is always complete and checked.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::{Backend, Db, Pool, tables};

#[derive(Debug)]
pub struct BackupReport {
    /// The backup written, the file inspected, or the database restored.
    pub path: PathBuf,
    pub bytes: u64,
    /// What `PRAGMA integrity_check` said: always "ok" in a report.
    pub integrity: String,
    /// Rows of each data table ([`tables::DATA`]) the file has.
    pub row_counts: Vec<(String, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup and restore here are for SQLite databases only; for Postgres use pg_dump")]
    NotSqlite,
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// `PRAGMA integrity_check` reported problems, or SQLite found the file
    /// corrupt or not a database at all.
    #[error("integrity check failed: {0}")]
    Integrity(String),
}

const PREFIX: &str = "app-";
const SUFFIX: &str = ".db";
/// Temporary files of an interrupted backup are removed once this old.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);
/// The full check, stopping after 20 problems: enough to judge a bad file
/// without an error message of megabytes.
const INTEGRITY_CHECK: &str = "PRAGMA integrity_check(20)";

/// Online, WAL-safe backup of a SQLite database with `VACUUM INTO` into `dir`
/// (created if missing) as `app-YYYYMMDDTHHMMSS.mmmZ.db`.
///
/// The snapshot is written to a temporary name, fsynced, opened read-only and
/// checked with `PRAGMA integrity_check`, then given its final name without
/// ever replacing an existing file (a name already taken moves on by a
/// millisecond). Then only the newest `keep` files matching `app-*.db` in
/// `dir` are kept; the backup just made always counts as one of them, so a
/// `keep` of 0 acts as 1. Failing to delete an old backup is logged, not an
/// error: the new backup is good.
pub async fn sqlite_backup(db: &Db, dir: &Path, keep: usize) -> Result<BackupReport, BackupError> {
    let in_use = db.pool();
    let Pool::Sqlite { pool, .. } = &*in_use else { return Err(BackupError::NotSqlite) };

    let dir = std::path::absolute(dir).map_err(|e| io_err(format!("cannot resolve {}", dir.display()), e))?;
    let started = Utc::now();
    let temp = {
        let dir = dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
            remove_stale_temps(&dir);
            let temp = dir.join(format!(".{PREFIX}{}-{}{SUFFIX}.tmp", stamp(started), uuid::Uuid::new_v4().simple()));
            create_private(&temp)?;
            Ok(temp)
        })
        .await?
    };
    let temp_path = temp
        .to_str()
        .ok_or_else(|| io_err(temp.display().to_string(), io::Error::new(io::ErrorKind::InvalidInput, "not UTF-8")))?
        .to_owned();
    let guard = RemoveOnDrop(Some(temp.clone()));

    // The path is bound, not spliced into the SQL. SQLite reads it as a URI
    // only when it starts with `file:`; an absolute path starts with `/`.
    sqlx::query("VACUUM INTO $1").bind(temp_path).execute(pool).await?;

    // SQLite does not fsync the file VACUUM INTO writes.
    {
        let temp = temp.clone();
        blocking(move || sync_file(&temp)).await?;
    }
    let (integrity, row_counts) = check(&temp, &temp).await?;

    let (path, bytes) = {
        let dir = dir.clone();
        blocking(move || {
            let path = publish(&temp, &dir, started)?;
            let bytes =
                std::fs::metadata(&path).map_err(|e| io_err(format!("cannot stat {}", path.display()), e))?.len();
            sync_dir(&dir);
            prune(&dir, &path, keep.max(1));
            Ok((path, bytes))
        })
        .await?
    };
    guard.disarm();
    let elapsed_ms = (Utc::now() - started).num_milliseconds();
    tracing::info!(path = %path.display(), bytes, elapsed_ms, "SQLite backup written");
    Ok(BackupReport { path, bytes, integrity, row_counts })
}

/// Opens FILE read-only, runs `PRAGMA integrity_check` and counts rows of the
/// known tables that exist.
///
/// The file is opened `immutable`: exactly its bytes are checked (a `-wal`
/// beside it is ignored, as it would be by a copy of the file) and nothing is
/// written next to it, so it works on a read-only mount too.
pub async fn inspect(file: &Path) -> Result<BackupReport, BackupError> {
    let meta = {
        let file = file.to_path_buf();
        blocking(move || std::fs::metadata(&file).map_err(|e| io_err(format!("cannot read {}", file.display()), e)))
            .await?
    };
    if !meta.is_file() {
        return Err(io_err(
            format!("cannot inspect {}", file.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let (integrity, row_counts) = check(file, file).await?;
    Ok(BackupReport { path: file.to_path_buf(), bytes: meta.len(), integrity, row_counts })
}

/// Restores FILE over the SQLite database at `target`.
///
/// FILE is copied to a temporary file next to `target` and fsynced; that copy
/// (exactly what will go in place) must pass [`inspect`], otherwise it is
/// deleted and `target` is left untouched. Then `target`'s `-wal`, `-shm` and
/// `-journal` files are removed (a stale WAL or hot journal would otherwise
/// be replayed into the restored file), the copy is renamed over `target`
/// atomically and the directory is fsynced. The copy takes the permissions
/// and, where allowed, the owner of the file it replaces.
///
/// The caller guarantees nothing has `target` open (the scripts stop the api
/// and the worker first). The report describes the restored `target`.
pub async fn sqlite_restore(file: &Path, target: &Path) -> Result<BackupReport, BackupError> {
    let target = std::path::absolute(target).map_err(|e| io_err(format!("cannot resolve {}", target.display()), e))?;
    let file = file.to_path_buf();
    let temp = {
        let (file, target) = (file.clone(), target.clone());
        blocking(move || copy_beside(&file, &target)).await?
    };
    let guard = RemoveOnDrop(Some(temp.clone()));

    // Checked after copying: what is checked is exactly what goes in place.
    let (integrity, row_counts) = check(&temp, &file).await?;
    let bytes = {
        let (temp, target) = (temp.clone(), target.clone());
        blocking(move || {
            let bytes =
                std::fs::metadata(&temp).map_err(|e| io_err(format!("cannot stat {}", temp.display()), e))?.len();
            replace(&temp, &target)?;
            Ok(bytes)
        })
        .await?
    };
    guard.disarm();
    tracing::info!(from = %file.display(), to = %target.display(), bytes, "SQLite database restored");
    Ok(BackupReport { path: target, bytes, integrity, row_counts })
}

/// Integrity check, then row counts, on a read-only immutable connection to
/// `file`; errors name `shown`.
async fn check(file: &Path, shown: &Path) -> Result<(String, Vec<(String, i64)>), BackupError> {
    let options = SqliteConnectOptions::new().filename(file).read_only(true).immutable(true).create_if_missing(false);
    let mut conn = options.connect().await.map_err(|e| corrupt_or_db(shown, e))?;
    let counts = checked_row_counts(&mut conn, shown).await;
    conn.close().await.ok();
    Ok(("ok".to_owned(), counts?))
}

/// `PRAGMA integrity_check`, then the rows of each data table the file has;
/// one snapshot when `conn` is in a transaction. Errors name `shown`.
pub(super) async fn checked_row_counts(
    conn: &mut SqliteConnection,
    shown: &Path,
) -> Result<Vec<(String, i64)>, BackupError> {
    let (lines, counts) = check_on(conn).await.map_err(|e| corrupt_or_db(shown, e))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(counts)
    } else {
        let problems = if lines.is_empty() { "no output".to_owned() } else { lines.join("; ") };
        Err(BackupError::Integrity(format!("{}: {problems}", shown.display())))
    }
}

async fn check_on(conn: &mut SqliteConnection) -> Result<(Vec<String>, Vec<(String, i64)>), sqlx::Error> {
    let lines: Vec<String> = sqlx::query_scalar(INTEGRITY_CHECK).fetch_all(&mut *conn).await?;
    if !(lines.len() == 1 && lines[0] == "ok") {
        return Ok((lines, Vec::new()));
    }
    let counts = tables::row_counts_on(conn, Backend::Sqlite).await?;
    let counts = counts.into_iter().map(|(table, rows)| (table.to_owned(), rows)).collect();
    Ok((lines, counts))
}

/// SQLITE_CORRUPT and SQLITE_NOTADB (any extended code) mean the file is
/// bad, not that the database misbehaved.
fn corrupt_or_db(file: &Path, err: sqlx::Error) -> BackupError {
    let primary = err
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff);
    match primary {
        Some(11 | 26) => BackupError::Integrity(format!("{}: {err}", file.display())),
        _ => BackupError::Database(err),
    }
}

/// `20261122T101530.123Z`: UTC, fixed width, so names sort by time.
fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// The time in a backup's name (also the older form without milliseconds).
fn parse_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.fZ").ok().map(|t| t.and_utc())
}

fn is_backup_name(name: &str) -> bool {
    name.len() > PREFIX.len() + SUFFIX.len() && name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

/// Gives the checked temporary file its final name, never replacing a file:
/// a hard link fails if the name exists (then the next millisecond is
/// tried); where hard links are not supported, a check then a rename.
fn publish(temp: &Path, dir: &Path, started: DateTime<Utc>) -> Result<PathBuf, BackupError> {
    let mut at = started;
    for _ in 0..10_000 {
        let path = dir.join(format!("{PREFIX}{}{SUFFIX}", stamp(at)));
        match std::fs::hard_link(temp, &path) {
            Ok(()) => {
                std::fs::remove_file(temp).map_err(|e| io_err(format!("cannot remove {}", temp.display()), e))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) if !path.exists() => {
                std::fs::rename(temp, &path)
                    .map_err(|e| io_err(format!("cannot rename {} to {}", temp.display(), path.display()), e))?;
                return Ok(path);
            }
            Err(_) => {}
        }
        at += TimeDelta::milliseconds(1);
    }
    Err(io_err(
        format!("cannot name a backup in {}", dir.display()),
        io::Error::new(io::ErrorKind::AlreadyExists, "every candidate name is taken"),
    ))
}

/// Keeps `just_made` and the newest `keep - 1` other `app-*.db` files (by the
/// time in the name, or the modification time for names without one).
fn prune(dir: &Path, just_made: &Path, keep: usize) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot list backups to prune");
            return;
        }
    };
    let mut others: Vec<(DateTime<Utc>, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !is_backup_name(&name) || e.path() == just_made {
                return None;
            }
            let at = parse_name(&name)
                .or_else(|| e.metadata().and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            Some((at, name, e.path()))
        })
        .collect();
    others.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    for (_, _, path) in others.into_iter().skip(keep.saturating_sub(1)) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "old backup removed"),
            Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot remove old backup"),
        }
    }
}

/// Removes `.app-*.db.tmp` files left by a backup interrupted long ago.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(&format!(".{PREFIX}")) && name.ends_with(".tmp")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP_AGE));
        if old && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(path = %entry.path().display(), "stale temporary backup file removed");
        }
    }
}

/// Copies `file` to a new temporary file in `target`'s directory, fsynced.
fn copy_beside(file: &Path, target: &Path) -> Result<PathBuf, BackupError> {
    let meta = std::fs::metadata(file).map_err(|e| io_err(format!("cannot read {}", file.display()), e))?;
    if !meta.is_file() {
        return Err(io_err(
            format!("cannot restore {}", file.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(file), std::fs::canonicalize(target))
        && a == b
    {
        return Err(io_err(
            format!("cannot restore {} over itself", file.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "the backup is the target database"),
        ));
    }
    let dir = parent_dir(target);
    let name = target.file_name().map_or_else(|| "db".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.restore-{}.tmp", uuid::Uuid::new_v4().simple()));
    let guard = RemoveOnDrop(Some(temp.clone()));
    std::fs::copy(file, &temp)
        .map_err(|e| io_err(format!("cannot copy {} to {}", file.display(), temp.display()), e))?;
    sync_file(&temp)?;
    guard.disarm();
    Ok(temp)
}

/// Moves the checked copy over `target`: its sidecar files first, then an
/// atomic rename, then an fsync of the directory.
fn replace(temp: &Path, target: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(target) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| io_err(format!("cannot set the permissions of {}", temp.display()), e))?;
        if let Err(err) = std::os::unix::fs::chown(temp, Some(meta.uid()), Some(meta.gid())) {
            tracing::warn!(
                target = %target.display(), uid = meta.uid(), gid = meta.gid(), error = %err,
                "the restored database keeps the restoring user as owner"
            );
        }
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut sidecar = target.as_os_str().to_owned();
        sidecar.push(suffix);
        let sidecar = PathBuf::from(sidecar);
        match std::fs::remove_file(&sidecar) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("cannot remove {}", sidecar.display()), e)),
        }
    }
    std::fs::rename(temp, target)
        .map_err(|e| io_err(format!("cannot rename {} to {}", temp.display(), target.display()), e))?;
    sync_dir(&parent_dir(target));
    Ok(())
}

/// Creates PATH empty and readable by its owner only. A backup holds every
/// password hash and token secret the database does, and `VACUUM INTO` accepts
/// an existing empty file and keeps its mode, where a file it created itself
/// would get the umask's (usually world-readable) one.
fn create_private(path: &Path) -> Result<(), BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|e| io_err(format!("cannot create {}", path.display()), e))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(format!("cannot fsync {}", path.display()), e))
}

/// Makes a rename or a new name durable. Best effort: not every platform or
/// filesystem can fsync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(err) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %err, "cannot fsync directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn io_err(context: String, err: io::Error) -> BackupError {
    BackupError::Io(context, err)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| io_err("file task failed".into(), io::Error::other(e)))?
}

/// Deletes a temporary file on every early return (and on cancellation).
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_parse_back() {
        let a = DateTime::parse_from_rfc3339("2026-11-22T10:15:30.123Z").map(|t| t.to_utc()).ok();
        let b = a.map(|t| t + TimeDelta::milliseconds(900));
        let (Some(a), Some(b)) = (a, b) else { panic!("valid times") };
        let (na, nb) = (format!("app-{}.db", stamp(a)), format!("app-{}.db", stamp(b)));
        assert_eq!(na, "app-20261122T101530.123Z.db");
        assert!(na < nb);
        assert_eq!(parse_name(&na), Some(a));
        assert!(parse_name("app-20261122T101530Z.db").is_some());
        assert!(parse_name("app-manual.db").is_none());
        assert!(is_backup_name(&na));
        assert!(!is_backup_name(".app-x.db.tmp"));
        assert!(!is_backup_name("app-x.db-wal"));
    }
}
