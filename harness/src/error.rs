//! Errors that say what failed and how to fix it.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("needs CAP_NET_ADMIN and CAP_SYS_ADMIN to {what}: run as root ({source})")]
    NotRoot { what: String, source: io::Error },

    #[error("netns {netns}: {what}: {source}")]
    Netns { netns: String, what: String, source: io::Error },

    /// An rtnetlink request failed; `errno` is the kernel's where it refused the request.
    #[error("netns {netns}: netlink: {what}: {message}")]
    Netlink { netns: String, what: String, message: String, errno: Option<i32> },

    #[error("netns {netns}: `{command}` failed ({status}): {stderr}{hint}")]
    Command { netns: String, command: String, status: String, stderr: String, hint: String },

    /// A `[[step]]` failed or timed out (`outcome`: its exit status and the tail of its
    /// stderr); the lab is torn down as after any error.
    #[error("step `{step}` (netns {netns}): `{command}`: {outcome}")]
    Step { step: String, netns: String, command: String, outcome: String },

    /// A firewall tool rejected a scenario's ruleset: where the failing rule is in the file
    /// (`FILE:LINE`), what was rejected (the tool and the rule), and what the tool said.
    #[error("{at}: netns {netns}: {rejected}: {message}")]
    Ruleset { at: String, netns: String, rejected: String, message: String },

    #[error("netns {netns}: cannot run `{program}`: {source}{hint}")]
    Spawn { netns: String, program: String, source: io::Error, hint: String },

    #[error("netns {netns}: sysctl {key}: {source}")]
    Sysctl { netns: String, key: String, source: io::Error },

    #[error("netns {netns}, interface {iface}: capture: {message}")]
    Capture { netns: String, iface: String, message: String },

    #[error("netns {netns}: trace: {message}")]
    Trace { netns: String, message: String },

    #[error("probe {probe}: {message}")]
    Probe { probe: String, message: String },

    #[error("scenario {scenario}: {message}")]
    Scenario { scenario: String, message: String },

    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    /// Several things failed (teardown keeps going and reports them all).
    /// The kernel reported losing frames or trace events: no verdict is built from what is left.
    #[error(
        "evidence incomplete, no verdict: {}; the kernel dropped what the readers could not take in time \
         (fewer packets per probe, or fewer runs at once with -j, leave the readers more room)",
        .losses.join("; ")
    )]
    EvidenceIncomplete { losses: Vec<String> },

    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    /// Attribute an OS error to a netns, turning EPERM into the run-as-root advice.
    pub fn netns(netns: &str, what: impl Into<String>, source: io::Error) -> Error {
        let what = what.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            Error::NotRoot { what: format!("{what} (netns {netns})"), source }
        } else {
            Error::Netns { netns: netns.to_string(), what, source }
        }
    }
}

/// What a caught panic said (its `String` or `&str` payload).
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}
