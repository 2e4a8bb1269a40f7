//! The JSON log line, byte for byte the layout of tracing-subscriber's
//! `.json().flatten_event(true).with_current_span(true).with_span_list(false)`:
//! timestamp, level, the event's fields, target, and the current span's
//! fields with its name.
//!
//! The library stores a span's fields as a JSON object string when the span
//! opens, then for every line parses that string back into a
//! `serde_json::Value` and serialises it again (its own comment calls this
//! a stop-gap). The string is already the JSON it would print, so this
//! format splices it in as it is: on the access log line that parse was a
//! third of the line's cost.

use std::fmt;

use serde::Serializer as _;
use serde::ser::SerializeMap;
use tracing::{Event, Subscriber};
use tracing_serde::{AsSerde, SerdeMapVisitor};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
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
        let stored = extensions.get::<FormattedFields<JsonFields>>().map_or("{}", |f| f.fields.as_str());
        // Both are JSON objects: drop the closing brace of the line and of the
        // span's fields, and close them after the span's name.
        let open_line = &line[..line.len() - 1];
        let span_fields = &stored[..stored.len() - 1];
        let comma = if span_fields.len() > 1 { "," } else { "" };
        let name = serde_json::to_string(span.metadata().name()).map_err(|_| fmt::Error)?;
        writeln!(writer, "{open_line},\"span\":{span_fields}{comma}\"name\":{name}}}}}")
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

    /// The lines the same events make, with the timestamp left out.
    fn lines(captured: &Captured) -> Vec<String> {
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let after_timestamp = line.find("\",\"level\"").unwrap();
                assert!(line.starts_with("{\"timestamp\":\""), "{line}");
                line[after_timestamp..].to_owned()
            })
            .collect()
    }

    fn log_everything() {
        tracing::info!("outside any span");
        let request = tracing::info_span!("request", method = %"GET", route = "/api/v1/items/{id}", request_id = %"a\"b\\c\u{1}é");
        request.in_scope(|| {
            tracing::warn!(count = 3, ratio = 0.1 + 0.2, ok = true, text = "ünïcode \n", "inside {}", "it");
            let inner = tracing::info_span!("inner", latency_ms = 1.25, status = 404_u16, negative = -7_i64);
            inner.in_scope(|| tracing::error!(error = %"boom", "in the inner span"));
            let empty = tracing::info_span!("empty");
            empty.in_scope(|| tracing::info!("a span without fields"));
            tracing::info!(parent: &empty, "an explicit parent");
        });
        let recorded = tracing::info_span!("recorded", status = tracing::field::Empty, route = "/x");
        recorded.record("status", 201);
        recorded.in_scope(|| tracing::info!(big = u64::MAX, small = i64::MIN, "after a record"));
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
        let this = tracing_subscriber::fmt::layer()
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(library).with(this), log_everything);

        let (theirs, ours) = (lines(&theirs), lines(&ours));
        assert_eq!(theirs.len(), 6);
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
