//! Test support (feature `test-support`, and this crate's own tests): a tiny
//! real SMTP server, [`SmtpCatcher`], that records what a [`crate::email::Mailer`]
//! sends to it; and [`python`], the virtualenv of the Python tools the tests call.
//!
//! ```ignore
//! let catcher = SmtpCatcher::start().await;
//! // SMTP_HOST=127.0.0.1, SMTP_PORT=catcher.port(), SMTP_TLS=false, EMAILS_FROM_EMAIL=...
//! let messages = catcher.wait_for(1, Duration::from_secs(5)).await;
//! assert!(messages[0].html_body().contains("/reset-password?token="));
//! ```
//!
//! `CaughtMessage::data` is the raw message as received (headers and body,
//! dot-unstuffed, CRLF line endings). lettre picks the body's
//! `Content-Transfer-Encoding` itself (`7bit` for short ASCII lines, otherwise
//! `quoted-printable` or `base64`), so read the HTML back with
//! [`CaughtMessage::html_body`], which decodes either, and the headers with
//! [`CaughtMessage::header`].

pub mod python;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const HOSTNAME: &str = "catcher.invalid";

/// One message accepted by the catcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtMessage {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The raw DATA: headers and body, dot-unstuffed, CRLF line endings.
    pub data: String,
    /// The user name the client authenticated with (AUTH PLAIN or LOGIN;
    /// any credentials are accepted), if it authenticated.
    pub auth_user: Option<String>,
    /// The password that came with `auth_user`.
    pub auth_password: Option<String>,
}

impl CaughtMessage {
    /// The first `text/html` part, with its transfer encoding (7bit, 8bit,
    /// quoted-printable or base64) undone and line endings turned into `\n`;
    /// empty when the message has no HTML part. For a message built from an
    /// [`crate::email::Email`] this equals its `html` (up to line endings).
    pub fn html_body(&self) -> String {
        find_part(&self.data, "text/html", true).unwrap_or_default()
    }

    /// A top-level header's value (unfolded, trimmed; name case-insensitive).
    /// Encoded words (RFC 2047, used by lettre for non-ASCII text) are
    /// returned as they are.
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = split_entity(&self.data);
        header(&headers, name).map(str::to_owned)
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<CaughtMessage>>,
    refuse: AtomicUsize,
}

