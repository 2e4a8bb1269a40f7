//! RFC 3339 timestamps in UTC, put together digit by digit: the text chrono's
//! formatter and tracing-subscriber's write, without going through
//! `fmt::write` (1-2k instructions a timestamp, on every item of a page and
//! every log line; docs/benchmarks.md).

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The digits after the seconds.
#[derive(Debug, Clone, Copy)]
pub enum Fraction {
    /// As few of milli-, micro- and nanoseconds as say it exactly, none for
    /// a whole second: chrono's `SecondsFormat::AutoSi`, what its
    /// `Serialize` writes.
    AutoSi,
    /// Always six digits, truncated: tracing-subscriber's log timestamps.
    Micros,
}

/// Room for the longest text this writes (nine digits of fraction).
pub type Buffer = [u8; 30];

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, written into `text`. `None` for what
/// only chrono writes (years outside 0-9999, a leap second).
pub fn write<'a>(at: &DateTime<Utc>, fraction: Fraction, text: &'a mut Buffer) -> Option<&'a str> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    text[..20].copy_from_slice(b"0000-00-00T00:00:00.");
    digits(&mut text[0..4], year);
    digits(&mut text[5..7], at.month());
    digits(&mut text[8..10], at.day());
    digits(&mut text[11..13], at.hour());
    digits(&mut text[14..16], at.minute());
    digits(&mut text[17..19], at.second());
    let (fraction, width) = match fraction {
        Fraction::Micros => (nanos / 1_000, 6),
        Fraction::AutoSi => match nanos {
            0 => (0, 0),
            _ if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
            _ if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
            _ => (nanos, 9),
        },
    };
    let end = match width {
        0 => 19,
        _ => {
            digits(&mut text[20..20 + width], fraction);
            20 + width
        }
    };
    text[end] = b'Z';
    std::str::from_utf8(&text[..=end]).ok()
}

/// `value` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{SecondsFormat, TimeZone};

    use super::*;

    /// Whole seconds and every kind of fraction, the edges of 0-9999, and
    /// 20,000 instants spread over those years.
    fn instants() -> Vec<DateTime<Utc>> {
        let second = Utc.with_ymd_and_hms(2026, 12, 6, 15, 14, 24).unwrap();
        let nanos = [0, 1, 120_000_000, 123_000_000, 123_456_000, 123_456_789, 999_999_999];
        let mut times: Vec<DateTime<Utc>> = nanos.iter().map(|n| second + chrono::Duration::nanoseconds(*n)).collect();
        times.push(Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap());
        times
            .push(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999));
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let seconds = (state % 315_537_897_600) as i64 - 62_167_219_200;
            let nanos = match state % 4 {
                0 => 0,
                1 => (state >> 8) as u32 % 1000 * 1_000_000,
                2 => (state >> 8) as u32 % 1_000_000 * 1000,
                _ => (state >> 8) as u32 % 1_000_000_000,
            };
            times.push(DateTime::from_timestamp(seconds, nanos).unwrap());
        }
        times
    }

    #[test]
    fn the_same_text_as_chrono() {
        for at in instants() {
            let mut text = Buffer::default();
            let auto = write(&at, Fraction::AutoSi, &mut text).unwrap().to_owned();
            assert_eq!(auto, at.to_rfc3339_opts(SecondsFormat::AutoSi, true), "{at:?}");
            // tracing-subscriber's `{:06}` of whole microseconds
            let micros = write(&at, Fraction::Micros, &mut text).unwrap();
            assert_eq!(micros, at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(), "{at:?}");
        }
    }

    #[test]
    fn what_only_chrono_writes_is_left_to_it() {
        let leap_second =
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000);
        let outside = [
            leap_second.unwrap().and_utc(),
            Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ];
        for at in outside {
            assert_eq!(write(&at, Fraction::AutoSi, &mut Buffer::default()), None, "{at:?}");
        }
    }
}
