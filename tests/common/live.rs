//! A msen process running in the background, its stderr collected as it
//! comes: for tests that act while a capture runs and wait for what msen
//! says rather than sleeping a fixed time.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Live {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Live {
    /// Start `cmd` (stdout discarded, stderr collected).
    pub fn spawn(cmd: &mut Command) -> Live {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let l = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                l.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Live { child, log, reader: Some(reader) }
    }

    /// What it has said so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Until it has said `what` (still running; a minute at most).
    pub fn wait_said(&mut self, what: &str) {
        let t0 = Instant::now();
        while !self.log().contains(what) {
            assert!(self.running(), "msen ended before saying {what:?}: {}", self.log());
            assert!(t0.elapsed() < Duration::from_secs(60), "msen never said {what:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for it to end: its exit code (None when a signal ended it) and
    /// everything it said.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let st = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (st.code(), self.log())
    }
}
