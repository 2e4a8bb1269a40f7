use std::collections::HashMap;

use super::*;
use vars::ReadBy;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const STRONG: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn local_defaults_need_nothing() {
    let loaded = Settings::from_map(ReadBy::Api, &env(&[])).expect("defaults are valid in local");
    let s = loaded.settings;
    assert_eq!(s.environment, Environment::Local);
    assert_eq!(s.database.url.expose(), "sqlite:./data/app.db");
    assert_eq!(s.http.listen_addr.to_string(), "127.0.0.1:8000", "local listens on loopback");
    assert_eq!(s.metrics_addr.to_string(), "127.0.0.1:9100");
    assert_eq!(s.log_format, LogFormat::PrettyOnTerminal);
    assert!(s.migrate_on_start);
    assert!(!s.email_enabled());
    assert_eq!(s.secret_key.expose().len(), 64, "a random key is generated");
    assert!(loaded.warnings.iter().any(|w| w.contains("SECRET_KEY is unset")));
    assert!(loaded.warnings.iter().any(|w| w.starts_with("FIRST_SUPERUSER_PASSWORD")));
}

#[test]
fn listen_and_metrics_defaults_follow_the_environment_and_the_binary() {
    let production =
        env(&[("ENVIRONMENT", "production"), ("SECRET_KEY", STRONG), ("FIRST_SUPERUSER_PASSWORD", "s3cure-enough")]);
    let api = Settings::from_map(ReadBy::Api, &production).unwrap().settings;
    assert_eq!(api.http.listen_addr.to_string(), "0.0.0.0:8000", "outside local the api listens on every interface");
    assert_eq!(api.metrics_addr.to_string(), "127.0.0.1:9100");
    // The README's api and worker side by side on one machine: no shared port.
    let worker = Settings::from_map(ReadBy::Worker, &env(&[])).unwrap().settings;
    assert_eq!(worker.metrics_addr.to_string(), "127.0.0.1:9101");
    let set = Settings::from_map(ReadBy::Api, &env(&[("LISTEN_ADDR", "0.0.0.0:8000")])).unwrap().settings;
    assert_eq!(set.http.listen_addr.to_string(), "0.0.0.0:8000", "an explicit LISTEN_ADDR wins in local");
}

#[test]
fn fastapi_env_development_means_local() {
    let s = Settings::from_map(ReadBy::Api, &env(&[("FASTAPI_ENV", "development")])).unwrap().settings;
    assert_eq!(s.environment, Environment::Local);
}

