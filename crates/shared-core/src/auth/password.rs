//! Password hashing, compatible with the FastAPI template's
//! `PasswordHash((Argon2Hasher(), BcryptHasher()))` (pwdlib over argon2-cffi and
//! bcrypt): new hashes are argon2id PHC strings with argon2-cffi's default
//! parameters, and every hash that stack can verify verifies here too.
//!
//! Argon2id with 64 MiB of memory costs a CPU core for a noticeable time, so all
//! work runs on tokio's blocking pool behind a semaphore: a login flood queues on
//! the semaphore instead of stalling the async runtime or exhausting memory.
//! That memory comes from the system allocator, not the process's global one
//! (see [`SystemMemoryArgon2`]).
//!
//! ## bcrypt and passwords over 72 bytes
//!
//! bcrypt only ever reads the first 72 bytes of a password. bcrypt >= 5 (which
//! pwdlib uses) refuses longer passwords with a `ValueError`, but the hashes in an
//! existing database may come from passlib or older bcrypt, which silently
//! truncated, so such a hash *is* the hash of the first 72 bytes. We therefore
//! verify a bcrypt hash against the first 72 bytes of the password, exactly what
//! the stored hash was made from, so those users can still log in; since every
//! bcrypt hash reports `needs_rehash`, the caller then replaces it with an
//! argon2id hash of the whole password, which has no length limit. (A password
//! that shares the first 72 bytes also matches, as it always did for these
//! users; new hashes never have that weakness.)

use std::alloc::System;
use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    self, Decimal, Ident, Output, ParamsString, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Salt,
    SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// argon2-cffi's (and so pwdlib's) defaults, the FastAPI template's current
/// parameters: argon2id v1.3, 64 MiB, 3 passes, 4 lanes, 32-byte hash.
/// The shortest password the contract accepts (pydantic's `min_length=8`
/// counts characters): for request bodies and FIRST_SUPERUSER_PASSWORD alike.
pub const MIN_PASSWORD_CHARS: usize = 8;

const M_COST_KIB: u32 = 65_536;
const T_COST: u32 = 3;
const P_COST: u32 = 4;
const OUTPUT_LEN: usize = 32;
/// argon2-cffi's default salt length, which is also what `SaltString::generate` makes.
const SALT_LEN: usize = 16;

const CURRENT_PARAMS: Params = match Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)) {
    Ok(params) => params,
    Err(_) => panic!("invalid argon2 parameters"),
};

/// A stored argon2 hash asking for more memory than this (1 GiB) is treated as
/// unusable rather than allocated: a corrupt row must not take the process down.
const MAX_VERIFY_M_COST_KIB: u32 = 1 << 20;

/// bcrypt's input limit; see the module documentation.
const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// The password behind the dummy hash [`PasswordHasher::verify_dummy`] checks
/// against. Its value does not matter; no user can have this hash.
const DUMMY_PASSWORD: &[u8] = b"dummy password for timing equalisation";

/// Hashes and verifies passwords on the blocking pool, at most `max_concurrent`
/// at a time. Cheap to clone; clones share the limit.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    dummy_hash: Arc<OnceLock<String>>,
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches. `needs_rehash`: the stored hash is bcrypt, another
    /// argon2 variant or argon2id with other parameters; store
    /// [`PasswordHasher::hash`] of the password in its place.
    Valid { needs_rehash: bool },
    /// Wrong password, or a stored hash that is not a usable argon2/bcrypt hash.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl PasswordHasher {
    /// At most `max_concurrent` hash/verify operations run at once, each on tokio's
    /// blocking pool (`spawn_blocking`), so a login flood cannot stall the async
    /// runtime. `0` is taken as `1`.
    pub fn new(max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            dummy_hash: Arc::new(OnceLock::new()),
        }
    }

    /// A new argon2id PHC string (`$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`)
    /// with a random 16-byte salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run_limited(move || hash_current(password.as_bytes())).await?
    }

    /// Checks `password` against a stored argon2 (argon2id/argon2i/argon2d) or
    /// bcrypt (`$2a$`/`$2b$`/`$2y$`) hash. A hash that cannot be parsed or used is
    /// [`Verified::Invalid`], not an error, and costs the same time as a real
    /// verification.
    pub async fn verify(&self, password: &str, stored_hash: &str) -> Result<Verified, PasswordError> {
        let password = password.to_owned();
        let stored_hash = stored_hash.to_owned();
        let dummy_hash = Arc::clone(&self.dummy_hash);
        self.run_limited(move || match verify_stored(password.as_bytes(), &stored_hash) {
            Some(verified) => verified,
            None => {
                spend_dummy_verification(password.as_bytes(), &dummy_hash);
                Verified::Invalid
            }
        })
        .await
    }

    /// Spends the work of a real argon2id verification (against a dummy hash with
    /// the current parameters, computed on first use) so that a login for an
    /// unknown email takes as long as one for a known email.
    pub async fn verify_dummy(&self, password: &str) {
        let password = password.to_owned();
        let dummy_hash = Arc::clone(&self.dummy_hash);
        let outcome = self.run_limited(move || spend_dummy_verification(password.as_bytes(), &dummy_hash)).await;
        if let Err(err) = outcome {
            tracing::warn!(error = %err, "dummy password verification failed");
        }
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit moves
    /// into the blocking task, so it is held until the work is really done, even
    /// when the caller's future is dropped half-way (e.g. a request timeout).
    async fn run_limited<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Hashing("the concurrency limiter is closed".to_owned()))?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        Ok(task.await?)
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("max_concurrent", &self.max_concurrent)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