impl Shared {
    fn take_refusal(&self) -> bool {
        self.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

/// A real SMTP server on `127.0.0.1:<random port>`, speaking plain SMTP:
/// EHLO/HELO (advertising 8BITMIME, SMTPUTF8 and AUTH PLAIN LOGIN, not STARTTLS), AUTH
/// (any credentials accepted, recorded on the messages), MAIL FROM, RCPT TO,
/// DATA, RSET, NOOP, QUIT; several messages per connection and any number of
/// connections. Stops when dropped.
pub struct SmtpCatcher {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for SmtpCatcher {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts the connections.
        self.accept.abort();
    }
}

impl SmtpCatcher {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("SmtpCatcher: cannot bind 127.0.0.1:0");
        let port = listener.local_addr().expect("SmtpCatcher: no local address").port();
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { port, shared, accept }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<CaughtMessage> {
        self.shared.messages.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Polls until at least `count` messages arrived or `timeout` passed, then
    /// returns what it has (check the length).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CaughtMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count || tokio::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next `n` DATA commands are answered with a transient failure (451) and not stored: for retry tests.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse.store(n, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (read, mut w) = stream.into_split();
    let mut r = BufReader::new(read);
    let mut tx = Transaction::default();
    let mut auth: Option<(String, String)> = None;

    reply(&mut w, &format!("220 {HOSTNAME} ESMTP SmtpCatcher ready")).await?;
    while let Some(line) = read_line(&mut r).await? {
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                tx = Transaction::default();
                let greeting = format!(
                    "250-{HOSTNAME} greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 HELP"
                );
                reply(&mut w, &greeting).await?;
            }
            "HELO" => {
                tx = Transaction::default();
                reply(&mut w, &format!("250 {HOSTNAME}")).await?;
            }
            "AUTH" if auth.is_some() => reply(&mut w, "503 5.5.1 Already authenticated").await?,
            "AUTH" => {
                if let Some(credentials) = authenticate(arg, &mut r, &mut w).await? {
                    auth = Some(credentials);
                    reply(&mut w, "235 2.7.0 Authentication successful").await?;
                }
            }
            "MAIL" => match path(arg, "FROM:") {
                Some(_) if tx.from.is_some() => reply(&mut w, "503 5.5.1 Nested MAIL command").await?,
                Some(address) => {
                    tx.from = Some(address);
                    reply(&mut w, "250 2.1.0 OK").await?;
                }
                None => reply(&mut w, "501 5.5.4 Syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" if tx.from.is_none() => reply(&mut w, "503 5.5.1 Need MAIL before RCPT").await?,
            "RCPT" => match path(arg, "TO:") {
                Some(address) => {
                    tx.to.push(address);
                    reply(&mut w, "250 2.1.5 OK").await?;
                }
                None => reply(&mut w, "501 5.5.4 Syntax: RCPT TO:<address>").await?,
            },
            "DATA" if tx.from.is_none() || tx.to.is_empty() => {
                reply(&mut w, "503 5.5.1 Need MAIL and RCPT before DATA").await?;
            }
            "DATA" => {
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut r).await? else {
                    return Ok(());
                };
                let tx = std::mem::take(&mut tx);
                if shared.take_refusal() {
                    reply(&mut w, "451 4.3.0 Temporary failure, try again later").await?;
                } else {
                    let message = CaughtMessage {
                        from: tx.from.unwrap_or_default(),
                        to: tx.to,
                        data,
                        auth_user: auth.as_ref().map(|(user, _)| user.clone()),
                        auth_password: auth.as_ref().map(|(_, password)| password.clone()),
                    };
                    shared.messages.lock().unwrap_or_else(PoisonError::into_inner).push(message);
                    reply(&mut w, "250 2.0.0 OK: queued").await?;
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut w, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "VRFY" => reply(&mut w, "252 2.1.5 Cannot verify, will accept").await?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut w, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

async fn reply(w: &mut (impl AsyncWrite + Unpin), text: &str) -> io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// One line without its line ending; `None` at end of stream.
async fn read_line(r: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if r.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The DATA lines up to the lone `.`, dot-unstuffed; `None` when the stream
/// ends first.
async fn read_data(r: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<String>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}

/// `FROM:<a@b>`-style argument (parameters after the path ignored).
fn path(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>').map(|(address, _)| address.to_owned()),
        None => rest.split_whitespace().next().map(str::to_owned),
    }
}

/// Runs an AUTH PLAIN or LOGIN exchange, accepting any credentials. On
/// failure it has already answered the client and returns `None`.
async fn authenticate(
    arg: &str,
    r: &mut (impl AsyncBufRead + Unpin),
    w: &mut (impl AsyncWrite + Unpin),
) -> io::Result<Option<(String, String)>> {
    let mut words = arg.split_whitespace();
    let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    match mechanism.as_str() {
        "PLAIN" => {
            let Some(response) = challenge(initial, "", r, w).await? else {
                return Ok(None);
            };
            // authzid NUL authcid NUL password
            let decoded = String::from_utf8_lossy(&response).into_owned();
            let mut fields = decoded.split('\0');
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(_), Some(user), Some(password), None) => Ok(Some((user.to_owned(), password.to_owned()))),
                _ => {
                    reply(w, "501 5.5.2 Malformed AUTH PLAIN response").await?;
                    Ok(None)
                }
            }
        }
        "LOGIN" => {
            // "Username:" and "Password:" in base64.
            let Some(user) = challenge(initial, "VXNlcm5hbWU6", r, w).await? else {
                return Ok(None);
            };
            let Some(password) = challenge(None, "UGFzc3dvcmQ6", r, w).await? else {
                return Ok(None);
            };
            Ok(Some((String::from_utf8_lossy(&user).into_owned(), String::from_utf8_lossy(&password).into_owned())))
        }
        _ => {
            reply(w, "504 5.5.4 Unrecognized authentication type").await?;
            Ok(None)
        }
    }
}

/// The client's base64 answer: `initial` when it came with the AUTH command,
/// else a `334 {prompt}` round trip. `None` (already answered) when the client
/// cancels, sends bad base64 or hangs up.
async fn challenge(
    initial: Option<String>,
    prompt: &str,
    r: &mut (impl AsyncBufRead + Unpin),
    w: &mut (impl AsyncWrite + Unpin),
) -> io::Result<Option<Vec<u8>>> {
    let answer = match initial {
        Some(initial) => initial,
        None => {
            reply(w, &format!("334 {prompt}")).await?;
            match read_line(r).await? {
                Some(line) => line,
                None => return Ok(None),
            }
        }
    };
    let answer = answer.trim();
    if answer == "*" {
        reply(w, "501 5.7.0 Authentication cancelled").await?;
        return Ok(None);
    }
    if answer == "=" {
        return Ok(Some(Vec::new()));
    }
    match base64_decode(answer) {
        Some(bytes) => Ok(Some(bytes)),
        None => {
            reply(w, "501 5.5.2 Cannot decode base64").await?;
            Ok(None)
        }
    }
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in input.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn quoted_printable_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let rest = &bytes[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let (Some(&high), Some(&low)) = (rest.first(), rest.get(1))
                && let (Some(high), Some(low)) = (hex(high), hex(low))
            {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

type Headers<'a> = Vec<(&'a str, String)>;

/// Headers (unfolded) and body of a MIME entity.
fn split_entity(raw: &str) -> (Headers<'_>, &str) {
    let (head, body) = match (raw.find("\r\n\r\n"), raw.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&raw[..lf], &raw[lf + 2..]),
        (Some(crlf), _) => (&raw[..crlf], &raw[crlf + 4..]),
        (None, Some(lf)) => (&raw[..lf], &raw[lf + 2..]),
        (None, None) => (raw, ""),
    };
    let mut headers: Headers<'_> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn header<'h>(headers: &'h Headers<'_>, name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A `name=value` or `name="value"` parameter of a header value.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, val) = param.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| val.trim().trim_matches('"').to_owned())
    })
}

/// The first part of type `mime` in a (possibly multipart) entity, decoded.
fn find_part(raw: &str, mime: &str, top_level: bool) -> Option<String> {
    let (headers, mut body) = split_entity(raw);
    let content_type = header(&headers, "content-type").unwrap_or("text/plain");
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence.starts_with("multipart/") {
        let delimiter = format!("--{}", parameter(content_type, "boundary")?);
        for part in body.split(delimiter.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            // The line break after the delimiter, and the one before the next
            // delimiter, belong to the delimiters.
            let part = part.strip_prefix("\r\n").or_else(|| part.strip_prefix('\n')).unwrap_or(part);
            let part = part.strip_suffix("\r\n").or_else(|| part.strip_suffix('\n')).unwrap_or(part);
            if let Some(found) = find_part(part, mime, false) {
                return Some(found);
            }
        }
        return None;
    }
    if essence != mime {
        return None;
    }
    if top_level {
        // The line break ending the last line before the DATA terminator.
        body = body.strip_suffix("\r\n").unwrap_or(body);
    }
    let encoding = header(&headers, "content-transfer-encoding").unwrap_or("7bit").to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64_decode(body)?,
        "quoted-printable" => quoted_printable_decode(body),
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_quoted_printable() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").as_deref(), Some(&b"hello world"[..]));
        assert_eq!(base64_decode("aGVs\r\nbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("a*b"), None);
        assert_eq!(quoted_printable_decode("a=3Db=\r\nc =C3=A9"), "a=bc é".as_bytes());
    }

    #[test]
    fn finds_the_html_part_of_a_multipart_message() {
        let raw = "Subject: x\r\nContent-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\r\n\
                   --XyZ\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
                   --XyZ\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n\
                   --XyZ--\r\n";
        assert_eq!(find_part(raw, "text/html", true).as_deref(), Some("<b>hi</b>"));
        assert_eq!(find_part(raw, "text/plain", true).as_deref(), Some("plain"));
    }

    #[test]
    fn parses_paths() {
        assert_eq!(path("FROM:<a@b.c> BODY=8BITMIME", "FROM:").as_deref(), Some("a@b.c"));
        assert_eq!(path("to: <x@y>", "TO:").as_deref(), Some("x@y"));
        assert_eq!(path("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path("FRM:<a@b>", "FROM:"), None);
    }
}
