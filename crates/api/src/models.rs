//! The contract's schemas (Part A): what goes over the wire. Request bodies
//! are validated field by field (`FromFields`) with pydantic's rules. Each
//! field's bounds and default are written once, in its `#[schema(...)]`
//! attribute: the OpenAPI document is derived from it, and so is the check
//! (`extract::fields` reads them from the schema).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use shared_core::db::items::Item;
use shared_core::db::jobs::{Job, JobStatus};
use shared_core::db::users::User;
use shared_core::jobs::kinds::JobKind;

use crate::extract::fields::{Fields, FromFields};

/// The bounds the template's models declare (sqlmodel `Field`s).
pub const TEXT_MAX: usize = 255;
pub const PASSWORD_MIN: usize = shared_core::auth::password::MIN_PASSWORD_CHARS;
pub const PASSWORD_MAX: usize = 128;

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

impl Message {
    pub fn new(message: &str) -> Self {
        Self { message: message.to_owned() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub access_token: String,
    #[schema(default = "bearer", required = false)]
    pub token_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPublic {
    #[schema(format = Email, max_length = 255)]
    pub email: String,
    #[schema(default = true, required = false)]
    pub is_active: bool,
    #[schema(default = false, required = false)]
    pub is_superuser: bool,
    #[schema(max_length = 255)]
    pub full_name: Option<String>,
    pub id: Uuid,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub created_at: Option<DateTime<Utc>>,
}

impl From<User> for UserPublic {
    fn from(user: User) -> Self {
        Self {
            email: user.email,
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            full_name: user.full_name,
            id: user.id,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPublic {
    pub data: Vec<UserPublic>,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPublic {
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    pub id: Uuid,
    pub owner_id: Uuid,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub created_at: Option<DateTime<Utc>>,
}

impl From<Item> for ItemPublic {
    fn from(item: Item) -> Self {
        Self {
            title: item.title,
            description: item.description,
            id: item.id,
            owner_id: item.owner_id,
            created_at: item.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsPublic {
    pub data: Vec<ItemPublic>,
    pub count: i64,
}

#[derive(Debug, ToSchema)]
pub struct UserCreate {
    #[schema(format = Email, max_length = 255)]
    pub email: String,
    #[schema(default = true, required = false)]
    pub is_active: bool,
    #[schema(default = false, required = false)]
    pub is_superuser: bool,
    #[schema(max_length = 255)]
    pub full_name: Option<String>,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

impl FromFields for UserCreate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.email("email"),
            is_active: f.bool_or_default("is_active"),
            is_superuser: f.bool_or_default("is_superuser"),
            full_name: f.optional_string("full_name").flatten(),
            password: f.string("password"),
        }
    }
}

#[derive(Debug, ToSchema)]
pub struct UserRegister {
    #[schema(format = Email, max_length = 255)]
    pub email: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(max_length = 255)]
    pub full_name: Option<String>,
}

impl FromFields for UserRegister {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.email("email"),
            password: f.string("password"),
            full_name: f.optional_string("full_name").flatten(),
        }
    }
}

/// Every field optional; an absent field is left alone. `is_active` and
/// `is_superuser` are not nullable (FastAPI documents them with UserBase's
/// defaults), so they may be left out but not sent as null.
#[derive(Debug, ToSchema)]
pub struct UserUpdate {
    #[schema(format = Email, max_length = 255)]
    pub email: Option<String>,
    #[schema(value_type = bool, default = true, required = false)]
    pub is_active: Option<bool>,
    #[schema(value_type = bool, default = false, required = false)]
    pub is_superuser: Option<bool>,
    #[schema(max_length = 255)]
    pub full_name: Option<Option<String>>,
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
}

impl FromFields for UserUpdate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.optional_email("email"),
            is_active: f.optional_bool("is_active"),
            is_superuser: f.optional_bool("is_superuser"),
            full_name: f.optional_string("full_name"),
            password: f.optional_string("password").flatten(),
        }
    }
}

#[derive(Debug, ToSchema)]
pub struct UserUpdateMe {
    #[schema(max_length = 255)]
    pub full_name: Option<Option<String>>,
    #[schema(format = Email, max_length = 255)]
    pub email: Option<String>,
}

impl FromFields for UserUpdateMe {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self { full_name: f.optional_string("full_name"), email: f.optional_email("email") }
    }
}

#[derive(Debug, ToSchema)]
pub struct UpdatePassword {
    #[schema(min_length = 8, max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

impl FromFields for UpdatePassword {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self { current_password: f.string("current_password"), new_password: f.string("new_password") }
    }
}

#[derive(Debug, ToSchema)]
pub struct NewPassword {
    pub token: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

impl FromFields for NewPassword {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self { token: f.string("token"), new_password: f.string("new_password") }
    }
}

#[derive(Debug, ToSchema)]
pub struct ItemCreate {
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    #[schema(max_length = 255)]
    pub description: Option<String>,
}

impl FromFields for ItemCreate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self { title: f.string("title"), description: f.optional_string("description").flatten() }
    }
}

