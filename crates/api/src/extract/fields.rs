//! Field-by-field validation of a JSON object with pydantic's error types and
//! messages, collecting every problem like pydantic does. The bounds and
//! defaults of each field (lengths, numeric limits, `default`) are not
//! written here: they are read from the body type's OpenAPI schema, so the
//! `#[schema(...)]` attributes in models.rs are the one declaration of both
//! the document and the check.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::text::nul_issue;
use crate::error::ValidationIssue;

/// A request body type built from a validated JSON object.
pub trait FromFields: ToSchema + Sized + 'static {
    fn from_fields(fields: &mut Fields<'_>) -> Self;
}

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    rules: &'static Rules,
    pub(super) issues: Vec<ValidationIssue>,
}

/// What a body type's schema says about each of its fields.
#[derive(Debug, Default)]
pub struct Rules(HashMap<String, Rule>);

#[derive(Debug, Clone)]
struct Rule {
    min_length: usize,
    max_length: usize,
    minimum: i64,
    maximum: i64,
    default: Option<Value>,
}

impl Default for Rule {
    fn default() -> Self {
        Self { min_length: 0, max_length: usize::MAX, minimum: i64::MIN, maximum: i64::MAX, default: None }
    }
}

impl Rules {
    /// The rules of `T`, read from its schema once per type: a request does
    /// not rebuild the schema. (One leaked table per body type, a dozen.)
    pub fn of<T: ToSchema + 'static>() -> &'static Rules {
        static READ: Mutex<Vec<(TypeId, &'static Rules)>> = Mutex::new(Vec::new());
        let mut read = READ.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, rules)) = read.iter().find(|(id, _)| *id == TypeId::of::<T>()) {
            return rules;
        }
        let rules: &'static Rules = Box::leak(Box::new(Self::from_schema(&T::schema())));
        read.push((TypeId::of::<T>(), rules));
        rules
    }

    fn from_schema(schema: &RefOr<Schema>) -> Self {
        let RefOr::T(Schema::Object(object)) = schema else { return Self::default() };
        let rules = object.properties.iter().filter_map(|(name, property)| {
            let RefOr::T(Schema::Object(p)) = property else { return None };
            let int = |n: &utoipa::Number| match *n {
                utoipa::Number::Int(i) => i as i64,
                utoipa::Number::UInt(u) => u as i64,
                utoipa::Number::Float(f) => f as i64,
            };
            let unbounded = Rule::default();
            let rule = Rule {
                min_length: p.min_length.unwrap_or(unbounded.min_length),
                max_length: p.max_length.unwrap_or(unbounded.max_length),
                minimum: p.minimum.as_ref().map_or(unbounded.minimum, int),
                maximum: p.maximum.as_ref().map_or(unbounded.maximum, int),
                default: p.default.clone(),
            };
            Some((name.clone(), rule))
        });
        Self(rules.collect())
    }

    #[cfg(test)]
    pub fn min_length(&self, field: &str) -> usize {
        self.get(field).min_length
    }

    fn get(&self, field: &str) -> Rule {
        self.0.get(field).cloned().unwrap_or_default()
    }
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>, rules: &'static Rules) -> Self {
        Self { object, rules, issues: Vec::new() }
    }

    fn push(&mut self, kind: &'static str, field: &str, msg: impl Into<String>, input: &Value, ctx: Option<Value>) {
        let mut issue = ValidationIssue::new(kind, &["body", field], msg, input.clone());
        issue.ctx = ctx;
        self.issues.push(issue);
    }

    fn missing(&mut self, field: &str) {
        let whole = Value::Object(self.object.clone());
        self.push("missing", field, "Field required", &whole, None);
    }

    fn check_string(&mut self, field: &str, value: &Value) -> Option<String> {
        let Rule { min_length: min, max_length: max, .. } = self.rules.get(field);
        let Some(text) = value.as_str() else {
            self.push("string_type", field, "Input should be a valid string", value, None);
            return None;
        };
        if let Some(issue) = nul_issue(&["body", field], text) {
            self.issues.push(issue);
            return None;
        }
        let chars = text.chars().count();
        if chars < min {
            let unit = if min == 1 { "character" } else { "characters" };
            let msg = format!("String should have at least {min} {unit}");
            self.push("string_too_short", field, msg, value, Some(json!({ "min_length": min })));
            return None;
        }
        if chars > max {
            let msg = format!("String should have at most {max} characters");
            self.push("string_too_long", field, msg, value, Some(json!({ "max_length": max })));
            return None;
        }
        Some(text.to_owned())
    }

    /// A required string within its schema's lengths.
    pub fn string(&mut self, field: &str) -> String {
        match self.object.get(field) {
            None => {
                self.missing(field);
                String::new()
            }
            Some(value) => self.check_string(field, value).unwrap_or_default(),
        }
    }

    /// An optional string: `None` when absent, `Some(None)` when null.
    pub fn optional_string(&mut self, field: &str) -> Option<Option<String>> {
        match self.object.get(field)? {
            Value::Null => Some(None),
            value => Some(self.check_string(field, value)),
        }
    }

    /// The length bound applies to the normalised address, as in pydantic.
    fn check_email(&mut self, field: &str, value: &Value) -> Option<String> {
        let Some(text) = value.as_str() else {
            return self.check_string(field, value);
        };
        if let Some(issue) = nul_issue(&["body", field], text) {
            self.issues.push(issue);
            return None;
        }
        let max = self.rules.get(field).max_length;
        match normalise_email(text) {
            Ok(email) if email.chars().count() <= max => Some(email),
            Ok(_) => {
                let msg = format!("String should have at most {max} characters");
                self.push("string_too_long", field, msg, value, Some(json!({ "max_length": max })));
                None
            }
            Err(reason) => {
                let msg = format!("value is not a valid email address: {reason}");
                self.push("value_error", field, msg, value, Some(json!({ "reason": reason })));
                None
            }
        }
    }

    pub fn email(&mut self, field: &str) -> String {
        match self.object.get(field) {
            None => {
                self.missing(field);
                String::new()
            }
            Some(value) => self.check_email(field, value).unwrap_or_default(),
        }
    }

    /// An optional email; null counts as absent (the column is NOT NULL).
    pub fn optional_email(&mut self, field: &str) -> Option<String> {
        match self.object.get(field)? {
            Value::Null => None,
            value => self.check_email(field, value),
        }
    }

    /// An optional JSON object; null counts as absent.
    pub fn optional_object(&mut self, field: &str) -> Option<Map<String, Value>> {
        match self.object.get(field)? {
            Value::Null => None,
            Value::Object(object) => Some(object.clone()),
            other => {
                let msg = "Input should be a valid dictionary";
                self.push("dict_type", field, msg, &other.clone(), None);
                None
            }
        }
    }

    /// An optional integer within its schema's limits; null counts as absent.
    pub fn optional_int(&mut self, field: &str) -> Option<i64> {
        let Rule { minimum: min, maximum: max, .. } = self.rules.get(field);
        let value = self.object.get(field)?.clone();
        let parsed = match &value {
            Value::Null => return None,
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(number) = parsed else {
            self.push("int_parsing", field, "Input should be a valid integer", &value, None);
            return None;
        };
        if number < min {
            let msg = format!("Input should be greater than or equal to {min}");
            self.push("greater_than_equal", field, msg, &value, Some(json!({ "ge": min })));
            return None;
        }
        if number > max {
            let msg = format!("Input should be less than or equal to {max}");
            self.push("less_than_equal", field, msg, &value, Some(json!({ "le": max })));
            return None;
        }
        Some(number)
    }

    /// An optional RFC 3339 timestamp (with an offset); null counts as absent.
    pub fn optional_datetime(&mut self, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let value = self.object.get(field)?.clone();
        if value.is_null() {
            return None;
        }
        let parsed = value.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        if parsed.is_none() {
            let msg = "Input should be a valid datetime with a timezone offset";
            self.push("datetime_parsing", field, msg, &value, None);
        }
        parsed.map(|d| d.with_timezone(&chrono::Utc))
    }

    /// A boolean that, left out, takes its schema's `default` (false when
    /// it declares none).
    pub fn bool_or_default(&mut self, field: &str) -> bool {
        let default = self.rules.get(field).default.and_then(|d| d.as_bool()).unwrap_or_default();
        self.optional_bool(field).unwrap_or(default)
    }

    /// A boolean that may be left out but, as in pydantic, not sent as
    /// null; lax JSON mode for the rest.
    pub fn optional_bool(&mut self, field: &str) -> Option<bool> {
        let value = self.object.get(field)?;
        let parsed = match value {
            Value::Null => {
                self.push("bool_type", field, "Input should be a valid boolean", value, None);
                return None;
            }
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.push("bool_parsing", field, "Input should be a valid boolean, unable to interpret input", value, None);
        }
        parsed
    }
}

