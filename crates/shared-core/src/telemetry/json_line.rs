//! The JSON log line, byte for byte the layout of tracing-subscriber's
//! `.json().flatten_event(true).with_current_span(true).with_span_list(false)`:
//! timestamp, level, the event's fields, target, and the current span's
//! fields with its name.
//!
//! The library stores a span's fields as a JSON object string when the span
//! opens, building it through a map of `serde_json::Value`s (an allocation
//! or two per field), then for every line parses that string back into
//! values and serialises them again (its own comment calls this a
//! stop-gap). Here the span's fields are written straight to JSON, sorted by
//! name as the library's map sorts them ([`SpanFields`]), and each line
//! splices that string in as it is; fields recorded later are put in their
//! places among the stored ones as text. On a /healthz request the spans
//! and the access line went from 45,000 to 12,000 instructions (stop 18 of
//! docs/benchmarks.md, when the access line still had a span of its own).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use chrono::Utc;
use serde::Serializer as _;
use serde::ser::SerializeMap;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_serde::{AsSerde, SerdeMapVisitor};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::rfc3339::{self, Fraction};

pub struct JsonLine;

impl<S> FormatEvent<S, SpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
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

        let mut line = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::new(&mut line);
        let mut map = serializer.serialize_map(None).map_err(|_| fmt::Error)?;
        map.serialize_entry("timestamp", &timestamp).map_err(|_| fmt::Error)?;
        map.serialize_entry("level", &meta.level().as_serde()).map_err(|_| fmt::Error)?;
        let mut fields = SerdeMapVisitor::new(map);
        event.record(&mut fields);
        let mut map = fields.take_serializer().map_err(|_| fmt::Error)?;
        map.serialize_entry("target", meta.target()).map_err(|_| fmt::Error)?;
        map.end().map_err(|_| fmt::Error)?;
        // serde_json writes UTF-8 only.
        let line = std::str::from_utf8(&line).map_err(|_| fmt::Error)?;

        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        let Some(span) = span else {
            return writeln!(writer, "{line}");
        };
        let extensions = span.extensions();
        let stored = extensions.get::<FormattedFields<SpanFields>>().map_or("{}", |f| f.fields.as_str());
        // Both are JSON objects: drop the closing brace of the line and of the
        // span's fields, and close them after the span's name.
        let open_line = &line[..line.len() - 1];
        let span_fields = &stored[..stored.len() - 1];
        let comma = if span_fields.len() > 1 { "," } else { "" };
        let name = serde_json::to_string(span.metadata().name()).map_err(|_| fmt::Error)?;
        writeln!(writer, "{open_line},\"span\":{span_fields}{comma}\"name\":{name}}}}}")
    }
}

/// A span's fields as one JSON object, keys sorted: what tracing-subscriber's
/// `JsonFields` makes, without a `serde_json::Value` per field.
#[derive(Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut collected = Collected::default();
        fields.record(&mut collected);
        writer.write_str(&collected.into_object()?)
    }

    /// `Span::record` on a span whose fields are already written (the
    /// request's status and latency, when it ends): the recorded fields
    /// put in their places among the stored ones, a recorded field taking
    /// the place of a stored one of the same name. The stored entries are
    /// copied as they are, not read back into values.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut recorded = Collected::default();
        fields.record(&mut recorded);
        let merged = recorded.merged_into(&current.fields);
        // The library drops the record on an error, without a word.
        debug_assert!(merged.is_ok(), "span fields this formatter did not write: {}", current.fields);
        current.fields = merged?;
        Ok(())
    }
}

/// The entries of an object [`Collected::into_object`] wrote: each name,
/// unescaped, and the entry's whole text (`"name":value`). Its values are
/// strings, numbers, `true`, `false`, `null` and arrays of numbers (bytes),
/// so a value ends at its closing quote, at its bracket or before the next
/// comma.
fn stored_entries(object: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    let body = object.strip_prefix('{')?.strip_suffix('}')?;
    let bytes = body.as_bytes();
    let mut entries = Vec::with_capacity(8);
    let mut at = 0;
    while at < bytes.len() {
        let name_end = string_end(bytes, at)?;
        let quoted = &body[at..name_end];
        let name = match quoted.contains('\\') {
            true => Cow::Owned(serde_json::from_str(quoted).ok()?),
            false => Cow::Borrowed(&quoted[1..quoted.len() - 1]),
        };
        let start = name_end + 1;
        (bytes.get(name_end) == Some(&b':')).then_some(())?;
        let end = match bytes.get(start)? {
            b'"' => string_end(bytes, start)?,
            b'[' => start + body[start..].find(']')? + 1,
            _ => body[start..].find(',').map_or(body.len(), |comma| start + comma),
        };
        entries.push((name, &body[at..end]));
        at = end + 1;
    }
    Some(entries)
}

