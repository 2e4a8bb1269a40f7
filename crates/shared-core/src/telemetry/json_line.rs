//! The JSON log line, byte for byte the layout of tracing-subscriber's
//! `.json().flatten_event(true).with_current_span(true).with_span_list(false)`:
//! timestamp, level, the event's fields, target, and the current span's
//! fields, sorted by name, with its name.
//!
//! A layer of its own rather than the library's formatter. The library
//! writes a span's fields out as a JSON object string when the span opens,
//! parses that string back into values on every line and on every record,
//! and serialises them again (its own comment calls this a stop-gap). Here a
//! span keeps each field's value as JSON text, by name ([`SpanFields`]): a
//! record replaces one value, and a line copies the values as they are.
//! Strings are escaped as serde_json escapes them, eight bytes at a time
//! while there is nothing to escape ([`push_string`]).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::ops::Range;

use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::rfc3339::{self, Fraction};

/// Room for a usual line (an access line is ~300 bytes), kept per thread.
const KEPT_LINE_CAPACITY: usize = 4096;

/// Writes each event as one JSON line to `make_writer`.
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attributes.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(fields) => values.record(fields),
            None => {
                let mut fields = SpanFields::default();
                values.record(&mut fields);
                extensions.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(KEPT_LINE_CAPACITY));
        }
        LINE.with(|kept| {
            // An event logged while a line is being written (by a value's
            // `Debug`, say) gets a buffer of its own.
            let mut own = Vec::new();
            let mut borrowed = kept.try_borrow_mut();
            let line = match borrowed.as_deref_mut() {
                Ok(kept) => kept,
                Err(_) => &mut own,
            };
            line.clear();
            if write_line(line, event, &ctx).is_ok() {
                // Nowhere to report a failed write of a log line.
                let _ = self.make_writer.make_writer_for(event.metadata()).write_all(line);
            }
            // One huge line does not keep its buffer for the thread's life.
            line.shrink_to(KEPT_LINE_CAPACITY);
        });
    }
}

fn write_line<S>(line: &mut Vec<u8>, event: &Event<'_>, ctx: &Context<'_, S>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut digits = rfc3339::Buffer::default();
    let mut fallback = String::new();
    let timestamp = match rfc3339::write(&Utc::now(), Fraction::Micros, &mut digits) {
        Some(text) => text,
        None => {
            SystemTime.format_time(&mut Writer::new(&mut fallback))?;
            &fallback
        }
    };
    let meta = event.metadata();
    line.extend_from_slice(b"{\"timestamp\":");
    push_string(line, timestamp);
    line.extend_from_slice(b",\"level\":\"");
    line.extend_from_slice(meta.level().as_str().as_bytes());
    line.push(b'"');
    let mut fields = EventFields { line };
    event.record(&mut fields);
    line.extend_from_slice(b",\"target\":");
    push_string(line, meta.target());
    // The span the event was logged in: its explicit parent, else the
    // current one (as the library picks it).
    if let Some(span) = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current()) {
        line.extend_from_slice(b",\"span\":{");
        if let Some(fields) = span.extensions().get::<SpanFields>() {
            for (name, value) in &fields.entries {
                push_string(line, name);
                line.push(b':');
                line.extend_from_slice(&fields.json[value.clone()]);
                line.push(b',');
            }
        }
        line.extend_from_slice(b"\"name\":");
        push_string(line, span.metadata().name());
        line.push(b'}');
    }
    line.extend_from_slice(b"}\n");
    Ok(())
}

