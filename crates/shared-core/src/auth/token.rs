//! JWTs, wire-compatible with the FastAPI template's PyJWT tokens.
//!
//! - Access token (`core/security.py` `create_access_token`): HS256,
//!   `{"exp": <int>, "sub": "<user uuid>"}`.
//! - Password-reset token (`utils.py` `generate_password_reset_token`): HS256,
//!   `{"exp": <float>, "nbf": <int>, "sub": "<email>"}`. The template passes
//!   `exp` as `datetime.timestamp()`, so it is a JSON float with a fraction
//!   (`4102444800.123456`); we mint it the same way.
//!
//! Decoding accepts HS256 only (`alg: none` and every other algorithm are
//! rejected before the signature is looked at) and checks `exp` and `nbf` with
//! [`LEEWAY_SECONDS`] of clock-skew allowance. jsonwebtoken 11 reads `exp` and
//! `nbf` as "NumericDate": an integer, or a float it rounds to whole seconds
//! (`validation.rs`, `numeric_type`/`visit_f64`), so its own checks handle the
//! template's float `exp` and no hand-written time check is needed. A token
//! with an `aud` claim is rejected, as PyJWT does when no audience is expected.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// Clock-skew allowance for `exp` and `nbf` (PyJWT's default is 0): enough for
/// replicas whose clocks differ slightly, too little to matter for expiry.
pub const LEEWAY_SECONDS: u64 = 5;

/// The signing key and the validation rules for both token kinds. Cheap to
/// clone (one reference count): the app state holding it is cloned several
/// times per request, and copying the keys and validation sets each time
/// cost more instructions than the rest of a `/healthz` request.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_validation: Validation,
    reset_validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Any decode or verification failure: malformed, bad signature, wrong
    /// algorithm, expired, not yet valid, missing or malformed claims. The
    /// reason is logged at debug level, never shown to the client.
    #[error("invalid token")]
    Invalid,
    #[error("cannot create token: {0}")]
    Encode(String),
}

#[derive(Serialize)]
struct AccessClaims {
    exp: u64,
    sub: String,
}

#[derive(Serialize)]
struct ResetClaims<'a> {
    exp: f64,
    nbf: u64,
    sub: &'a str,
}

/// What we read back: the library validates `exp`/`nbf` itself.
#[derive(Deserialize)]
struct Subject {
    sub: String,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        let key = secret.expose().as_bytes();
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            access_validation: validation(&["exp", "sub"]),
            // The template's reset tokens always carry `nbf`; requiring it also
            // keeps an access token from passing as a reset token.
            reset_validation: validation(&["exp", "nbf", "sub"]),
        }))
    }

    /// HS256 `{"exp": <now + lifetime, whole seconds>, "sub": "<uuid>"}`.
    pub fn create_access_token(&self, user_id: uuid::Uuid, lifetime: Duration) -> Result<String, TokenError> {
        let exp = now()?.checked_add(lifetime).ok_or_else(|| TokenError::Encode("lifetime too long".to_owned()))?;
        self.encode(&AccessClaims { exp: exp.as_secs(), sub: user_id.to_string() })
    }

    /// The user id in a valid access token.
    pub fn decode_access_token(&self, token: &str) -> Result<uuid::Uuid, TokenError> {
        let sub = self.decode(token, &self.0.access_validation, "access")?;
        uuid::Uuid::parse_str(&sub).map_err(|_| {
            tracing::debug!("access token rejected: sub is not a UUID");
            TokenError::Invalid
        })
    }

    /// HS256 `{"exp": <now + lifetime, float with microseconds>, "nbf": <now, whole seconds>, "sub": email}`.
    pub fn create_reset_token(&self, email: &str, lifetime: Duration) -> Result<String, TokenError> {
        let now = now()?;
        let exp = now.checked_add(lifetime).ok_or_else(|| TokenError::Encode("lifetime too long".to_owned()))?;
        // as Python's datetime.timestamp(): seconds with microsecond precision
        let exp = exp.as_micros() as f64 / 1e6;
        self.encode(&ResetClaims { exp, nbf: now.as_secs(), sub: email })
    }

    /// The email in a valid password-reset token.
    pub fn decode_reset_token(&self, token: &str) -> Result<String, TokenError> {
        self.decode(token, &self.0.reset_validation, "reset")
    }

    fn encode(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)
            .map_err(|err| TokenError::Encode(err.to_string()))
    }

    fn decode(&self, token: &str, validation: &Validation, kind: &str) -> Result<String, TokenError> {
        match jsonwebtoken::decode::<Subject>(token, &self.0.decoding, validation) {
            Ok(data) => Ok(data.claims.sub),
            Err(err) => {
                tracing::debug!(error = %err, "{kind} token rejected");
                Err(TokenError::Invalid)
            }
        }
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys").field("algorithm", &Algorithm::HS256).finish_non_exhaustive()
    }
}

fn validation(required: &[&str]) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(required);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation
}

