#![allow(clippy::unwrap_used)]
//! Email: the templates, and the mailer talking SMTP over a real socket to the
//! `SmtpCatcher` of `shared_core::testing`.

use std::collections::HashMap;
use std::time::Duration;

use shared_core::Settings;
use shared_core::email::{Email, EmailError, Mailer, templates};
use shared_core::testing::{CaughtMessage, SmtpCatcher};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

fn settings(vars: &[(&str, &str)]) -> Settings {
    let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Settings::from_map(shared_core::config::vars::ReadBy::Api, &env).unwrap().settings
}

/// Settings pointing at the catcher over plain SMTP, plus `extra`.
fn smtp_settings(catcher: &SmtpCatcher, extra: &[(&str, &str)]) -> Settings {
    let port = catcher.port().to_string();
    let mut vars = vec![
        ("PROJECT_NAME", "Acme"),
        ("FRONTEND_HOST", "https://app.example.com"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_TLS", "false"),
        ("EMAILS_FROM_EMAIL", "noreply@example.com"),
        ("EMAILS_FROM_NAME", "Acme Mailer"),
    ];
    vars.extend_from_slice(extra);
    settings(&vars)
}

fn mailer(settings: &Settings) -> Mailer {
    Mailer::from_settings(settings).expect("email is enabled").unwrap()
}

// ---- templates -------------------------------------------------------------

#[test]
fn reset_password_email_has_the_link_and_the_expiry() {
    let s = settings(&[
        ("PROJECT_NAME", "Acme"),
        ("FRONTEND_HOST", "https://app.example.com/"),
        ("EMAIL_RESET_TOKEN_EXPIRE_HOURS", "5"),
    ]);
    let email = templates::reset_password(&s, "ann@example.com", "abc.DEF-123_x");
    assert_eq!(email.to, "ann@example.com");
    assert_eq!(email.subject, "Acme - Password recovery for user ann@example.com");
    assert!(email.html.starts_with("<!DOCTYPE html>"), "{}", email.html);
    assert!(email.html.trim_end().ends_with("</html>"), "{}", email.html);
    let link = "https://app.example.com/reset-password?token=abc.DEF-123_x";
    assert!(email.html.contains(&format!("href=\"{link}\"")), "{}", email.html);
    assert!(email.html.contains(&format!(">{link}</a>")), "{}", email.html);
    assert!(email.html.contains("expires in 5 hours"), "{}", email.html);
    assert!(email.html.contains("ann@example.com"));

    let one_hour = settings(&[("EMAIL_RESET_TOKEN_EXPIRE_HOURS", "1")]);
    let email = templates::reset_password(&one_hour, "ann@example.com", "t");
    assert!(email.html.contains("expires in 1 hour."), "{}", email.html);
    // Default FRONTEND_HOST and expiry (48 h).
    let email = templates::reset_password(&settings(&[]), "ann@example.com", "t");
    assert!(email.html.contains("http://localhost:5173/reset-password?token=t"));
    assert!(email.html.contains("expires in 48 hours"));
}

#[test]
fn new_account_email_links_to_the_frontend_and_has_no_password() {
    let s = settings(&[("PROJECT_NAME", "Acme"), ("FRONTEND_HOST", "https://app.example.com")]);
    let email = templates::new_account(&s, "bob@example.com", "bob@example.com");
    assert_eq!(email.to, "bob@example.com");
    assert_eq!(email.subject, "Acme - New account for user bob@example.com");
    assert!(email.html.contains("href=\"https://app.example.com\""), "{}", email.html);
    assert!(email.html.contains("<strong>bob@example.com</strong>"), "{}", email.html);
    assert!(!email.html.to_lowercase().contains("password:"), "{}", email.html);
}

#[test]
fn test_email_subject_and_body() {
    let s = settings(&[("PROJECT_NAME", "Acme")]);
    let email = templates::test_email(&s, "ops@example.com");
    assert_eq!(
        email,
        Email { to: "ops@example.com".into(), subject: "Acme - Test email".into(), html: email.html.clone() }
    );
    assert!(email.html.contains("Test email for: Acme"), "{}", email.html);
}

#[test]
fn templates_escape_a_hostile_project_name_and_user_name() {
    let hostile = r#"<script>alert("x")</script> & 'Co'"#;
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;Co&#x27;";
    let s = settings(&[("PROJECT_NAME", hostile), ("FRONTEND_HOST", "https://app.example.com")]);
    for email in [
        templates::reset_password(&s, "ann@example.com", "tok"),
        templates::new_account(&s, "ann@example.com", "<img src=x onerror=alert(1)>"),
        templates::test_email(&s, "ann@example.com"),
    ] {
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(!email.html.contains("<img"), "{}", email.html);
        assert!(email.html.contains(escaped), "{}", email.html);
        // The subject is a plain-text header: no HTML escaping there.
        assert!(email.subject.starts_with(hostile), "{}", email.subject);
    }
    let email = templates::new_account(&s, "ann@example.com", "<img src=x onerror=alert(1)>");
    assert!(email.html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", email.html);
}

// ---- Mailer::from_settings -------------------------------------------------

#[test]
fn email_is_disabled_without_smtp_host_or_from_email() {
    assert!(Mailer::from_settings(&settings(&[])).is_none());
    assert!(Mailer::from_settings(&settings(&[("SMTP_HOST", "smtp.example.com")])).is_none());
    assert!(Mailer::from_settings(&settings(&[("EMAILS_FROM_EMAIL", "noreply@example.com")])).is_none());
    let both = settings(&[("SMTP_HOST", "smtp.example.com"), ("EMAILS_FROM_EMAIL", "noreply@example.com")]);
    assert!(Mailer::from_settings(&both).unwrap().is_ok());
    let ssl = settings(&[
        ("SMTP_HOST", "smtp.example.com"),
        ("SMTP_PORT", "465"),
        ("SMTP_TLS", "false"),
        ("SMTP_SSL", "true"),
        ("EMAILS_FROM_EMAIL", "noreply@example.com"),
    ]);
    assert!(Mailer::from_settings(&ssl).unwrap().is_ok());
}

#[test]
fn a_bad_from_address_is_a_build_error() {
    let s = settings(&[("SMTP_HOST", "smtp.example.com"), ("EMAILS_FROM_EMAIL", "not an address")]);
    let err = Mailer::from_settings(&s).unwrap().unwrap_err();
    assert!(matches!(err, EmailError::Build(_)), "{err:?}");
    assert!(err.to_string().contains("EMAILS_FROM_EMAIL"), "{err}");
}

#[test]
fn debug_output_has_no_password() {
    let s = settings(&[
        ("SMTP_HOST", "smtp.example.com"),
        ("EMAILS_FROM_EMAIL", "noreply@example.com"),
        ("SMTP_USER", "mailer"),
        ("SMTP_PASSWORD", "hunter2-very-secret"),
    ]);
    let debug = format!("{:?}", mailer(&s));
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("smtp.example.com:587 (STARTTLS)"), "{debug}");
}

// ---- sending over a real socket --------------------------------------------

#[tokio::test]
async fn sends_each_kind_of_email_to_the_catcher() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let mailer = mailer(&s);

    let emails = [
        templates::reset_password(&s, "ann@example.com", "tok.en-1"),
        templates::new_account(&s, "bob@example.com", "bob@example.com"),
        templates::test_email(&s, "ops@example.com"),
    ];
    for email in &emails {
        mailer.send(email, None).await.unwrap();
    }
    let caught = catcher.wait_for(3, WAIT).await;
    assert_eq!(caught.len(), 3);
    for (email, message) in emails.iter().zip(&caught) {
        assert_eq!(message.from, "noreply@example.com");
        assert_eq!(message.to, vec![email.to.clone()]);
        assert_eq!(message.header("Subject").as_deref(), Some(email.subject.as_str()));
        assert_eq!(message.header("To").as_deref(), Some(email.to.as_str()));
        let from = message.header("From").unwrap();
        assert!(from.contains("Acme Mailer") && from.contains("<noreply@example.com>"), "{from}");
        assert!(message.header("Content-Type").unwrap().starts_with("text/html"), "{}", message.data);
        assert_eq!(message.html_body(), email.html);
        assert_eq!(message.auth_user, None);
    }
    assert!(caught[0].html_body().contains("https://app.example.com/reset-password?token=tok.en-1"));
}

