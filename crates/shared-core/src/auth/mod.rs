//! Authentication primitives, compatible with the FastAPI template's own
//! libraries so an existing deployment keeps its password hashes and tokens:
//! [`password`] (pwdlib: argon2id, legacy argon2 and bcrypt) and [`token`]
//! (PyJWT: HS256 access and password-reset tokens).

pub mod password;
pub mod token;

pub use password::{PasswordError, PasswordHasher, Verified};
pub use token::{TokenError, TokenKeys};