#[test]
fn every_problem_is_reported_at_once_with_its_variable() {
    let err = Settings::from_map(
        ReadBy::Api,
        &env(&[
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY", "changethis"),
            ("FIRST_SUPERUSER_PASSWORD", "changethis"),
            ("DATABASE_URL", "postgresql://app:changethis@db/app"),
            ("DATABASE_POOL_SIZE", "lots"),
            ("LISTEN_ADDR", "8000"),
            ("MIGRATE_ON_START", "maybe"),
            ("BACKEND_CORS_ORIGINS", "*"),
            ("FRONTEND_HOST", "*"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
        ]),
    )
    .unwrap_err();
    let vars: Vec<&str> = err.problems.iter().map(|p| p.var.as_str()).collect();
    for expected in [
        "SECRET_KEY",
        "FIRST_SUPERUSER_PASSWORD",
        "DATABASE_URL",
        "DATABASE_POOL_SIZE",
        "LISTEN_ADDR",
        "MIGRATE_ON_START",
        "BACKEND_CORS_ORIGINS",
        "FRONTEND_HOST",
        "TRUSTED_PROXIES",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {err}");
    }
    let text = err.to_string();
    assert!(text.contains("DATABASE_POOL_SIZE: `lots` is not a positive whole number"), "{text}");
    assert!(!text.contains("changethis@"), "the database password must not be printed: {text}");
}

#[test]
fn outside_local_secret_key_is_required_and_long() {
    let missing = Settings::from_map(
        ReadBy::Api,
        &env(&[("ENVIRONMENT", "staging"), ("FIRST_SUPERUSER_PASSWORD", "s3cure-enough")]),
    )
    .unwrap_err();
    assert_eq!(missing.problems[0].var, "SECRET_KEY");
    assert!(missing.problems[0].message.contains("required"));

    let short = Settings::from_map(
        ReadBy::Api,
        &env(&[("ENVIRONMENT", "staging"), ("SECRET_KEY", "short"), ("FIRST_SUPERUSER_PASSWORD", "s3cure-enough")]),
    )
    .unwrap_err();
    assert!(short.problems[0].message.contains("shorter than 32 bytes"));
}

#[test]
fn weak_secrets_are_warnings_in_local() {
    let loaded = Settings::from_map(ReadBy::Api, &env(&[("SECRET_KEY", "changethis")])).unwrap();
    assert!(loaded.warnings.iter().any(|w| w.starts_with("SECRET_KEY is `changethis`")));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret_key");
    std::fs::write(&path, format!("{STRONG}\n")).unwrap();
    let s = Settings::from_map(
        ReadBy::Api,
        &env(&[
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY_FILE", path.to_str().unwrap()),
            ("FIRST_SUPERUSER_PASSWORD", "s3cure-enough"),
        ]),
    )
    .unwrap()
    .settings;
    assert_eq!(s.secret_key.expose(), STRONG, "the trailing newline is dropped");

    let err = Settings::from_map(ReadBy::Api, &env(&[("SECRET_KEY_FILE", "/nonexistent/secret")])).unwrap_err();
    assert_eq!(err.problems[0].var, "SECRET_KEY_FILE");

    let both =
        Settings::from_map(ReadBy::Api, &env(&[("SECRET_KEY", STRONG), ("SECRET_KEY_FILE", path.to_str().unwrap())]))
            .unwrap_err();
    assert!(both.problems[0].message.contains("keep only one"));
}

#[test]
fn postgres_pieces_build_the_url_like_the_fastapi_stack() {
    let s = Settings::from_map(
        ReadBy::Api,
        &env(&[
            ("POSTGRES_SERVER", "db"),
            ("POSTGRES_USER", "app"),
            ("POSTGRES_PASSWORD", "pw"),
            ("POSTGRES_DB", "appdb"),
        ]),
    )
    .unwrap()
    .settings;
    assert_eq!(s.database.url.expose(), "postgresql://app:pw@db:5432/appdb");
}

#[test]
fn postgres_pieces_with_url_characters_keep_their_meaning() {
    let password = "p@ss:w/rd?#%é";
    let s = Settings::from_map(
        ReadBy::Api,
        &env(&[("POSTGRES_SERVER", "db"), ("POSTGRES_USER", "app user"), ("POSTGRES_PASSWORD", password)]),
    )
    .unwrap()
    .settings;
    let options: sqlx::postgres::PgConnectOptions = s.database.url.expose().parse().unwrap();
    assert_eq!(options.get_host(), "db");
    assert_eq!(options.get_username(), "app user");
    assert_eq!(options.get_database(), Some("app"));
    assert!(format!("{options:?}").contains(&format!("password: Some({password:?})")), "{options:?}");
}

#[test]
fn another_database_on_the_same_postgres_server_keeps_everything_but_the_name() {
    let on = |url: &str| {
        let s = Settings::from_map(ReadBy::Worker, &env(&[("DATABASE_URL", url)])).unwrap().settings;
        s.database.on_database("app_restore").map(|d| d.url.expose().to_owned())
    };
    assert_eq!(
        on("postgres://app:p%40ss@db:5432/app?sslmode=require").unwrap(),
        "postgres://app:p%40ss@db:5432/app_restore?sslmode=require"
    );
    assert_eq!(on("postgresql://db").unwrap(), "postgresql://db/app_restore");
    assert_eq!(on("postgresql://db?application_name=x").unwrap(), "postgresql://db/app_restore?application_name=x");
    assert_eq!(on("sqlite:./data/app.db"), None);
    let pieces = env(&[("POSTGRES_SERVER", "db"), ("POSTGRES_PASSWORD", "p@ss:w/rd?#")]);
    let s = Settings::from_map(ReadBy::Worker, &pieces).unwrap().settings;
    let options: sqlx::postgres::PgConnectOptions =
        s.database.on_database("app_restore").unwrap().url.expose().parse().unwrap();
    assert_eq!((options.get_host(), options.get_database()), ("db", Some("app_restore")));
}

#[test]
fn debug_output_never_shows_secrets() {
    let s = Settings::from_map(
        ReadBy::Api,
        &env(&[
            ("SECRET_KEY", STRONG),
            ("FIRST_SUPERUSER_PASSWORD", "topsecret-pw"),
            ("SMTP_HOST", "smtp.example.com"),
            ("EMAILS_FROM_EMAIL", "info@example.com"),
            ("SMTP_PASSWORD", "smtp-pw"),
        ]),
    )
    .unwrap()
    .settings;
    let debug = format!("{s:?}");
    let effective = format!("{:?}", s.effective(ReadBy::Api));
    for secret in [STRONG, "topsecret-pw", "smtp-pw"] {
        assert!(!debug.contains(secret), "{secret} leaked in Debug");
        assert!(!effective.contains(secret), "{secret} leaked in effective()");
    }
    assert!(s.email_enabled());
}

#[test]
fn cors_origins_include_the_frontend_and_the_explicit_list() {
    let s = Settings::from_map(
        ReadBy::Api,
        &env(&[
            ("FRONTEND_HOST", "https://app.example.com/"),
            ("BACKEND_CORS_ORIGINS", "[\"https://admin.example.com\", \"https://app.example.com\"]"),
        ]),
    )
    .unwrap()
    .settings;
    assert_eq!(s.http.cors_origins, vec!["https://app.example.com", "https://admin.example.com"]);
}

#[test]
fn every_variable_read_is_declared_and_documented() {
    // `Reader::raw` debug-asserts that a variable is declared; reading a full
    // environment exercises every read path.
    let all: HashMap<String, String> = vars::VARS.iter().map(|v| (v.name.to_owned(), String::new())).collect();
    Settings::from_map(ReadBy::Api, &all).unwrap();
    let help = vars::help_text(vars::ReadBy::Api);
    assert!(help.contains("DATABASE_URL") && !help.contains("SECRET_KEY_FILE"));
    assert!(help.contains("<NAME>_FILE"));
}

#[test]
fn the_worker_is_not_stopped_by_variables_only_the_api_reads() {
    let production = env(&[("ENVIRONMENT", "production"), ("SECRET_KEY", STRONG)]);
    assert!(Settings::from_map(ReadBy::Worker, &production).is_ok());
    let err = Settings::from_map(ReadBy::Api, &production).unwrap_err();
    assert_eq!(err.problems[0].var, "FIRST_SUPERUSER_PASSWORD");
}

/// Every variable the FastAPI template's backend reads (its `Settings`
/// class, release 0.10.0) is either read here or named at start as ignored.
#[test]
fn every_variable_of_the_fastapi_templates_backend_works_or_is_reported() {
    const TEMPLATE_SETTINGS: &[&str] = &[
        "API_V1_STR",
        "SECRET_KEY",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "FRONTEND_HOST",
        "ENVIRONMENT",
        "BACKEND_CORS_ORIGINS",
        "PROJECT_NAME",
        "SENTRY_DSN",
        "POSTGRES_SERVER",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "SMTP_TLS",
        "SMTP_SSL",
        "SMTP_PORT",
        "SMTP_HOST",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "EMAILS_FROM_EMAIL",
        "EMAILS_FROM_NAME",
        "EMAIL_RESET_TOKEN_EXPIRE_HOURS",
        "EMAIL_TEST_USER",
        "FIRST_SUPERUSER",
        "FIRST_SUPERUSER_PASSWORD",
    ];
    let loaded =
        Settings::from_map(ReadBy::Api, &env(&[("API_V1_STR", "/api/v2"), ("EMAIL_TEST_USER", "test@example.com")]))
            .unwrap();
    for name in TEMPLATE_SETTINGS {
        let read = vars::find(name).is_some_and(|v| v.read_by != ReadBy::Worker);
        let reported = loaded.warnings.iter().any(|w| w.starts_with(&format!("{name} is set but not read")));
        assert!(read || reported, "{name} is neither read nor reported");
    }
    // The template's own value for the prefix is ours: nothing to report.
    let same = Settings::from_map(ReadBy::Api, &env(&[("API_V1_STR", "/api/v1")])).unwrap();
    assert!(!same.warnings.iter().any(|w| w.contains("API_V1_STR")));
}

#[test]
fn sentry_dsn_is_used_outside_local_only_and_checked() {
    let dsn = "https://public@sentry.example.com/42";
    let local = Settings::from_map(ReadBy::Api, &env(&[("SENTRY_DSN", dsn)])).unwrap();
    assert!(local.settings.sentry_dsn.is_none());
    assert!(local.warnings.iter().any(|w| w.contains("SENTRY_DSN is ignored in ENVIRONMENT=local")));
    let staging = env(&[
        ("ENVIRONMENT", "staging"),
        ("SECRET_KEY", STRONG),
        ("FIRST_SUPERUSER_PASSWORD", "a-strong-password"),
        ("SENTRY_DSN", dsn),
    ]);
    let loaded = Settings::from_map(ReadBy::Worker, &staging).unwrap();
    assert_eq!(loaded.settings.sentry_dsn.unwrap().expose(), dsn);
    let mut broken = staging.clone();
    broken.insert("SENTRY_DSN".into(), "not a dsn".into());
    let err = Settings::from_map(ReadBy::Api, &broken).unwrap_err();
    assert!(err.problems.iter().any(|p| p.var == "SENTRY_DSN"), "{err}");
}

#[test]
fn a_short_first_superuser_password_is_refused_outside_local() {
    let production = |password: &str| {
        Settings::from_map(
            ReadBy::Api,
            &env(&[("ENVIRONMENT", "production"), ("SECRET_KEY", STRONG), ("FIRST_SUPERUSER_PASSWORD", password)]),
        )
    };
    let err = production("x").unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].var, "FIRST_SUPERUSER_PASSWORD");
    assert!(err.problems[0].message.contains("shorter than 8 characters"), "{err}");
    // Characters, not bytes, as pydantic's min_length counts them.
    assert!(production("ééééééé").is_err(), "7 characters (14 bytes) are too short");
    assert!(production("éééééééé").is_ok(), "8 characters are enough");
    let local = Settings::from_map(ReadBy::Api, &env(&[("FIRST_SUPERUSER_PASSWORD", "x")])).unwrap();
    assert!(
        local.warnings.iter().any(|w| w.starts_with("FIRST_SUPERUSER_PASSWORD is shorter")),
        "{:?}",
        local.warnings
    );
    let worker = Settings::from_map(
        ReadBy::Worker,
        &env(&[("ENVIRONMENT", "production"), ("SECRET_KEY", STRONG), ("FIRST_SUPERUSER_PASSWORD", "x")]),
    );
    assert!(worker.is_ok(), "the worker never reads FIRST_SUPERUSER_PASSWORD");
}