#[tokio::test]
async fn from_name_defaults_to_the_project_name() {
    let catcher = SmtpCatcher::start().await;
    let port = catcher.port().to_string();
    let s = settings(&[
        ("PROJECT_NAME", "Widget Works"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "false"),
        ("EMAILS_FROM_EMAIL", "noreply@example.com"),
    ]);
    mailer(&s).send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap();
    let caught = catcher.wait_for(1, WAIT).await;
    let from = caught[0].header("From").unwrap();
    assert!(from.contains("Widget Works") && from.contains("noreply@example.com"), "{from}");
}

#[tokio::test]
async fn non_ascii_and_long_lines_survive_the_transfer_encoding() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[("PROJECT_NAME", "Café Zoë")]);
    let token = "x".repeat(1200); // longer than an SMTP line may be
    let email = templates::reset_password(&s, "zoë@example.com", &token);
    mailer(&s).send(&email, None).await.unwrap();
    let caught = catcher.wait_for(1, WAIT).await;
    assert_eq!(caught.len(), 1);
    assert_eq!(caught[0].to, vec!["zoë@example.com".to_owned()]);
    let encoding = caught[0].header("Content-Transfer-Encoding").unwrap();
    assert!(encoding == "quoted-printable" || encoding == "base64", "{encoding}");
    let html = caught[0].html_body();
    assert_eq!(html, email.html);
    assert!(html.contains("Café Zoë"));
    assert!(html.contains(&format!("https://app.example.com/reset-password?token={token}")));
    assert!(caught[0].data.lines().all(|line| line.len() <= 998), "an over-long line went on the wire");
}

