#![allow(clippy::unwrap_used)]
//! Interop with the FastAPI template's own libraries, both ways:
//! - fixtures.json (made by generate.py with pwdlib and PyJWT) must verify and
//!   decode here exactly as the Python libraries said;
//! - hashes and tokens made here must verify and decode in Python
//!   (verify_password.py / verify_token.py, run by the suite's own virtualenv,
//!   which `shared_core::testing::python` makes on first use from
//!   tests/fixtures/python_interop/requirements.txt).
//!
//! Without python3 (or without PyPI on the first run) these tests fail; they
//! are never skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use shared_core::auth::{PasswordHasher, TokenKeys, Verified};
use shared_core::config::Secret;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_interop")
}

fn fixtures() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("fixtures.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

fn keys_for(secret: &str) -> TokenKeys {
    TokenKeys::new(&Secret::new(secret))
}

// ---- fixtures made by Python, checked here ----

#[tokio::test]
async fn python_password_hashes_verify() {
    let fixtures = fixtures();
    let hasher = PasswordHasher::new(2);
    let entries = fixtures["passwords"].as_array().unwrap();
    assert!(entries.len() >= 12);
    for entry in entries {
        let kind = str_of(entry, "kind");
        let password = str_of(entry, "password");
        let hash = str_of(entry, "hash");
        assert_eq!(entry["verifies"], Value::Bool(true));
        let needs_update = entry["needs_update"].as_bool().unwrap();
        assert_eq!(
            hasher.verify(password, hash).await.unwrap(),
            Verified::Valid { needs_rehash: needs_update },
            "{kind}: {hash}"
        );
        assert_eq!(hasher.verify(str_of(entry, "wrong_password"), hash).await.unwrap(), Verified::Invalid, "{kind}");
        // one character off
        let mut near = password.to_owned();
        near.pop();
        assert_eq!(hasher.verify(&near, hash).await.unwrap(), Verified::Invalid, "{kind}");
    }
}

/// pwdlib/bcrypt 5 refuse passwords over 72 bytes; older passlib deployments
/// truncated them, so a stored bcrypt hash is the hash of the first 72 bytes. We
/// check against those 72 bytes (see `auth::password`) and ask for a re-hash.
#[tokio::test]
async fn bcrypt_password_over_72_bytes_matches_its_72_byte_prefix() {
    let fixtures = fixtures();
    let over = &fixtures["bcrypt_over_72_bytes"];
    let long = str_of(over, "password");
    assert_eq!(long.len(), 73);
    assert!(str_of(over, "hash_with_bcrypt").starts_with("ValueError"));
    let prefix_hash = fixtures["passwords"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["kind"] == "bcrypt_2b" && entry["password_utf8_bytes"] == 72)
        .map(|entry| str_of(entry, "hash"))
        .unwrap();
    let hasher = PasswordHasher::new(2);
    assert_eq!(hasher.verify(long, prefix_hash).await.unwrap(), Verified::Valid { needs_rehash: true });
    let changed_inside = format!("X{}", &long[1..]);
    assert_eq!(hasher.verify(&changed_inside, prefix_hash).await.unwrap(), Verified::Invalid);
}

#[test]
fn python_tokens_are_accepted_or_rejected_as_pyjwt_does() {
    let fixtures = fixtures();
    let jwt = &fixtures["jwt"];
    let keys = keys_for(str_of(jwt, "secret"));
    let user_id = uuid::Uuid::parse_str(str_of(jwt, "user_id")).unwrap();
    let email = str_of(jwt, "email");
    let tokens = jwt["tokens"].as_array().unwrap();
    let mut seen = Vec::new();
    for fixture in tokens {
        let name = str_of(fixture, "name");
        let token = str_of(fixture, "token");
        let pyjwt_accepts = fixture["pyjwt_accepts"].as_bool().unwrap();
        seen.push(name);
        if name.starts_with("access_token") {
            let decoded = keys.decode_access_token(token);
            // PyJWT accepts the signature and exp of the non-UUID one; the template
            // then answers 403 "Could not validate credentials", as our decode does.
            if pyjwt_accepts && name != "access_token_sub_not_uuid" {
                assert_eq!(decoded.unwrap(), user_id, "{name}");
            } else {
                assert!(decoded.is_err(), "{name} must be rejected");
            }
            assert!(keys.decode_reset_token(token).is_err(), "{name} is no reset token");
        } else if name.starts_with("reset_token") {
            let decoded = keys.decode_reset_token(token);
            if pyjwt_accepts {
                assert_eq!(decoded.unwrap(), email, "{name}");
            } else {
                assert!(decoded.is_err(), "{name} must be rejected");
            }
            assert!(keys.decode_access_token(token).is_err(), "{name} is no access token");
        } else {
            panic!("unexpected token fixture {name}");
        }
    }
    for expected in [
        "access_token",
        "access_token_expired",
        "access_token_sub_not_uuid",
        "reset_token",
        "reset_token_expired",
        "reset_token_not_yet_valid",
        "access_token_wrong_secret",
        "access_token_hs384",
        "access_token_alg_none",
    ] {
        assert!(seen.contains(&expected), "fixture {expected} missing");
    }

    let token_named = |name: &str| {
        tokens.iter().find(|fixture| fixture["name"] == name).map(|fixture| str_of(fixture, "token")).unwrap()
    };
    // the reset token's exp really is a float with a fraction
    let reset = tokens.iter().find(|fixture| fixture["name"] == "reset_token").unwrap();
    assert!(str_of(reset, "payload_json").contains("\"exp\":4102444800.123456"));
    // the wrong-secret token is fine under its own secret: only the key was wrong
    assert_eq!(
        keys_for(str_of(jwt, "other_secret")).decode_access_token(token_named("access_token_wrong_secret")).unwrap(),
        user_id
    );
}

// ---- made here, checked by Python ----

fn python() -> &'static Path {
    shared_core::testing::python::interpreter(env!("CARGO_TARGET_TMPDIR"))
}

