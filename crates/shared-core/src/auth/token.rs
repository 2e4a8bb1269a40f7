//! JWTs, wire-compatible with the FastAPI template's PyJWT tokens.
//!
//! - Access token (`core/security.py` `create_access_token`): HS256,
//!   `{"exp": <int>, "sub": "<user uuid>"}`.
//! - Password-reset token (`utils.py` `generate_password_reset_token`): HS256,
//!   `{"exp": <float>, "nbf": <int>, "sub": "<email>"}`. The template passes
//!   `exp` as `datetime.timestamp()`, so it is a JSON float with a fraction
//!   (`4102444800.123456`); we mint it the same way.
//!
//! Tokens are minted with jsonwebtoken (once per login: argon2 dominates) and
//! checked here, because the check runs on every authenticated request and
//! jsonwebtoken's `decode` keys a new HMAC, parses the header twice and the
//! claims twice per call: 36.5k instructions against 20.3k for the same
//! rules in one pass with the HMAC keyed once (callgrind; docs/benchmarks.md).
//! The rules are jsonwebtoken's `Validation` as we used it: HS256 only (`alg:
//! none` and every other algorithm are rejected before the signature is
//! looked at), the signature compared in constant time before the claims are
//! read, `exp` required and `nbf` checked with [`LEEWAY_SECONDS`] of
//! clock-skew allowance, both read as "NumericDate" (an integer, or a float
//! rounded to whole seconds: the template's float `exp`). Any `aud` claim is
//! refused, as PyJWT refuses a non-empty one when no audience is expected
//! (stricter than both for empty or malformed ones, which no token of ours
//! or the template's carries).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Sha256;

use crate::config::Secret;

/// Clock-skew allowance for `exp` and `nbf` (PyJWT's default is 0): enough for
/// replicas whose clocks differ slightly, too little to matter for expiry.
pub const LEEWAY_SECONDS: u64 = 5;

/// The signing key, for minting and for checking. Cheap to clone (one
/// reference count): the app state holding it is cloned several times per
/// request, and copying the keys each time cost more instructions than the
/// rest of a `/healthz` request.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    /// HMAC-SHA256 with the key already absorbed: each check clones it
    /// instead of hashing the key's two pads again.
    verifying: Hmac<Sha256>,
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

/// Which claims a token kind must carry beyond `exp` and `sub`.
#[derive(Clone, Copy)]
enum Kind {
    Access,
    /// The template's reset tokens always carry `nbf`; requiring it also
    /// keeps an access token from passing as a reset token.
    Reset,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Reset => "reset",
        }
    }
}

/// The JOSE header: only `alg` is read. Other members are not looked at
/// (jsonwebtoken and PyJWT check the types of some, such as `kid`); a header
/// is covered by the signature, so only a holder of the key can set them.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