#[tokio::test]
async fn authenticates_when_smtp_user_is_set() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[("SMTP_USER", "mailer@example.com"), ("SMTP_PASSWORD", "s3cret pass")]);
    mailer(&s).send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap();
    let caught = catcher.wait_for(1, WAIT).await;
    assert_eq!(caught.len(), 1);
    assert_eq!(caught[0].auth_user.as_deref(), Some("mailer@example.com"));
    assert_eq!(caught[0].auth_password.as_deref(), Some("s3cret pass"));
}

#[tokio::test]
async fn a_refused_message_is_an_error_and_the_next_send_succeeds() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let mailer = mailer(&s);
    let email = templates::test_email(&s, "ops@example.com");

    catcher.refuse_next(1);
    let err = mailer.send(&email, None).await.unwrap_err();
    assert!(matches!(err, EmailError::Transport(_)), "{err:?}");
    assert!(catcher.messages().is_empty());

    mailer.send(&email, None).await.unwrap();
    assert_eq!(catcher.wait_for(1, WAIT).await.len(), 1);
}

/// A 5xx answer is a rejection retrying cannot fix; a build error too.
#[tokio::test]
async fn a_rejected_message_is_a_permanent_error() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let mailer = mailer(&s);
    catcher.reject_next(1);
    let err = mailer.send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap_err();
    assert!(matches!(err, EmailError::Rejected(_)) && err.is_permanent(), "{err:?}");
    let bad = mailer.send(&templates::test_email(&s, "not an address"), None).await.unwrap_err();
    assert!(matches!(bad, EmailError::Build(_)) && bad.is_permanent(), "{bad:?}");
    catcher.refuse_next(1);
    let transient = mailer.send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap_err();
    assert!(!transient.is_permanent(), "{transient:?}");
}

/// The Message-ID of a job's email comes from the job: sending it again
/// (after a crash) repeats it, so the copy is recognisable downstream.
#[tokio::test]
async fn the_message_id_comes_from_the_delivery_id() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let mailer = mailer(&s);
    let email = templates::test_email(&s, "ops@example.com");
    let job = uuid::Uuid::new_v4();
    mailer.send(&email, Some(job)).await.unwrap();
    mailer.send(&email, Some(job)).await.unwrap();
    mailer.send(&email, None).await.unwrap();
    let caught = catcher.wait_for(3, WAIT).await;
    let ids: Vec<String> = caught.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids[0], format!("<{}@example.com>", job.simple()));
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
}

