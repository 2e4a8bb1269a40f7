//! A real client of the document: TypeScript clients generated from the
//! reference document and from ours by the generator the FastAPI template's
//! frontend uses (`@hey-api/openapi-ts`, with the frontend's settings), then
//! a file that uses every type and service method of the reference client
//! against ours, type-checked by `tsc`. A renamed schema, a field that
//! became required or a changed type fails here the way it would fail the
//! frontend's build.
//!
//! The npm tools are pinned in tests/fixtures/generated_client/package-lock.json
//! and installed on first use under the target directory (npm and the npm
//! registry are needed once; later runs reuse them).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::spawn_app;
use shared_core::db::Backend;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/generated_client");
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fastapi-template-0.10.0-openapi.json");

#[tokio::test]
async fn a_client_generated_from_ours_compiles_wherever_the_reference_client_does() {
    let app = spawn_app(Backend::Sqlite).await;
    let ours = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().text().await.unwrap();
    app.shutdown().await;

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || {
        let tools = npm_tools();
        for file in ["openapi-ts.config.mjs", "tsconfig.json", "make-check.mjs"] {
            std::fs::copy(Path::new(FIXTURES).join(file), dir.join(file)).unwrap();
        }
        std::os::unix::fs::symlink(tools.join("node_modules"), dir.join("node_modules")).unwrap();
        std::fs::copy(REFERENCE, dir.join("reference.json")).unwrap();
        std::fs::write(dir.join("ours.json"), ours).unwrap();
        for (input, output) in [("reference.json", "reference"), ("ours.json", "ours")] {
            let mut generate = Command::new("node");
            generate
                .args(["node_modules/@hey-api/openapi-ts/bin/index.cjs", "-f", "openapi-ts.config.mjs"])
                .env("OPENAPI_INPUT", input)
                .env("OPENAPI_OUTPUT", output);
            run(&mut generate, &dir, &format!("generating the client from {input}"));
        }
        let checked = run(Command::new("node").arg("make-check.mjs"), &dir, "writing check.ts");
        run(Command::new("node").args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"]), &dir, "tsc");
        checked
    })
    .await
    .unwrap();
    println!("{report}");
}

/// Runs `command` in `dir`, panicking with its output unless it succeeds.
fn run(command: &mut Command, dir: &Path, what: &str) -> String {
    let output = command.current_dir(dir).output().unwrap_or_else(|err| panic!("{what}: cannot run node: {err}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

/// The pinned npm packages, installed once per lockfile under the target
/// directory. Installed into a scratch directory and renamed into place, so
/// concurrent runs never see half an installation.
fn npm_tools() -> PathBuf {
    let lock = std::fs::read(Path::new(FIXTURES).join("package-lock.json")).unwrap();
    let digest = lock.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("npm-generated-client-{digest:016x}"));
    if root.join("node_modules/.package-lock.json").exists() {
        return root;
    }
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(Path::new(FIXTURES).join(file), scratch.path().join(file)).unwrap();
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]), scratch.path(), "npm ci");
    let installed = scratch.keep();
    if std::fs::rename(&installed, &root).is_err() {
        // Another run got there first; theirs is complete.
        let _ = std::fs::remove_dir_all(&installed);
    }
    root
}
