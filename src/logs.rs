//! Where log lines go: stderr, in batches. Every request is logged once (CONTRACT §8), and one
//! `write` to stderr per line was the largest single cost of a cheap request: in a JWKS flood
//! the writes (a system call each, and the lock around stderr that two workers contend for)
//! took a tenth of the service's CPU (issue 12). Lines are appended to one buffer in memory and
//! written together: by the thread whose line fills [`FLUSH_AT`] bytes, else by a background
//! thread at most [`FLUSH_DELAY`] after the first line waiting, and on demand ([`LogSink::flush`]:
//! the binary flushes when a command ends and when it panics).
//!
//! The trade-off: a process killed outright (SIGKILL, the OOM killer) loses the lines of its
//! last [`FLUSH_DELAY`]; a stopped one (SIGTERM, SIGINT) loses none. Memory is bounded: a thread
//! whose line finds [`FLUSH_AT`] bytes waiting writes them itself, and waits while another
//! write is in progress, as a slow stderr made it wait before.

pub mod lines;

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Bytes waiting that make the next line's thread write them all (about 40 request lines).
pub const FLUSH_AT: usize = 8 << 10;

/// The longest a line waits in memory when fewer than [`FLUSH_AT`] bytes follow it.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);

/// A cheap handle on the log buffer; every clone writes to the same output.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Wakes the background writer when `pending` stops being empty.
    wake: Condvar,
    /// The output and a spare buffer, swapped with `pending` at each write. Held while
    /// writing, so batches reach the output in the order their lines were logged.
    out: Mutex<(Box<dyn Write + Send>, Vec<u8>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogSink {
    /// Lines to stderr.
    pub fn stderr() -> Self {
        Self::new(Box::new(std::io::stderr()), FLUSH_DELAY)
    }

    /// Lines to `out`, each written at most `delay` after it was logged (unless more follow).
    pub fn new(out: Box<dyn Write + Send>, delay: Duration) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
            out: Mutex::new((out, Vec::with_capacity(FLUSH_AT))),
        });
        let background = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Ends with the last handle (tests make many sinks; the binary keeps one).
                while let Some(shared) = background.upgrade() {
                    let waiting = lock(&shared.pending);
                    let (waiting, _) = shared
                        .wake
                        .wait_timeout_while(waiting, Duration::from_secs(1), |p| p.is_empty())
                        .unwrap_or_else(PoisonError::into_inner);
                    let empty = waiting.is_empty();
                    drop(waiting);
                    if !empty {
                        drop(shared);
                        std::thread::sleep(delay);
                        match background.upgrade() {
                            Some(shared) => shared.flush(),
                            None => return,
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the background thread lines still go out, at FLUSH_AT and at flush().
            eprintln!("could not start the log writer thread: {e}");
        }
        Self { shared }
    }

    /// Writes every line logged so far.
    pub fn flush(&self) {
        self.shared.flush();
    }

    fn append(&self, line: &[u8]) {
        let mut pending = lock(&self.shared.pending);
        let was_empty = pending.is_empty();
        pending.extend_from_slice(line);
        let full = pending.len() >= FLUSH_AT;
        drop(pending);
        if full {
            self.shared.write(FLUSH_AT);
        } else if was_empty {
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn flush(&self) {
        self.write(1);
    }

    /// Writes what is waiting if it is `at_least` bytes once this thread's turn to write
    /// comes: threads whose lines filled the buffer together write it once, not once each.
    fn write(&self, at_least: usize) {
        let mut out = lock(&self.out);
        let (out, batch) = &mut *out;
        {
            let mut pending = lock(&self.pending);
            if pending.len() < at_least {
                return;
            }
            std::mem::swap(batch, &mut *pending);
        }
        if !batch.is_empty() {
            // Nowhere to report a failed write of the logs; the lines are dropped.
            let _ = out.write_all(batch).and_then(|()| out.flush());
            batch.clear();
        }
    }
}

/// One event's writer: tracing's formatter hands it the whole line at once.
pub struct LineWriter<'a>(&'a LogSink);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output that records each write.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).concat()).unwrap()
        }
        fn writes(&self) -> usize {
            lock(&self.0).len()
        }
    }

    fn log(sink: &LogSink, line: &str) {
        sink.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn a_lone_line_is_written_by_itself() {
        let out = Recorder::default();
        let sink = LogSink::new(Box::new(out.clone()), Duration::ZERO);
        log(&sink, "one line\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.text().is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::yield_now();
        }
        assert_eq!(out.text(), "one line\n");
    }

    #[test]
    fn lines_go_out_in_batches_whole_and_in_order() {
        let out = Recorder::default();
        // A delay the test never waits for: only FLUSH_AT and flush() write.
        let sink = LogSink::new(Box::new(out.clone()), Duration::from_secs(3600));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        log(
                            &sink,
                            &format!("thread {t} line {i:05} {}\n", "x".repeat(60)),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.flush();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..2_000)
                .map(|i| format!("thread {t} line {i:05} {}", "x".repeat(60)))
                .collect();
            assert_eq!(own, expected, "thread {t}'s lines are whole and in order");
        }
        // About 700 KB in writes of FLUSH_AT bytes or so, not one write per line.
        let writes = out.writes();
        assert!(writes <= 8_000 * 80 / FLUSH_AT + 8, "{writes} writes");
        assert!(lock(&sink.shared.pending).is_empty());
    }

    /// An output that blocks until opened, and says when a write is waiting.
    struct Gate(Arc<(Mutex<(bool, bool)>, Condvar)>, Recorder);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (state, cv) = &*self.0;
            let mut s = lock(state);
            s.1 = true;
            cv.notify_all();
            drop(cv.wait_while(s, |s| !s.0).unwrap());
            self.1.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_holds_back_the_loggers_not_the_memory() {
        let gate = Arc::new((Mutex::new((false, false)), Condvar::new()));
        let out = Recorder::default();
        let sink = LogSink::new(
            Box::new(Gate(gate.clone(), out.clone())),
            Duration::from_secs(3600),
        );
        let logger = |t: usize| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    log(
                        &sink,
                        &format!("logger {t} line {i:04} {}\n", "y".repeat(80)),
                    );
                }
            })
        };
        // The first logger fills a batch and is stuck writing it.
        let first = logger(0);
        let (state, cv) = &*gate;
        drop(cv.wait_while(lock(state), |s| !s.1).unwrap());
        // The second fills the next batch and waits for the first.
        let second = logger(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&sink.shared.pending).len() < FLUSH_AT {
            assert!(Instant::now() < deadline, "the second batch never filled");
            std::thread::yield_now();
        }
        assert!(!first.is_finished() && !second.is_finished());
        assert!(lock(&sink.shared.pending).len() < FLUSH_AT + 100);
        assert_eq!(out.writes(), 0);
        lock(state).0 = true;
        cv.notify_all();
        let loggers = [first, second];
        for l in loggers {
            l.join().unwrap();
        }
        sink.flush();
        assert_eq!(out.text().lines().count(), 1_000);
    }
}
