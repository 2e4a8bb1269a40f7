//! scripts/test-python.py, the one way the suite (and .ci/run) gets its Python
//! tools: several processes starting at once build the virtualenv once and
//! all get it; a changed requirement file rebuilds it. Offline: the
//! requirement file here pins nothing, so only the virtualenv is made.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn provision(venv: &Path, requirements: &Path) -> std::process::Child {
    Command::new("python3")
        .arg(shared_core::testing::python::provisioning_script())
        .arg("--venv")
        .arg(venv)
        .arg("--requirement")
        .arg(requirements)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn built(output: &Output) -> bool {
    String::from_utf8_lossy(&output.stderr).contains("creating the virtualenv")
}

#[test]
fn concurrent_first_uses_build_one_virtualenv_and_a_changed_requirement_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let requirements = dir.path().join("requirements.txt");
    std::fs::write(&requirements, "# nothing to install\n").unwrap();

    let started: Vec<_> = (0..3).map(|_| provision(&venv, &requirements)).collect();
    let outputs: Vec<Output> = started.into_iter().map(|child| child.wait_with_output().unwrap()).collect();
    let python = venv.join("bin/python");
    for output in &outputs {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), python.display().to_string());
    }
    assert_eq!(outputs.iter().filter(|o| built(o)).count(), 1, "exactly one process builds");
    let runs = Command::new(&python).args(["-c", "import sys; print(sys.prefix)"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&runs.stdout).trim(), venv.display().to_string());

    let again = provision(&venv, &requirements).wait_with_output().unwrap();
    assert!(again.status.success() && !built(&again), "a ready virtualenv is reused");

    std::fs::write(&requirements, "# nothing to install, changed\n").unwrap();
    let changed = provision(&venv, &requirements).wait_with_output().unwrap();
    assert!(changed.status.success() && built(&changed), "a changed requirement file rebuilds");
}