/// Where the JSON string starting at `start` ends (after its closing quote).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    (bytes.get(start) == Some(&b'"')).then_some(())?;
    let mut at = start + 1;
    while let Some(byte) = bytes.get(at) {
        match byte {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
    None
}

/// Each field's name and its value already as JSON, in one buffer.
struct Collected {
    json: Vec<u8>,
    entries: Vec<(&'static str, std::ops::Range<usize>)>,
    /// Where a `Debug` value is formatted before it is quoted.
    scratch: String,
}

impl Default for Collected {
    /// Room for a request span's fields, so that recording them does not
    /// grow the buffers field by field.
    fn default() -> Self {
        Self { json: Vec::with_capacity(128), entries: Vec::with_capacity(8), scratch: String::new() }
    }
}

impl Collected {
    fn push(&mut self, field: &Field, write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) {
        // As the library's map: a raw identifier's `r#` is dropped, and a
        // field recorded twice keeps its last value.
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let start = self.json.len();
        if write(&mut self.json).is_err() {
            self.json.truncate(start);
            return;
        }
        self.entries.retain(|(other, _)| *other != name);
        self.entries.push((name, start..self.json.len()));
    }

    /// The entries sorted by name, as the library's map sorts them, each
    /// with its value's JSON.
    fn sorted(&mut self) -> Result<impl Iterator<Item = (&'static str, &str)>, fmt::Error> {
        self.entries.sort_unstable_by_key(|(name, _)| *name);
        // serde_json writes UTF-8 only.
        let json = std::str::from_utf8(&self.json).map_err(|_| fmt::Error)?;
        Ok(self.entries.iter().map(move |(name, value)| (*name, &json[value.clone()])))
    }

    fn into_object(mut self) -> Result<String, fmt::Error> {
        // Put together in one buffer of the right size: written piece by
        // piece, the span's stored string grew ten times per request.
        let size = 2 + self.entries.iter().map(|(name, value)| name.len() + value.len() + 4).sum::<usize>();
        let mut object = String::with_capacity(size);
        object.push('{');
        for (name, value) in self.sorted()? {
            push_entry(&mut object, name, value)?;
        }
        object.push('}');
        Ok(object)
    }

    /// The object `stored` (one [`Self::into_object`] wrote) with these
    /// entries put in their places.
    fn merged_into(mut self, stored: &str) -> Result<String, fmt::Error> {
        let mut object = String::with_capacity(stored.len() + self.json.len() + 16 * self.entries.len());
        object.push('{');
        let mut recorded = self.sorted()?.peekable();
        for (name, entry) in stored_entries(stored).ok_or(fmt::Error)? {
            while let Some((new, value)) = recorded.next_if(|(new, _)| *new < name.as_ref()) {
                push_entry(&mut object, new, value)?;
            }
            if recorded.peek().is_some_and(|(new, _)| *new == name) {
                // Recorded anew: written in its place by the loop above or below.
                continue;
            }
            if object.len() > 1 {
                object.push(',');
            }
            object.push_str(entry);
        }
        for (new, value) in recorded {
            push_entry(&mut object, new, value)?;
        }
        object.push('}');
        Ok(object)
    }
}

/// One `"name":value` entry of an object being written, after a comma unless it is the first.
fn push_entry(object: &mut String, name: &str, value: &str) -> fmt::Result {
    if object.len() > 1 {
        object.push(',');
    }
    // A field name is an identifier; anything else goes through serde_json.
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
        object.push('"');
        object.push_str(name);
        object.push('"');
    } else {
        object.push_str(&serde_json::to_string(name).map_err(|_| fmt::Error)?);
    }
    object.push(':');
    object.push_str(value);
    Ok(())
}

impl Visit for Collected {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.push(field, |out| serde_json::to_writer(out, text.as_str()));
        self.scratch = text;
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, |out| serde_json::to_writer(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, |out| serde_json::to_writer(out, &value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, |out| serde_json::to_writer(out, &value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json::Value: a number that is not finite is null.
        self.push(field, |out| serde_json::to_writer(out, &serde_json::Number::from_f64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, |out| serde_json::to_writer(out, &value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.push(field, |out| serde_json::to_writer(out, value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
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
    fn stored_entries_are_read_back_as_written() {
        let object = r#"{"a":"x,\"}\\","b":[1,44],"c":-1.5e+300,"odd \"name\"":null,"t":true}"#;
        let entries = stored_entries(object).unwrap();
        let expected: Vec<(Cow<'_, str>, &str)> = vec![
            ("a".into(), r#""a":"x,\"}\\""#),
            ("b".into(), r#""b":[1,44]"#),
            ("c".into(), r#""c":-1.5e+300"#),
            ("odd \"name\"".into(), r#""odd \"name\"":null"#),
            ("t".into(), r#""t":true"#),
        ];
        assert_eq!(entries, expected);
        assert_eq!(stored_entries("{}").unwrap(), vec![]);
        // Not an object this module wrote: refused, not misread.
        assert_eq!(stored_entries(r#"{"a":"unclosed}"#), None);
        assert_eq!(stored_entries(r#"{"a"}"#), None);
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
        let this =
            tracing_subscriber::fmt::layer().with_writer(ours.clone()).fmt_fields(SpanFields).event_format(JsonLine);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(library).with(this), log_everything);

        let (theirs, ours) = (lines(&theirs), lines(&ours));
        assert_eq!(theirs.len(), 8);
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
