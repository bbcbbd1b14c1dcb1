//! Child processes of a test: killed and reaped when their guard drops, also when the
//! test panics, so that no test leaves a process behind.

use std::process::{Child, Command};

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child);

impl Killed {
    /// Sends `signal` (as `kill` spells it: `-STOP`, `-CONT`) to the process.
    /// SIGSTOP freezes it as Lambda freezes an environment between invocations.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.0.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free loopback port").port()
}