/// A span's fields: each value as JSON text, by name, the names sorted as
/// the library's map sorts them.
struct SpanFields {
    /// The values' text, one after another. A value recorded anew is
    /// appended and its old text left behind: a span records few.
    json: Vec<u8>,
    /// Each name, sorted, with where its value is in `json`.
    entries: Vec<(&'static str, Range<usize>)>,
}

impl Default for SpanFields {
    /// Room for a request span's fields, so that recording them does not
    /// grow the buffers field by field.
    fn default() -> Self {
        Self { json: Vec::with_capacity(128), entries: Vec::with_capacity(8) }
    }
}

impl SpanFields {
    fn push(&mut self, field: &Field, write: impl FnOnce(&mut Vec<u8>)) {
        // As the library's map: a raw identifier's `r#` is dropped, and a
        // field recorded twice keeps its last value.
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let start = self.json.len();
        write(&mut self.json);
        let value = start..self.json.len();
        match self.entries.binary_search_by_key(&name, |(stored, _)| stored) {
            Ok(at) => self.entries[at].1 = value,
            Err(at) => self.entries.insert(at, (name, value)),
        }
    }
}

/// As tracing-subscriber's JSON visitor stores a span's fields (through
/// `serde_json::Value`).
impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, |json| push_debug(json, value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, |json| push_string(json, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, |json| push_number(json, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, |json| push_number(json, value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json::Value: a number that is not finite is null.
        self.push(field, |json| push_number(json, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, |json| json.extend_from_slice(if value { b"true" } else { b"false" }));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        // An array of numbers.
        self.push(field, |json| push_number(json, value));
    }
}

/// An event's fields, each written after a comma in the order given, as
/// tracing-serde's map visitor writes them: names as they are, bytes (and
/// anything else without a method of its own) as their `Debug` text.
struct EventFields<'a> {
    line: &'a mut Vec<u8>,
}

impl EventFields<'_> {
    fn name(&mut self, field: &Field) {
        self.line.push(b',');
        push_string(self.line, field.name());
        self.line.push(b':');
    }

    fn number(&mut self, field: &Field, value: impl serde::Serialize) {
        self.name(field);
        push_number(self.line, value);
    }
}

impl Visit for EventFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        push_debug(self.line, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        push_string(self.line, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes a number that is not finite as null.
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.line.extend_from_slice(if value { b"true" } else { b"false" });
    }
}

/// `value`'s `Debug` text as a JSON string, escaped as it is formatted.
fn push_debug(out: &mut Vec<u8>, value: &dyn fmt::Debug) {
    struct Escaping<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Escaping<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            push_escaped(self.0, text);
            Ok(())
        }
    }
    out.push(b'"');
    let _ = write!(Escaping(out), "{value:?}");
    out.push(b'"');
}

fn push_number(json: &mut Vec<u8>, value: impl serde::Serialize) {
    let _ = serde_json::to_writer(json, &value);
}

/// `text` as a JSON string, escaped as serde_json escapes it: quotes,
/// backslashes and control characters, the common ones by letter.
fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_escaped(out, text);
    out.push(b'"');
}

