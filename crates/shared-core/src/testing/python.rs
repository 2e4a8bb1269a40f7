//! The Python interpreter of the test suite's own virtualenv, made on first
//! use by `scripts/test-python.py` from the pinned requirement files, so
//! `cargo test` needs nothing installed by hand but `python3` itself.
//!
//! ```ignore
//! let python = shared_core::testing::python::interpreter(env!("CARGO_TARGET_TMPDIR"));
//! std::process::Command::new(python).args(["-c", "import jwt"]).status();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The script that makes the virtualenv, in this repository.
pub fn provisioning_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-python.py")
}

/// `<target_tmpdir>/test-python/bin/python`, made ready first. Pass the test
/// crate's `env!("CARGO_TARGET_TMPDIR")` (inside the cargo target directory,
/// so every test binary of the workspace shares one virtualenv). Once per
/// process; the script's lock serialises processes that start together.
///
/// # Panics
/// When the virtualenv cannot be made (no `python3`, no `venv` module, PyPI
/// unreachable): the tests that need Python fail, they are never skipped.
pub fn interpreter(target_tmpdir: &str) -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let ready = PYTHON.get_or_init(|| provision(&Path::new(target_tmpdir).join("test-python")));
    match ready {
        Ok(python) => python,
        Err(err) => panic!("{err}"),
    }
}

fn provision(venv: &Path) -> Result<PathBuf, String> {
    let script = provisioning_script();
    let output = Command::new("python3")
        .arg(&script)
        .arg("--venv")
        .arg(venv)
        .output()
        .map_err(|err| format!("cannot run python3 {}: {err}; the tests need python3 on PATH", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("python3 {} --venv {} failed:\n{stderr}", script.display(), venv.display()));
    }
    let python = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if python.is_file() { Ok(python) } else { Err(format!("{} printed no interpreter:\n{stderr}", script.display())) }
}