fn current_argon2() -> SystemMemoryArgon2 {
    SystemMemoryArgon2 { algorithm: Algorithm::Argon2id, version: Version::V0x13, params: CURRENT_PARAMS }
}

/// argon2, the same as the crate's own `Argon2` hasher but for where its
/// working memory comes from: the system allocator (glibc), which gives a
/// block this large (64 MiB at the current parameters) back to the kernel
/// when it is freed. The api's global allocator (mimalloc, for its speed on
/// every request) keeps freed memory for reuse, and with it, after one
/// hash, 64 MiB more resident for good (docs/benchmarks.md, stop 26).
struct SystemMemoryArgon2 {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

impl password_hash::PasswordHasher for SystemMemoryArgon2 {
    type Params = Params;

    fn hash_password<'a>(&self, password: &[u8], salt: impl Into<Salt<'a>>) -> password_hash::Result<PasswordHash<'a>> {
        let salt = salt.into();
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buffer)?;
        let mut memory = allocator_api2::vec::Vec::with_capacity_in(self.params.block_count(), System);
        memory.resize(self.params.block_count(), Block::new());
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let output_len = self.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, memory.as_mut_slice())?)
        })?;
        Ok(PasswordHash {
            algorithm: self.algorithm.ident(),
            version: Some(self.version.into()),
            params: ParamsString::try_from(&self.params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }

    /// What verification calls, with the algorithm, version and parameters
    /// a stored hash records.
    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?.unwrap_or_default();
        let version = version.map(Version::try_from).transpose()?.unwrap_or_default();
        Self { algorithm, version, params }.hash_password(password, salt)
    }
}

fn hash_current(password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    current_argon2()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hashing(err.to_string()))
}

/// `None`: the stored hash is not one we can check (unknown scheme, malformed,
/// unsupported parameters).
fn verify_stored(password: &[u8], stored_hash: &str) -> Option<Verified> {
    if stored_hash.starts_with("$argon2") {
        verify_argon2(password, stored_hash)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored_hash.starts_with(prefix)) {
        verify_bcrypt(password, stored_hash)
    } else {
        None
    }
}

fn verify_argon2(password: &[u8], stored_hash: &str) -> Option<Verified> {
    let parsed = PasswordHash::new(stored_hash).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_VERIFY_M_COST_KIB {
        return None;
    }
    // Uses the algorithm, version and parameters recorded in the hash.
    match current_argon2().verify_password(password, &parsed) {
        Ok(()) => Some(Verified::Valid { needs_rehash: argon2_needs_rehash(&parsed, &params) }),
        Err(password_hash::Error::Password) => Some(Verified::Invalid),
        Err(_) => None,
    }
}

/// What argon2-cffi's `check_needs_rehash` compares: type, version, memory,
/// passes, lanes, hash length and salt length.
fn argon2_needs_rehash(parsed: &PasswordHash<'_>, params: &Params) -> bool {
    let current = Algorithm::Argon2id.ident() == parsed.algorithm
        && parsed.version == Some(Version::V0x13.into())
        && params.m_cost() == M_COST_KIB
        && params.t_cost() == T_COST
        && params.p_cost() == P_COST
        && params.keyid().is_empty()
        && params.data().is_empty()
        && parsed.hash.is_some_and(|output| output.len() == OUTPUT_LEN)
        && parsed.salt.is_some_and(|salt| {
            let mut buf = [0u8; 64];
            salt.decode_b64(&mut buf).is_ok_and(|bytes| bytes.len() == SALT_LEN)
        });
    !current
}

