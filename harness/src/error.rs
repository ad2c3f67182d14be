//! Errors that say what failed and how to fix it.

use std::io;
use std::path::PathBuf;

/// A netpath result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong before a verdict could be given: the lab, a tool, a trace source, a file.
/// A probe that fails its expectations is not an error but a [`crate::Failure`] in the outcome.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process lacks the capabilities to `what` (EPERM from the kernel).
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("needs CAP_NET_ADMIN and CAP_SYS_ADMIN to {what}: run as root ({source})")]
    NotRoot { what: String, source: io::Error },

    /// An OS call in netns `netns` failed while doing `what`.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: {what}: {source}")]
    Netns { netns: String, what: String, source: io::Error },

    /// An rtnetlink request in netns `netns` failed: `what` was asked, `message` is the kernel's
    /// answer, `errno` its error number where it refused the request.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: netlink: {what}: {message}")]
    Netlink { netns: String, what: String, message: String, errno: Option<i32> },

    /// A tool run in netns `netns` exited non-zero or timed out: the `command` line, its exit `status`, its `stderr`, and a `hint` on how to fix it where one is known.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: `{command}` failed ({status}): {stderr}{hint}")]
    Command { netns: String, command: String, status: String, stderr: String, hint: String },

    /// A `[[step]]` failed or timed out (`outcome`: its exit status and the tail of its
    /// stderr); the lab is torn down as after any error.
    #[error("step `{step}` (netns {netns}): `{command}`: {outcome}")]
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    Step { step: String, netns: String, command: String, outcome: String },

    /// A firewall tool rejected a scenario's ruleset: where the failing rule is in the file
    /// (`FILE:LINE`), what was rejected (the tool and the rule), and what the tool said.
    #[error("{at}: netns {netns}: {rejected}: {message}")]
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    Ruleset { at: String, netns: String, rejected: String, message: String },

    /// `program` could not be started in netns `netns` (not installed, not executable); `hint` says which package has it.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: cannot run `{program}`: {source}{hint}")]
    Spawn { netns: String, program: String, source: io::Error, hint: String },

    /// Sysctl `key` could not be read or written in netns `netns`.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: sysctl {key}: {source}")]
    Sysctl { netns: String, key: String, source: io::Error },

    /// A sysctl of a lab netns was refused or could not be set: where it is in the scenario
    /// file (`FILE:LINE`; `netns NAME sysctls` for a scenario built in Rust, `netpath` for
    /// netpath's own), the netns, the key, and why.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("{at}: netns {netns}: sysctl {key}: {message}")]
    LabSysctl { at: String, netns: String, key: String, message: String },

    /// The kernel refused an item of the scenario the lab builds (a veth end, a bridge, an
    /// address, a route): where the item is written (`FILE:LINE:COL`, or `route[2]` for a
    /// scenario built in Rust), the netns as the scenario names it, what was asked, and the
    /// kernel's answer with what to change (a near interface name: "did you mean").
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("{at}: netns {netns}: {what}: {message}")]
    LabItem { at: String, netns: String, what: String, message: String },

    /// The pcap capture on `iface` in netns `netns` failed.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}, interface {iface}: capture: {message}")]
    Capture { netns: String, iface: String, message: String },

    /// The trace source of netns `netns` could not be set up or read.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("netns {netns}: trace: {message}")]
    Trace { netns: String, message: String },

    /// Probe `probe` could not be sent or its reply not awaited.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("probe {probe}: {message}")]
    Probe { probe: String, message: String },

    /// The run went past its bound (`--max-duration`, or the one derived from the scenario):
    /// `limit` the bound, `at` where the run was (`probe NAME, packet 37 of 1000`), `why` the
    /// scenario's worst case.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error(
        "run exceeded its {limit} bound during {at}: {why}; raise --max-duration (or NETPATH_MAX_DURATION) \
         or lower the probes' count or timeout_ms"
    )]
    RunBound { limit: String, at: String, why: String },

    /// Scenario `scenario` cannot be run as given.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("scenario {scenario}: {message}")]
    Scenario { scenario: String, message: String },

    /// A path pattern of the scenario names nothing in its netns's live rulesets (those its steps
    /// wrote): `at` is the entry's `FILE:LINE:COL` (or its item, for a scenario built in Rust),
    /// `message` what it names that is missing and what is there, as a load error says it.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("{at}: {message}")]
    VacuousPattern { at: String, message: String },

    /// A scenario file (`path`) could not be read or has problems (`message`, one `file:line:col: ...` per line).
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    /// An I/O error while doing `context`.
    #[allow(missing_docs)] // the fields are named in the doc and in the message
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    /// Evidence is missing (the kernel reported losing frames or trace events) or cannot be
    /// attributed to one probe packet: no verdict is built from what is left.
    #[error("evidence incomplete, no verdict: {}; {cause}", .losses.join("; "))]
    EvidenceIncomplete {
        /// What was lost, per capture or trace source (`netns host: 3 NFLOG records`), or what
        /// cannot be attributed, per netns.
        losses: Vec<String>,
        /// Why, and what to do about it.
        cause: Incomplete,
    },

    /// Several things failed (teardown keeps going and reports them all).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

/// Why evidence is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incomplete {
    /// The kernel dropped frames or trace events.
    Lost,
    /// Trace events that carry headers only fit more than one probe packet.
    Unattributable,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Incomplete::Lost => {
                "the kernel dropped what the readers could not take in time (fewer packets per probe, \
                 or fewer runs at once with -j, leave the readers more room)"
            }
            Incomplete::Unattributable => {
                "the headers, payload start, trace id and time those events show are the same for \
                 both packets (send fewer packets per run, so that IPv4 ids do not repeat, or trace \
                 with a source that carries the packet: nflog, under the legacy backend)"
            }
        })
    }
}

impl Error {
    /// An I/O error while doing `context`.
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