#[derive(Debug, ToSchema)]
pub struct ItemUpdate {
    #[schema(min_length = 1, max_length = 255)]
    pub title: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<Option<String>>,
}

impl FromFields for ItemUpdate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self { title: f.optional_string("title").flatten(), description: f.optional_string("description") }
    }
}

#[derive(Debug, ToSchema)]
pub struct PrivateUserCreate {
    #[schema(format = Email, max_length = 255)]
    pub email: String,
    pub password: String,
    pub full_name: String,
    /// In the template's document and type-checked (`null` is a 422), then
    /// ignored by its route as by ours: the user table has no such column.
    #[schema(default = false, required = false)]
    pub is_verified: bool,
}

impl FromFields for PrivateUserCreate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.email("email"),
            password: f.string("password"),
            full_name: f.string("full_name"),
            is_verified: f.bool_or_default("is_verified"),
        }
    }
}

/// The login form in the document, under the name FastAPI gives it
/// (`Body_<operation id>`): clients generated from the reference document
/// import that type, so the name is part of the contract.
pub struct LoginFormBody;

impl utoipa::PartialSchema for LoginFormBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        OAuth2PasswordRequestForm::schema()
    }
}

impl ToSchema for LoginFormBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Body_login-login_access_token".into()
    }
}

/// The fields of FastAPI's `OAuth2PasswordRequestForm` (read by
/// `extract::form::LoginForm`).
#[derive(ToSchema)]
#[expect(dead_code, reason = "only its schema is used: the form is read field by field")]
#[schema(title = "Body_login-login_access_token")]
struct OAuth2PasswordRequestForm {
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    username: String,
    #[schema(format = Password)]
    password: String,
    #[schema(default = "", required = false)]
    scope: String,
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// FastAPI's 422 body.
#[derive(Debug, ToSchema)]
pub struct HTTPValidationError {
    #[schema(required = false)]
    pub detail: Vec<ValidationError>,
}

#[derive(Debug, ToSchema)]
pub struct ValidationError {
    #[schema(schema_with = loc_schema)]
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[schema(rename = "type")]
    pub kind: String,
}

/// A 422's `loc`: field names, and numbers where FastAPI puts one (the byte
/// position of malformed JSON: `["body", 0]`; a list index).
fn loc_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Object, Type};
    let step = AnyOfBuilder::new().item(Object::with_type(Type::String)).item(Object::with_type(Type::Integer));
    ArrayBuilder::new().items(step).build()
}

/// A string schema that takes one of `values`.
fn one_of(values: impl IntoIterator<Item = &'static str>) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build()
}

/// Every job status, from the one list the queue uses.
pub fn job_status_schema() -> utoipa::openapi::schema::Object {
    one_of(JobStatus::ALL.map(JobStatus::as_str))
}

/// Every job kind, internal ones included (they show in listings).
pub fn job_kind_schema() -> utoipa::openapi::schema::Object {
    one_of(JobKind::ALL.iter().map(|kind| kind.as_str()))
}

/// The kinds someone may submit (some only superusers).
pub fn submittable_job_kind_schema() -> utoipa::openapi::schema::Object {
    one_of(JobKind::ALL.iter().filter(|kind| kind.submittable_by(true)).map(|kind| kind.as_str()))
}

