//! The emails of the API contract, rendered with minijinja from the HTML
//! templates under `crates/shared-core/templates/email/` (embedded in the
//! binary). Templates ending in `.html` are auto-escaped, so a project name or
//! an address with `<`, `&` or quotes cannot inject markup.

use std::fmt;
use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, context};

use super::Email;

const TEMPLATES: &[(&str, &str)] = &[
    ("email/base.html", include_str!("../../templates/email/base.html")),
    ("email/reset_password.html", include_str!("../../templates/email/reset_password.html")),
    ("email/new_account.html", include_str!("../../templates/email/new_account.html")),
    ("email/test_email.html", include_str!("../../templates/email/test_email.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A misspelt variable is an error (caught by the tests), not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    for (name, source) in TEMPLATES {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(template = name, error = %err, "email template does not compile");
        }
    }
    env
});

/// minijinja's own HTML escaping also turns `/` into `&#x2f;`, which would
/// leave no literal `https://...` link in the HTML (tests, and people reading
/// the source of the email, look for it). Escaping `& < > " '` is enough for
/// text and for double-quoted attribute values.
fn html_formatter(out: &mut minijinja::Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    if state.auto_escape() == AutoEscape::Html && !value.is_safe() && !value.is_undefined() && !value.is_none() {
        return Ok(escape_html(out, &value.to_string())?);
    }
    minijinja::escape_formatter(out, state, value)
}

fn escape_html(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '&' => out.write_str("&amp;")?,
            '<' => out.write_str("&lt;")?,
            '>' => out.write_str("&gt;")?,
            '"' => out.write_str("&quot;")?,
            '\'' => out.write_str("&#x27;")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

fn render(name: &str, ctx: Value, fallback: &str) -> String {
    let rendered = ENV.get_template(name).and_then(|template| template.render(ctx));
    rendered.unwrap_or_else(|err| {
        // Unreachable while the tests pass; still send something usable.
        tracing::error!(template = name, error = %err, "email template failed to render");
        let mut escaped = String::new();
        let _ = escape_html(&mut escaped, fallback);
        format!("<!DOCTYPE html><html><body><p>{escaped}</p></body></html>")
    })
}

/// Password recovery: a link to `{FRONTEND_HOST}/reset-password?token={token}`
/// valid for `EMAIL_RESET_TOKEN_EXPIRE_HOURS`.
pub fn reset_password(settings: &crate::Settings, email_to: &str, token: &str) -> Email {
    let project_name = &settings.project_name;
    let link = format!("{}/reset-password?token={token}", settings.frontend_host);
    let valid_hours = (settings.email_reset_token_expire.as_secs() / 3600).max(1);
    let html = render(
        "email/reset_password.html",
        context! { project_name, username => email_to, email => email_to, link, valid_hours },
        &format!("Reset your password: {link}"),
    );
    Email { to: email_to.to_owned(), subject: format!("{project_name} - Password recovery for user {email_to}"), html }
}

/// A superuser created an account for `username`.
///
/// The FastAPI template's email also contains the account's password in
/// clear text. We deliberately leave it out: email is not a safe channel for
/// secrets, and the person who created the account already knows it (the
/// user can also set their own through password recovery).
pub fn new_account(settings: &crate::Settings, email_to: &str, username: &str) -> Email {
    let project_name = &settings.project_name;
    let link = &settings.frontend_host;
    let html = render(
        "email/new_account.html",
        context! { project_name, username, email => email_to, link },
        &format!("A new {project_name} account was created for {username}: {link}"),
    );
    Email { to: email_to.to_owned(), subject: format!("{project_name} - New account for user {username}"), html }
}

/// `POST /api/v1/utils/test-email/`: proves that delivery works.
pub fn test_email(settings: &crate::Settings, email_to: &str) -> Email {
    let project_name = &settings.project_name;
    let html = render(
        "email/test_email.html",
        context! { project_name, email => email_to },
        &format!("Test email for: {project_name}"),
    );
    Email { to: email_to.to_owned(), subject: format!("{project_name} - Test email"), html }
}