fn push_escaped(out: &mut Vec<u8>, text: &str) {
    let mut rest = text.as_bytes();
    while let Some(at) = first_to_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            control => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(control >> 4)]);
                out.push(HEX[usize::from(control & 0xf)]);
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// Where the first byte JSON escapes is: eight bytes at a time while none
/// of them is one, then byte by byte.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `word` is zero, or, of `word - ONES * n` below n
    // (n up to 128): exact as a yes or no, whatever the byte order.
    let any_below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH != 0;
    let mut at = 0;
    while let Some(word) = bytes[at..].first_chunk::<8>() {
        let word = u64::from_ne_bytes(*word);
        if any_below(word, 0x20)
            || any_below(word ^ (ONES * u64::from(b'"')), 1)
            || any_below(word ^ (ONES * u64::from(b'\\')), 1)
        {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\').map(|found| at + found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The lines the same events make, with the timestamp left out once it
    /// is seen to have the library's shape (`2026-12-07T04:30:00.123456Z`)
    /// and to be of today.
    fn lines(captured: &Captured) -> Vec<String> {
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let after_timestamp = line.find("\",\"level\"").unwrap();
                let timestamp = line.strip_prefix("{\"timestamp\":\"").unwrap();
                let timestamp = &timestamp[..after_timestamp - "{\"timestamp\":\"".len()];
                assert_eq!((timestamp.len(), &timestamp[19..20], &timestamp[26..]), (27, ".", "Z"), "{line}");
                let at = chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
                assert!((Utc::now() - at.to_utc()).num_seconds().abs() < 60, "{line}");
                line[after_timestamp..].to_owned()
            })
            .collect()
    }

    fn log_everything() {
        tracing::info!("outside any span");
        let request = tracing::info_span!("request", method = %"GET", route = "/api/v1/items/{id}", request_id = %"a\"b\\c\u{1}é");
        request.in_scope(|| {
            tracing::warn!(count = 3, ratio = 0.1 + 0.2, ok = true, text = "ünïcode \n", "inside {}", "it");
            let error = std::io::Error::other("disk \"full\"");
            tracing::info!(
                r#type = "raw",
                count = 1,
                count = 2,
                bytes = &b"ab"[..],
                wide = 1_u128 << 100,
                not_a_number = f64::NAN,
                negative = -7_i64,
                error = &error as &dyn std::error::Error,
                debugged = ?Some("x\ty"),
                "every kind of event field"
            );
            let inner = tracing::info_span!(
                "inner",
                latency_ms = 1.25,
                status = 404_u16,
                negative = -7_i64,
                r#type = "raw",
                "odd \"name\"" = 2,
                not_a_number = f64::NAN,
                huge = 1e300,
                flag = false,
                bytes = &b"ab"[..],
                debugged = ?Some("x\ty"),
                wide = 1_u128 << 100,
            );
            inner.in_scope(|| tracing::error!(error = %"boom", "in the inner span"));
            let empty = tracing::info_span!("empty");
            empty.in_scope(|| tracing::info!("a span without fields"));
            tracing::info!(parent: &empty, "an explicit parent");
        });
        let recorded = tracing::info_span!("recorded", status = tracing::field::Empty, route = "/x");
        recorded.record("status", 201);
        recorded.in_scope(|| tracing::info!(big = u64::MAX, small = i64::MIN, "after a record"));
        // Stored values that hold commas, quotes, brackets and escapes,
        // then several fields recorded at once, one of them anew. (Not a
        // name that needs escaping: the library drops every record on a
        // span with one, as it reads the names back unescaped.)
        let awkward = tracing::info_span!(
            "awkward",
            route = "/x,\"y\":[1]}\\",
            "dotted.name" = 1,
            bytes = &b"a,b"[..],
            ratio = -0.5,
            flag = true,
            absent = tracing::field::Empty,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            path = tracing::field::Empty,
        );
        let (status, latency_ms, path, absent) = (404_u16, 0.25, Some("/p,q"), None::<&str>);
        tracing::record_all!(awkward, status, latency_ms, path, absent, flag = false);
        tracing::info!(parent: &awkward, "after recording several");
        awkward.record("route", "/z");
        tracing::info!(parent: &awkward, "after recording a stored field anew");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0..=127_u8).map(char::from).collect();
        every_ascii.push_str("é ünï \u{2028} 😀");
        // Every length and start, so that each byte is met both in the
        // eight-at-a-time scan and in the byte-by-byte tail.
        for start in 0..every_ascii.len() {
            for end in start..every_ascii.len() {
                let Some(text) = every_ascii.get(start..end) else { continue };
                let mut ours = Vec::new();
                push_string(&mut ours, text);
                assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(text).unwrap());
            }
        }
    }

    #[test]
    fn the_same_bytes_as_tracing_subscribers_json_format() {
        let theirs = Captured::default();
        let ours = Captured::default();
        let library = tracing_subscriber::fmt::layer()
            .with_writer(theirs.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        let this = JsonLines::new(ours.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(library).with(this), log_everything);

        let (theirs, ours) = (lines(&theirs), lines(&ours));
        assert_eq!(theirs.len(), 9);
        assert_eq!(ours, theirs);
        assert!(
            ours[1].contains(
                r#""span":{"method":"GET","request_id":"a\"b\\c\u0001é","route":"/api/v1/items/{id}","name":"request"}"#
            ),
            "{}",
            ours[1]
        );
    }
}
