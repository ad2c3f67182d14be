//! The host tools netpath-vm runs (apt, dpkg-deb, vng, cargo): under a deadline, through
//! netpath's own runner, failing with the command line, its status and its stderr.

use std::process::Command;
use std::time::Duration;

use netpath::tool::{self, Failure};

/// `PROGRAM ARG...` as a user would type it.
pub fn line(program: &str, args: &[&str]) -> String {
    tool::command_line(program, args)
}

/// Run `c` (shown as `line`) for at most `timeout` and return its stdout, or an error naming it;
/// `hint` says where the program comes from when it is not installed.
pub fn output(c: Command, line: &str, timeout: Duration, hint: &str) -> Result<String, String> {
    match tool::run(c, None, timeout) {
        Ok(o) if o.status.success() => Ok(o.stdout),
        Ok(o) => Err(format!("`{line}` failed ({}): {}", o.status, last_lines(&o.stderr, 20))),
        Err(Failure::TimedOut { after, stderr, .. }) => {
            Err(format!("`{line}` killed after {after:?} without finishing: {}", last_lines(&stderr, 20)))
        }
        Err(Failure::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("cannot run `{line}`: not installed{hint}"))
        }
        Err(Failure::Spawn(e) | Failure::Wait(e)) => Err(format!("`{line}`: {e}")),
    }
}

/// The end of a long output, where the reason usually is.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