fn now() -> Result<Duration, TokenError> {
    SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| TokenError::Encode("system clock before 1970".to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "unit-test-secret-0123456789abcdef-0123456789";

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new(SECRET))
    }

    fn unix_now() -> i64 {
        now().unwrap().as_secs() as i64
    }

    fn payload(token: &str) -> Value {
        jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap()
    }

    /// `{"alg":"none","typ":"JWT"}`, base64url
    const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

    fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn access_token_round_trip_and_claims() {
        let keys = keys();
        let id = uuid::Uuid::new_v4();
        let token = keys.create_access_token(id, Duration::from_secs(11_520 * 60)).unwrap();
        assert_eq!(keys.decode_access_token(&token).unwrap(), id);

        let claims = payload(&token);
        assert_eq!(claims.as_object().unwrap().len(), 2);
        assert_eq!(claims["sub"], json!(id.to_string()));
        let exp = claims["exp"].as_i64().expect("exp is an integer");
        assert!((exp - (unix_now() + 11_520 * 60)).abs() <= 1);
    }

    #[test]
    fn reset_token_round_trip_and_claims() {
        let keys = keys();
        let token = keys.create_reset_token("someone@example.com", Duration::from_secs(48 * 3600)).unwrap();
        assert_eq!(keys.decode_reset_token(&token).unwrap(), "someone@example.com");

        let claims = payload(&token);
        assert_eq!(claims.as_object().unwrap().len(), 3);
        assert!(claims["exp"].is_f64(), "exp is a float as in the template: {claims}");
        let nbf = claims["nbf"].as_i64().expect("nbf is an integer");
        assert!((nbf - unix_now()).abs() <= 1);
        assert!((claims["exp"].as_f64().unwrap() - (nbf + 48 * 3600) as f64).abs() <= 1.5);
    }

    #[test]
    fn expiry_and_not_before_are_enforced() {
        let keys = keys();
        let id = uuid::Uuid::new_v4().to_string();
        let now = unix_now();
        let access = |exp: Value| sign(&json!({"exp": exp, "sub": id}), Algorithm::HS256, SECRET);
        assert!(keys.decode_access_token(&access(json!(now + 60))).is_ok());
        assert!(keys.decode_access_token(&access(json!(now - 2))).is_ok(), "within the leeway");
        assert!(keys.decode_access_token(&access(json!(now - 30))).is_err());
        assert!(keys.decode_access_token(&access(json!(now as f64 - 30.5))).is_err());
        assert!(keys.decode_access_token(&access(json!("tomorrow"))).is_err());
        assert!(keys.decode_access_token(&sign(&json!({"sub": id}), Algorithm::HS256, SECRET)).is_err(), "no exp");

        let reset = |exp: Value, nbf: i64| {
            sign(&json!({"exp": exp, "nbf": nbf, "sub": "a@example.com"}), Algorithm::HS256, SECRET)
        };
        assert!(keys.decode_reset_token(&reset(json!(now as f64 + 60.25), now)).is_ok());
        assert!(keys.decode_reset_token(&reset(json!(now as f64 - 30.25), now - 100)).is_err());
        assert!(keys.decode_reset_token(&reset(json!(now as f64 + 3600.5), now + 60)).is_err(), "nbf ahead");
        assert!(keys.decode_reset_token(&reset(json!(now as f64 + 3600.5), now + 2)).is_ok(), "within the leeway");
    }

    #[test]
    fn wrong_key_algorithm_or_shape_is_rejected() {
        let keys = keys();
        let id = uuid::Uuid::new_v4();
        let exp = unix_now() + 3600;
        let claims = json!({"exp": exp, "sub": id.to_string()});
        assert!(keys.decode_access_token(&sign(&claims, Algorithm::HS256, "another-secret")).is_err());
        assert!(keys.decode_access_token(&sign(&claims, Algorithm::HS384, SECRET)).is_err());
        assert!(keys.decode_access_token(&sign(&claims, Algorithm::HS512, SECRET)).is_err());
        let good = sign(&claims, Algorithm::HS256, SECRET);
        assert_eq!(keys.decode_access_token(&good).unwrap(), id);
        let good_parts: Vec<&str> = good.split('.').collect();
        let none = format!("{ALG_NONE_HEADER}.{}.", good_parts[1]);
        assert!(keys.decode_access_token(&none).is_err());
        let none_with_signature = format!("{ALG_NONE_HEADER}.{}.{}", good_parts[1], good_parts[2]);
        assert!(keys.decode_access_token(&none_with_signature).is_err());
        for garbage in ["", "abc", "a.b.c", "a.b"] {
            assert!(keys.decode_access_token(garbage).is_err());
        }
        // another token's payload under this token's signature
        let other = sign(&json!({"exp": exp, "sub": uuid::Uuid::new_v4().to_string()}), Algorithm::HS256, SECRET);
        let spliced = format!("{}.{}.{}", good_parts[0], other.split('.').nth(1).unwrap(), good_parts[2]);
        assert!(keys.decode_access_token(&spliced).is_err());
        // sub must be a UUID string
        for sub in [json!("not-a-uuid"), json!(42), json!(null)] {
            assert!(
                keys.decode_access_token(&sign(&json!({"exp": exp, "sub": sub}), Algorithm::HS256, SECRET)).is_err()
            );
        }
        // an audience nobody asked for
        let with_aud = json!({"exp": exp, "sub": id.to_string(), "aud": "elsewhere"});
        assert!(keys.decode_access_token(&sign(&with_aud, Algorithm::HS256, SECRET)).is_err());
    }

    #[test]
    fn token_kinds_do_not_mix() {
        let keys = keys();
        let access = keys.create_access_token(uuid::Uuid::new_v4(), Duration::from_secs(600)).unwrap();
        let reset = keys.create_reset_token("a@example.com", Duration::from_secs(600)).unwrap();
        assert!(keys.decode_reset_token(&access).is_err(), "no nbf");
        assert!(keys.decode_access_token(&reset).is_err(), "sub is an email");
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains(SECRET) && shown.starts_with("TokenKeys"), "{shown}");
    }
}