/// The claims read back.
#[derive(Deserialize)]
struct Claims {
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<u64>,
    sub: Option<String>,
    aud: Option<IgnoredAny>,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        let key = secret.expose().as_bytes();
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(key),
            // HMAC takes a key of any length (hashed when longer than a block).
            verifying: Hmac::new_from_slice(key).expect("HMAC accepts keys of any length"),
        }))
    }

    /// HS256 `{"exp": <now + lifetime, whole seconds>, "sub": "<uuid>"}`.
    pub fn create_access_token(&self, user_id: uuid::Uuid, lifetime: Duration) -> Result<String, TokenError> {
        let exp = now()?.checked_add(lifetime).ok_or_else(|| TokenError::Encode("lifetime too long".to_owned()))?;
        self.encode(&AccessClaims { exp: exp.as_secs(), sub: user_id.to_string() })
    }

    /// The user id in a valid access token.
    pub fn decode_access_token(&self, token: &str) -> Result<uuid::Uuid, TokenError> {
        let sub = self.decode(token, Kind::Access)?;
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
        self.decode(token, Kind::Reset)
    }

    fn encode(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)
            .map_err(|err| TokenError::Encode(err.to_string()))
    }

    /// The `sub` of a valid token of this kind; why one is refused is logged
    /// at debug level, never shown to the client.
    fn decode(&self, token: &str, kind: Kind) -> Result<String, TokenError> {
        self.check(token, kind).map_err(|reason| {
            tracing::debug!(reason, "{} token rejected", kind.name());
            TokenError::Invalid
        })
    }

    fn check(&self, token: &str, kind: Kind) -> Result<String, &'static str> {
        let (message, signature) = token.rsplit_once('.').ok_or("not three parts")?;
        let (header, payload) = message.split_once('.').ok_or("not three parts")?;

        let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| "header is not base64url")?;
        let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| "header is not a JOSE header")?;
        if header.alg != "HS256" {
            return Err("algorithm is not HS256");
        }

        // An HS256 signature is 32 bytes; a longer one up to 64 fails the
        // comparison, one longer still the decoding.
        let mut sig = [0u8; 64];
        let sig_len = URL_SAFE_NO_PAD.decode_slice(signature, &mut sig).map_err(|_| "signature is not base64url")?;
        let mut mac = self.0.verifying.clone();
        mac.update(message.as_bytes());
        mac.verify_slice(&sig[..sig_len]).map_err(|_| "signature does not match")?;

        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "payload is not base64url")?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| "claims are malformed")?;
        if claims.aud.is_some() {
            return Err("aud is present");
        }
        let now = now().map_err(|_| "system clock before 1970")?.as_secs();
        let exp = claims.exp.ok_or("exp is missing")?;
        if exp < now.saturating_sub(LEEWAY_SECONDS) {
            return Err("expired");
        }
        match (kind, claims.nbf) {
            (_, Some(nbf)) if nbf > now + LEEWAY_SECONDS => return Err("not valid yet"),
            (Kind::Reset, None) => return Err("nbf is missing"),
            _ => {}
        }
        claims.sub.ok_or("sub is missing")
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys").field("algorithm", &Algorithm::HS256).finish_non_exhaustive()
    }
}

/// A JWT "NumericDate": whole seconds, or a non-negative float rounded to
/// them (PyJWT writes the template's reset `exp` as a float).
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct NumericDate;
    impl de::Visitor<'_> for NumericDate {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate")
        }
        fn visit_u64<E>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
            if value.is_finite() && value >= 0.0 && value < u64::MAX as f64 {
                Ok(value.round() as u64)
            } else {
                Err(E::custom("a NumericDate must be representable as whole seconds"))
            }
        }
    }
    deserializer.deserialize_any(NumericDate).map(Some)
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

    /// A token put together by hand: any header text, HS256 over it.
    fn raw_token(header: &str, claims: &Value, secret: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn header_members_and_signature_length() {
        let keys = keys();
        let id = uuid::Uuid::new_v4();
        let claims = json!({"exp": unix_now() + 60, "sub": id.to_string()});
        // PyJWT's member order, and members we do not use
        for header in [r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"typ":"JWT","kid":"k1","alg":"HS256"}"#] {
            assert_eq!(keys.decode_access_token(&raw_token(header, &claims, SECRET)).unwrap(), id, "{header}");
        }
        for header in [r#"{"alg":"hs256"}"#, r#"{"typ":"JWT"}"#, r#"{"alg":null}"#, "[]", "not json"] {
            assert!(keys.decode_access_token(&raw_token(header, &claims, SECRET)).is_err(), "{header}");
        }

        let good = raw_token(r#"{"alg":"HS256"}"#, &claims, SECRET);
        let (message, signature) = good.rsplit_once('.').unwrap();
        let mut longer = URL_SAFE_NO_PAD.decode(signature).unwrap();
        longer.push(0);
        let mut shorter = longer.clone();
        shorter.truncate(31);
        for sig in [longer, shorter, Vec::new()] {
            assert!(keys.decode_access_token(&format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))).is_err());
        }
        assert!(keys.decode_access_token(&format!("{good}.{signature}")).is_err(), "four parts");
        assert!(keys.decode_access_token(&format!("{good}=")).is_err(), "padded signature");
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