fn verify_bcrypt(password: &[u8], stored_hash: &str) -> Option<Verified> {
    // See the module documentation: the stored hash was made from at most 72 bytes.
    let password = &password[..password.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
    match bcrypt::verify(password, stored_hash) {
        Ok(true) => Some(Verified::Valid { needs_rehash: true }),
        Ok(false) => Some(Verified::Invalid),
        Err(_) => None,
    }
}

fn spend_dummy_verification(password: &[u8], dummy_hash: &OnceLock<String>) {
    let dummy = dummy_hash.get_or_init(|| match hash_current(DUMMY_PASSWORD) {
        Ok(hash) => hash,
        Err(err) => {
            tracing::warn!(error = %err, "cannot compute the dummy password hash");
            String::new()
        }
    });
    let _ = verify_argon2(password, dummy);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn hash_has_the_current_format_and_verifies() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(parsed.salt.unwrap().decode_b64(&mut buf).unwrap().len(), 16);
        assert_eq!(parsed.hash.unwrap().len(), 32);

        assert_eq!(
            hasher.verify("correct horse battery staple", &hash).await.unwrap(),
            Verified::Valid { needs_rehash: false }
        );
        assert_eq!(hasher.verify("correct horse battery stapler", &hash).await.unwrap(), Verified::Invalid);
        // two hashes of one password differ (random salt)
        assert_ne!(hasher.hash("correct horse battery staple").await.unwrap(), hash);
    }

    #[tokio::test]
    async fn long_and_unicode_passwords_are_hashed_whole() {
        let hasher = PasswordHasher::new(2);
        let long = "ü".repeat(100); // 200 bytes
        let hash = hasher.hash(&long).await.unwrap();
        assert_eq!(hasher.verify(&long, &hash).await.unwrap(), Verified::Valid { needs_rehash: false });
        // unlike bcrypt, argon2 sees past 72 bytes
        let mut other = "ü".repeat(99);
        other.push('u');
        assert_eq!(hasher.verify(&other, &hash).await.unwrap(), Verified::Invalid);
    }

    #[tokio::test]
    async fn unusable_hashes_are_invalid_not_errors() {
        let hasher = PasswordHasher::new(2);
        for stored in [
            "",
            "plaintext-password",
            "$argon2id$",
            "$argon2id$v=19$m=65536,t=3,p=4$not base64!$xx",
            "$argon2xx$v=19$m=65536,t=3,p=4$gwTJJOMUnZwtL8Q1IlRuqg$EmcI6p5dh917hTTtAvbFLvPyJh61ttq7LybvhMqklEc",
            // absurd memory cost: refused, not allocated
            "$argon2id$v=19$m=4294967295,t=3,p=4$gwTJJOMUnZwtL8Q1IlRuqg$EmcI6p5dh917hTTtAvbFLvPyJh61ttq7LybvhMqklEc",
            "$2b$12$tooshort",
            "$2x$12$.OuKhGQFW8DEy1ni8LgjR.8H8F8LX/7Zl88oHYUP3TIm9SgV0p3Hy",
            "$pbkdf2-sha256$29000$abc$def",
        ] {
            assert_eq!(hasher.verify("changethis-correct-horse", stored).await.unwrap(), Verified::Invalid, "{stored}");
        }
    }

    #[tokio::test]
    async fn bcrypt_over_72_bytes_checks_the_first_72() {
        let hasher = PasswordHasher::new(2);
        let first_72 = "x".repeat(72);
        // what passlib / bcrypt < 5 stored for any password starting with these 72 bytes
        let stored = bcrypt::hash(&first_72, 4).unwrap();
        for password in [first_72.clone(), format!("{first_72}and more"), format!("{first_72}X")] {
            assert_eq!(hasher.verify(&password, &stored).await.unwrap(), Verified::Valid { needs_rehash: true });
        }
        assert_eq!(hasher.verify(&"x".repeat(71), &stored).await.unwrap(), Verified::Invalid);
        assert_eq!(hasher.verify(&format!("y{}", &first_72[1..]), &stored).await.unwrap(), Verified::Invalid);
    }

    #[tokio::test]
    async fn verify_dummy_does_the_work_of_a_verification() {
        let hasher = PasswordHasher::new(2);
        let real = hasher.hash("password-123").await.unwrap();
        hasher.verify_dummy("warm-up").await; // computes the dummy hash
        let dummy = hasher.dummy_hash.get().unwrap();
        assert_eq!(
            verify_argon2(DUMMY_PASSWORD, dummy),
            Some(Verified::Valid { needs_rehash: false }),
            "the dummy hash uses the current parameters"
        );

        // Timing on a shared machine is noisy: take the best of several
        // interleaved runs, and only check that the dummy is not cheaper (doing no
        // work, or argon2 with weaker parameters, would be many times faster).
        let mut real_times = Vec::new();
        let mut dummy_times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            hasher.verify("wrong-password", &real).await.unwrap();
            real_times.push(started.elapsed());
            let started = Instant::now();
            hasher.verify_dummy("wrong-password").await;
            dummy_times.push(started.elapsed());
        }
        let real = real_times.iter().min().unwrap().as_secs_f64();
        let dummy = dummy_times.iter().min().unwrap().as_secs_f64();
        assert!(dummy > real / 3.0, "real {real:.3}s vs dummy {dummy:.3}s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_max_concurrent_at_once() {
        // The same limiter `hash` and `verify` go through, with instrumented work.
        let hasher = PasswordHasher::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let hasher = hasher.clone();
                let running = Arc::clone(&running);
                let peak = Arc::clone(&peak);
                tokio::spawn(async move {
                    hasher
                        .run_limited(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_hashes_hold_the_permits() {
        let hasher = PasswordHasher::new(2);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("password-{i}")).await.unwrap() })
            })
            .collect();
        let mut saw_all_taken = false;
        while !tasks.iter().all(|task| task.is_finished()) {
            let available = hasher.permits.available_permits();
            assert!(available <= 2);
            saw_all_taken |= available == 0;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for task in tasks {
            assert!(task.await.unwrap().starts_with("$argon2id$"));
        }
        assert!(saw_all_taken, "6 hashes at once should have taken both permits");
        assert_eq!(hasher.permits.available_permits(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_does_not_block_the_runtime() {
        let hasher = PasswordHasher::new(2);
        let started = Instant::now();
        let hashes = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                let four = (0..4).map(|i| {
                    let hasher = hasher.clone();
                    tokio::spawn(async move { hasher.hash(&format!("password-{i}")).await.unwrap() })
                });
                for task in four.collect::<Vec<_>>() {
                    task.await.unwrap();
                }
            }
        });
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        let mut last = Instant::now();
        let mut max_gap = Duration::ZERO;
        while !hashes.is_finished() {
            interval.tick().await;
            ticks += 1;
            max_gap = max_gap.max(last.elapsed());
            last = Instant::now();
        }
        hashes.await.unwrap();
        let elapsed = started.elapsed();
        // Had a hash run on this (only) runtime thread, the ticker would have
        // stalled for a whole hash: at least a quarter of the run.
        assert!(max_gap < elapsed / 8, "ticker stalled {max_gap:?} during {elapsed:?}");
        assert!(ticks >= 8, "only {ticks} ticks in {elapsed:?}");
    }

    /// Only the memory differs from the crate's own hasher: the same hash
    /// for each algorithm and version at three parameter sets (ours, an
    /// older default, a short output), and each of the crate's hashes
    /// verifies through ours, which uses the parameters it records.
    #[test]
    fn system_memory_argon2_hashes_as_the_crate_does() {
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let params =
            [CURRENT_PARAMS, Params::new(19_456, 2, 1, None).unwrap(), Params::new(64, 1, 2, Some(16)).unwrap()];
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            for version in [Version::V0x13, Version::V0x10] {
                for params in &params {
                    let ours = SystemMemoryArgon2 { algorithm, version, params: params.clone() };
                    let crates = Argon2::new(algorithm, version, params.clone());
                    let crates_hash = crates.hash_password(b"a password", &salt).unwrap().to_string();
                    let case = format!("{algorithm:?} {version:?} {params:?}");
                    assert_eq!(ours.hash_password(b"a password", &salt).unwrap().to_string(), crates_hash, "{case}");
                    let parsed = PasswordHash::new(&crates_hash).unwrap();
                    assert!(current_argon2().verify_password(b"a password", &parsed).is_ok(), "{case}");
                    assert_eq!(
                        current_argon2().verify_password(b"a passwore", &parsed),
                        Err(password_hash::Error::Password),
                        "{case}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_concurrency_means_one() {
        assert_eq!(PasswordHasher::new(0).permits.available_permits(), 1);
    }
}
