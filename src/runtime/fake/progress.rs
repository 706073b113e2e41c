//! A progress line on stderr while a long fake-mode build copies the claude home.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A progress line on stderr for a long build, shown only on a terminal and only once the build
/// has taken longer than `CLAUTH_PROGRESS_AFTER_MS` (default 1000). Stdout is never touched.
pub(super) struct Progress {
    enabled: bool,
    after: Duration,
    start: Instant,
    last: Option<Instant>,
    files: u64,
    bytes: u64,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Progress {
        let after = std::env::var("CLAUTH_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1));
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            after,
            start: Instant::now(),
            last: None,
            files: 0,
            bytes: 0,
        }
    }

    pub(super) fn copied(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) >= self.after
            && self
                .last
                .is_none_or(|l| now.duration_since(l) >= Duration::from_millis(200))
        {
            eprint!(
                "\rclauth-helper: copying the claude home into the runtime: {} files, {} MiB",
                self.files,
                self.bytes >> 20
            );
            self.last = Some(now);
        }
    }

    pub(super) fn finish(&self) {
        if self.last.is_some() {
            eprintln!(
                "\rclauth-helper: copied the claude home into the runtime: {} files, {} MiB in {:.1} s",
                self.files,
                self.bytes >> 20,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}