#[test]
fn effective_configuration_lists_what_each_binary_reads() {
    let s = Settings::from_map(ReadBy::Api, &env(&[])).unwrap().settings;
    for (binary, other) in [(ReadBy::Api, ReadBy::Worker), (ReadBy::Worker, ReadBy::Api)] {
        let names: Vec<&str> = s.effective(binary).iter().map(|(name, _)| *name).collect();
        for var in vars::VARS.iter().filter(|v| v.read_by == other) {
            assert!(!names.contains(&var.name), "{} is not read by {binary:?} but shown", var.name);
        }
        assert!(names.contains(&"DATABASE_URL") && names.contains(&"SMTP_TLS"), "{names:?}");
    }
    // Email off: its settings still show the values in force, not "unset".
    let shown: HashMap<&str, String> = s.effective(ReadBy::Api).into_iter().collect();
    assert_eq!(shown["SMTP_TLS"], "true");
    assert_eq!(shown["SMTP_SSL"], "false");
    assert_eq!(shown["SMTP_PORT"], "587");
    assert_eq!(shown["SMTP_HOST"], "unset");
    assert!(shown["email"].starts_with("disabled"));
}

#[test]
fn every_declared_variable_is_read_and_shown_by_its_binaries() {
    // POSTGRES_* are read only when DATABASE_URL is unset and POSTGRES_SERVER is set.
    let environments = [env(&[]), env(&[("POSTGRES_SERVER", "db")])];
    for binary in [ReadBy::Api, ReadBy::Worker] {
        let mut shown = std::collections::HashSet::new();
        for environment in &environments {
            let loaded = Settings::from_map(binary, environment).unwrap();
            shown.extend(loaded.settings.effective(binary).into_iter().map(|(name, _)| name));
        }
        for var in vars::VARS.iter().filter(|v| v.is_read_by(binary)) {
            assert!(shown.contains(var.name), "{} is declared for {binary:?} but never read", var.name);
        }
    }
}

#[test]
fn config_check_shows_the_declared_defaults_in_force() {
    // POSTGRES_SERVER set, so that the other POSTGRES_* are read too.
    let s = Settings::from_map(ReadBy::Worker, &env(&[("POSTGRES_SERVER", "db")])).unwrap().settings;
    let shown: HashMap<&str, String> = s.effective(ReadBy::Worker).into_iter().collect();
    for var in vars::VARS.iter().filter(|v| v.is_read_by(ReadBy::Worker)) {
        // Literal defaults only: the others are worked out (and said so in their text).
        let literal = !var.default.is_empty() && !var.default.contains(' ') && !var.secret;
        if literal && var.name != "EMAILS_FROM_NAME" && var.name != "ENVIRONMENT" {
            assert_eq!(shown[var.name], var.default, "{}", var.name);
        }
    }
}