/// Validates an address the way pydantic's `EmailStr` (email-validator)
/// does for the cases clients meet, returning it with the domain lowercased.
pub fn normalise_email(text: &str) -> Result<String, String> {
    let text = text.trim();
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err("An email address must have an @-sign.".into());
    };
    if local.contains('@') {
        return Err("The email address is not valid. It must have exactly one @-sign.".into());
    }
    if local.is_empty() {
        return Err("There must be something before the @-sign.".into());
    }
    if domain.is_empty() {
        return Err("There must be something after the @-sign.".into());
    }
    if local.len() > 64 {
        return Err("The email address is too long before the @-sign.".into());
    }
    let allowed_local = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if let Some(bad) = local.chars().find(|c| !allowed_local(*c)) {
        return Err(format!("The email address contains invalid characters before the @-sign: '{bad}'."));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("The email address contains a period in an invalid position before the @-sign.".into());
    }
    let domain = domain.to_lowercase();
    if !domain.contains('.') {
        return Err("The part after the @-sign is not valid. It should have a period.".into());
    }
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !labels_ok {
        return Err(format!("The part after the @-sign is not valid: {domain}"));
    }
    let tld = domain.rsplit('.').next().unwrap_or_default();
    if tld.chars().all(|c| c.is_ascii_digit()) {
        return Err("The part after the @-sign is not valid. It is not within a valid top-level domain.".into());
    }
    if ["local", "localhost", "invalid", "test", "onion", "arpa"].contains(&tld) {
        return Err(
            "The part after the @-sign is a special-use or reserved name that cannot be used with email.".into()
        );
    }
    Ok(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_like_email_validator() {
        assert_eq!(normalise_email("Someone@Example.COM").unwrap(), "Someone@example.com");
        for bad in [
            "plain",
            "a@b@c.com",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa_mple.com",
            "a..b@example.com",
            "x@example.test",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad} accepted");
        }
        assert!(normalise_email("o'neil+tag@sub.example.co.uk").is_ok());
    }
}