#[tokio::test]
async fn starttls_is_required_when_smtp_tls_is_on() {
    // The catcher does not offer STARTTLS: the mailer must give up rather than
    // send credentials or mail in clear text.
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[("SMTP_TLS", "true"), ("SMTP_USER", "u"), ("SMTP_PASSWORD", "p")]);
    let err = mailer(&s).send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap_err();
    assert!(matches!(err, EmailError::Transport(_)), "{err:?}");
    assert!(catcher.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_without_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let port = port.to_string();
    let s = settings(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "false"),
        ("SMTP_USER", "mailer"),
        ("SMTP_PASSWORD", "hunter2-very-secret"),
        ("EMAILS_FROM_EMAIL", "noreply@example.com"),
    ]);
    let err = mailer(&s).send(&templates::test_email(&s, "ops@example.com"), None).await.unwrap_err();
    assert!(matches!(err, EmailError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_bad_recipient_is_a_build_error() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let email = Email { to: "nobody".into(), subject: "s".into(), html: "<p>x</p>".into() };
    let err = mailer(&s).send(&email, None).await.unwrap_err();
    assert!(matches!(err, EmailError::Build(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_sends_from_clones_all_arrive() {
    let catcher = SmtpCatcher::start().await;
    let s = smtp_settings(&catcher, &[]);
    let mailer = mailer(&s);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mailer = mailer.clone();
        let email = templates::test_email(&s, &format!("user{i}@example.com"));
        tasks.push(tokio::spawn(async move { mailer.send(&email, None).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut to: Vec<String> = catcher.wait_for(8, WAIT).await.into_iter().flat_map(|m| m.to).collect();
    to.sort();
    let mut expected: Vec<String> = (0..8).map(|i| format!("user{i}@example.com")).collect();
    expected.sort();
    assert_eq!(to, expected);
}

// ---- the catcher itself, by hand -------------------------------------------

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(catcher: &SmtpCatcher) -> Self {
        let (read, writer) = TcpStream::connect(("127.0.0.1", catcher.port())).await.unwrap().into_split();
        let mut client = Self { reader: BufReader::new(read), writer };
        assert!(client.reply().await.starts_with("220 "));
        client
    }

    /// The whole (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }
}

fn b64(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn catcher_speaks_smtp_by_hand() {
    let catcher = SmtpCatcher::start().await;
    let mut c = Client::connect(&catcher).await;

    let ehlo = c.cmd("EHLO test.local").await;
    assert!(ehlo.contains("8BITMIME") && ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("503"), "DATA before MAIL");
    assert!(c.cmd("RCPT TO:<a@b.c>").await.starts_with("503"), "RCPT before MAIL");
    assert!(c.cmd("BOGUS").await.starts_with("500"));

    // AUTH LOGIN, with challenges.
    assert!(c.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(c.cmd(&b64("login-user")).await.starts_with("334 UGFzc3dvcmQ6"));
    assert!(c.cmd(&b64("pw")).await.starts_with("235"));
    assert!(c.cmd("AUTH PLAIN").await.starts_with("503"), "already authenticated");

    // First message, with dot-stuffed lines.
    assert!(c.cmd("MAIL FROM:<sender@example.com> BODY=8BITMIME").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<one@example.com>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<two@example.com>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    // `..x` is `.x` and a `..` line is `.` (dot-stuffing); a lone `.` ends the data.
    let sent = "Subject: hi\r\n\r\n..leading dot\r\n..\r\n";
    c.writer.write_all(sent.as_bytes()).await.unwrap();
    assert!(c.cmd(".").await.starts_with("250"));

    // RSET drops a transaction in progress.
    assert!(c.cmd("MAIL FROM:<dropped@example.com>").await.starts_with("250"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("503"));

    // Second message on the same connection, refused once, then accepted.
    catcher.refuse_next(1);
    for expected in ["451", "250"] {
        assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
        assert!(c.cmd("RCPT TO:<three@example.com>").await.starts_with("250"));
        assert!(c.cmd("DATA").await.starts_with("354"));
        let reply = c.cmd("Subject: second\r\n\r\nbody\r\n.").await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    assert!(c.cmd("QUIT").await.starts_with("221"));

    // A second connection with AUTH PLAIN as an initial response.
    let mut c2 = Client::connect(&catcher).await;
    assert!(c2.cmd("HELO other").await.starts_with("250"));
    assert!(c2.cmd(&format!("AUTH PLAIN {}", b64("\0plain-user\0pw2"))).await.starts_with("235"));
    assert!(c2.cmd("MAIL FROM:<x@example.com>").await.starts_with("250"));
    assert!(c2.cmd("RCPT TO:<y@example.com>").await.starts_with("250"));
    assert!(c2.cmd("DATA").await.starts_with("354"));
    assert!(c2.cmd("Subject: third\r\n\r\nhello\r\n.").await.starts_with("250"));

    let caught: Vec<CaughtMessage> = catcher.wait_for(3, WAIT).await;
    assert_eq!(caught.len(), 3);
    assert_eq!(caught[0].from, "sender@example.com");
    assert_eq!(caught[0].to, vec!["one@example.com".to_owned(), "two@example.com".to_owned()]);
    assert_eq!(caught[0].data, "Subject: hi\r\n\r\n.leading dot\r\n.\r\n");
    assert_eq!(caught[0].auth_user.as_deref(), Some("login-user"));
    assert_eq!(caught[0].auth_password.as_deref(), Some("pw"));
    assert_eq!(caught[1].from, "");
    assert_eq!(caught[1].header("subject").as_deref(), Some("second"));
    assert_eq!(caught[2].auth_user.as_deref(), Some("plain-user"));
    assert_eq!(caught[2].data, "Subject: third\r\n\r\nhello\r\n");
}

#[tokio::test]
async fn wait_for_returns_what_it_has_after_the_timeout() {
    let catcher = SmtpCatcher::start().await;
    let started = std::time::Instant::now();
    assert!(catcher.wait_for(1, Duration::from_millis(100)).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(100));
}