/// A job as the jobs API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPublic {
    pub id: Uuid,
    #[schema(schema_with = job_kind_schema)]
    pub kind: String,
    #[schema(schema_with = job_status_schema)]
    pub status: &'static str,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(serialize_with = "timestamp::serialize")]
    pub run_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub owner_id: Option<Uuid>,
}

impl From<Job> for JobPublic {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            status: job.status.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            last_error: job.last_error,
            owner_id: job.owner_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobsPublic {
    pub data: Vec<JobPublic>,
    pub count: i64,
}

pub const JOB_MAX_ATTEMPTS_LIMIT: i64 = 25;

#[derive(Debug, ToSchema)]
pub struct JobCreate {
    /// items_export, or noop (superusers)
    #[schema(schema_with = submittable_job_kind_schema)]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Map<String, serde_json::Value>,
    pub run_at: Option<DateTime<Utc>>,
    #[schema(minimum = 1, maximum = 25)]
    pub max_attempts: Option<i32>,
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

impl FromFields for JobCreate {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            kind: f.string("kind"),
            payload: f.optional_object("payload").unwrap_or_default(),
            run_at: f.optional_datetime("run_at"),
            max_attempts: f.optional_int("max_attempts").map(|n| n as i32),
            idempotency_key: f.optional_string("idempotency_key").flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::fields::Rules;

    /// The one bound declared twice: the config check of
    /// FIRST_SUPERUSER_PASSWORD uses the same minimum as the document.
    #[test]
    fn documented_password_minimum_is_the_one_the_config_check_uses() {
        for rules in [Rules::of::<UserCreate>(), Rules::of::<UserRegister>(), Rules::of::<UserUpdate>()] {
            assert_eq!(rules.min_length("password"), shared_core::auth::password::MIN_PASSWORD_CHARS);
        }
        for rules in [Rules::of::<UpdatePassword>(), Rules::of::<NewPassword>()] {
            assert_eq!(rules.min_length("new_password"), shared_core::auth::password::MIN_PASSWORD_CHARS);
        }
    }
}

/// Timestamps exactly as chrono's own `Serialize` writes them (RFC 3339 with
/// `Z` and 0, 3, 6 or 9 fractional digits, as pydantic does), handed to the
/// serializer as one string. chrono's impl goes through `collect_str`, which
/// serde_json escapes a character at a time: a fifth of the instructions of
/// a page of 100 items.
mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;
    use shared_core::rfc3339::{self, Fraction};

    /// chrono's own text (`to_rfc3339_opts(AutoSi, true)`, what its
    /// `Serialize` writes), put together digit by digit where it can be:
    /// chrono's formatter cost 1.1k instructions per timestamp, a twelfth of
    /// a page of items (docs/benchmarks.md).
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        match rfc3339::write(at, Fraction::AutoSi, &mut rfc3339::Buffer::default()) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    pub fn serialize_option<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use chrono::TimeZone;

        use super::*;

        /// The digit-by-digit text itself is tested against chrono in
        /// `shared_core::rfc3339`; here, that the serializer uses it and
        /// leaves the rest to chrono.
        #[test]
        fn the_same_text_as_chronos_serialize() {
            let second = Utc.with_ymd_and_hms(2026, 12, 6, 15, 14, 24).unwrap();
            let nanos = [0, 1, 123_000_000, 123_456_000, 999_999_999];
            let mut times: Vec<DateTime<Utc>> =
                nanos.iter().map(|n| second + chrono::Duration::nanoseconds(*n)).collect();
            times.push(DateTime::<Utc>::MIN_UTC);
            times.push(DateTime::<Utc>::MAX_UTC);
            times.push(Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap());
            times.push(Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap());
            let leap_second =
                chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000);
            times.push(leap_second.unwrap().and_utc());
            for at in times {
                let ours = serialize(&at, serde_json::value::Serializer).unwrap();
                assert_eq!(ours, serde_json::to_value(at).unwrap(), "{at:?}");
                let optional = serialize_option(&Some(at), serde_json::value::Serializer).unwrap();
                assert_eq!(optional, serde_json::to_value(Some(at)).unwrap());
            }
            assert_eq!(serialize_option(&None, serde_json::value::Serializer).unwrap(), serde_json::Value::Null);
        }
    }
}