fn python3(args: &[&str]) -> Output {
    Command::new(python()).args(args).output().unwrap_or_else(|err| panic!("cannot run {}: {err}", python().display()))
}

/// Fails (never skips) when the virtualenv cannot import the FastAPI template's libraries.
fn require_python_libraries() {
    let check = python3(&["-c", "import jwt, pwdlib, argon2, bcrypt"]);
    assert!(
        check.status.success(),
        "{} cannot import jwt/pwdlib ({}); they are pinned in {}",
        python().display(),
        String::from_utf8_lossy(&check.stderr).trim(),
        fixture_dir().join("requirements.txt").display()
    );
}

fn script(name: &str) -> String {
    fixture_dir().join(name).display().to_string()
}

/// Runs a verify_*.py script, returning (exit code, stdout as JSON when it is JSON).
fn run_script(name: &str, first: &str, second: &str) -> (i32, Option<Value>, String) {
    let output = python3(&[&script(name), first, second]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (
        output.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).ok(),
        format!("stdout: {stdout} stderr: {stderr}"),
    )
}

#[tokio::test]
async fn our_hashes_verify_in_python() {
    require_python_libraries();
    let hasher = PasswordHasher::new(2);
    for password in ["changethis-correct-horse", "pässwörd-ünïcødé-密码-🔑", &"long password ".repeat(9)] {
        let hash = hasher.hash(password).await.unwrap();
        let (code, json, output) = run_script("verify_password.py", password, &hash);
        assert_eq!(code, 0, "pwdlib rejected our hash {hash}: {output}");
        let json = json.unwrap();
        assert_eq!(json["valid"], Value::Bool(true));
        assert_eq!(json["needs_update"], Value::Bool(false), "pwdlib wants to re-hash {hash}");

        let (code, _, output) = run_script("verify_password.py", "definitely-not-the-password", &hash);
        assert_eq!(code, 1, "a wrong password must fail in pwdlib: {output}");
    }
}

#[test]
fn our_tokens_decode_in_python() {
    require_python_libraries();
    let secret = "rust-minted-secret-0123456789abcdef-0123456789abcdef";
    let keys = keys_for(secret);

    let user_id = uuid::Uuid::new_v4();
    let access = keys.create_access_token(user_id, Duration::from_secs(11_520 * 60)).unwrap();
    let (code, claims, output) = run_script("verify_token.py", &access, secret);
    assert_eq!(code, 0, "PyJWT rejected our access token: {output}");
    let claims = claims.unwrap();
    assert_eq!(claims["sub"], Value::String(user_id.to_string()));
    assert!(claims["exp"].is_u64(), "{claims}");

    let reset = keys.create_reset_token("someone@example.com", Duration::from_secs(48 * 3600)).unwrap();
    let (code, claims, output) = run_script("verify_token.py", &reset, secret);
    assert_eq!(code, 0, "PyJWT rejected our reset token: {output}");
    let claims = claims.unwrap();
    assert_eq!(claims["sub"], Value::String("someone@example.com".to_owned()));
    assert!(claims["exp"].is_f64(), "{claims}");
    assert!(claims["nbf"].is_u64(), "{claims}");

    // and PyJWT does check: another secret fails there too
    let (code, _, output) = run_script("verify_token.py", &access, "some-other-secret-0123456789abcdef-0123");
    assert_eq!(code, 1, "{output}");
}
