//! The log writer. A line is appended to a shared buffer under a lock; a
//! thread of its own writes the buffer out in one write(2) per batch,
//! gathering lines for `BATCH_WINDOW` after the first one of a batch.
//!
//! tracing-appender's writer, used before, woke its thread through a
//! channel for every line, and the thread spun and yielded while waiting:
//! with one request after another, 6 to 7 system calls per request
//! (sched_yield, futex, write) went to the access log line alone, twice the
//! 3 a bare server makes for the whole request. Here one wake-up and one
//! write serve every line of a batch.
//!
//! Nothing is dropped: past `MAX_BUFFERED_BYTES` (a stalled stderr) a
//! logger waits for the writer, and the guard writes out the rest when the
//! process ends.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first of a batch: the most a
/// line waits before it is written.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Past this many bytes waiting, loggers wait for the writer.
const MAX_BUFFERED_BYTES: usize = 8 << 20;
/// A batch buffer larger than this after a burst is given back.
const KEPT_CAPACITY: usize = 256 << 10;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    filled: Condvar,
    drained: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    closed: bool,
    /// Loggers waiting for room: `drained` is signalled only for them (a
    /// signal is a system call even when nobody waits).
    waiting_for_room: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole lines behind: carry on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the subscriber writes its lines.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

/// Dropping it writes out every line still buffered and stops the thread.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`.
pub fn start(out: impl Write + Send + 'static) -> io::Result<(BatchWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let writer_side = shared.clone();
    let thread = thread::Builder::new().name("log-writer".into()).spawn(move || write_batches(&writer_side, out))?;
    Ok((BatchWriter(shared.clone()), Guard { shared, thread: Some(thread) }))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closed {
            state = shared.filled.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if !state.closed {
            drop(state);
            thread::sleep(BATCH_WINDOW);
            state = shared.lock();
        }
        std::mem::swap(&mut state.lines, &mut batch);
        let closed = state.closed;
        let loggers_wait = state.waiting_for_room > 0;
        drop(state);
        if loggers_wait {
            shared.drained.notify_all();
        }
        if batch.is_empty() && closed {
            return;
        }
        // Nowhere to report a failed write to stderr: the lines are lost.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.0;
        let mut state = shared.lock();
        while state.lines.len() >= MAX_BUFFERED_BYTES && !state.closed {
            state.waiting_for_room += 1;
            state = shared.drained.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting_for_room -= 1;
        }
        if state.closed {
            // After the guard: nobody is left to write a buffer.
            drop(state);
            return io::stderr().write_all(line).map(|()| line.len());
        }
        let first_of_batch = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        if first_of_batch {
            shared.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_of_every_thread_is_written_whole_and_in_order_by_the_guard() {
        let out = Captured::default();
        let (writer, guard) = start(out.clone()).unwrap();
        let loggers: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..2_000 {
                        // One write per line, as the fmt layer makes.
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(i % 300));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        loggers.into_iter().for_each(|l| l.join().unwrap());
        drop(guard);

        let text = out.text();
        assert_eq!(text.lines().count(), 16_000);
        for t in 0..8 {
            let prefix = format!("thread {t} line ");
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
        // After the guard, lines still go out (straight to stderr), never lost silently.
        writer.make_writer().write_all(b"after the guard\n").unwrap();
    }

    /// Output that blocks until opened, as a stalled log pipe does.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, Condvar)>,
        out: Captured,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, opened) = &*self.open;
            let _open = opened.wait_while(open.lock().unwrap(), |open| !*open).unwrap();
            self.out.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_logger_waits_for_room_when_the_output_stalls_and_loses_nothing() {
        let gated = Gated::default();
        let (writer, guard) = start(gated.clone()).unwrap();
        let line = format!("{}\n", "y".repeat(1023));
        // Three buffers' worth: the writer takes at most one before it
        // stalls, so the logger fills a second and then must wait until the
        // output opens. (With two, the writer could take the first just as
        // the logger began to wait, and the wait was over before it was seen.)
        let lines = (MAX_BUFFERED_BYTES / line.len()) * 3;
        let logger = {
            let (writer, line) = (writer.clone(), line.clone());
            thread::spawn(move || (0..lines).for_each(|_| writer.make_writer().write_all(line.as_bytes()).unwrap()))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let waited = loop {
            let state = writer.0.lock();
            if state.waiting_for_room > 0 && state.lines.len() >= MAX_BUFFERED_BYTES {
                break true;
            }
            drop(state);
            if Instant::now() > deadline {
                break false;
            }
            thread::sleep(Duration::from_millis(1));
        };
        // Opened before anything is asserted: a failed assertion would drop
        // the guard, which waits for the writer, stuck behind the gate.
        let (open, opened) = &*gated.open;
        *open.lock().unwrap() = true;
        opened.notify_all();
        assert!(waited, "the logger never waited for room with the buffer full");
        logger.join().unwrap();
        drop(guard);
        assert_eq!(gated.out.text().lines().count(), lines);
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let out = Captured::default();
        let (writer, _guard) = start(out.clone()).unwrap();
        writer.make_writer().write_all(b"alone\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.text().contains("alone\n") {
            assert!(Instant::now() < deadline, "the line was not written");
            thread::sleep(Duration::from_millis(1));
        }
    }
}
