//! Helpers for running scenarios from `cargo test`: run or skip with the missing feature and
//! why, a strict mode that makes skips failures, and matchers that find a failure by its
//! [`FailureKind`] and structured fields instead of its text.
//!
//! A case may be skipped only when the kernel lacks a feature the scenario needs (derived by
//! [`crate::caps::requires::required_features`], probed by [`crate::caps`]): [`run_or_skip`] and
//! [`assert_passes`] then print `SKIP NAME [BACKEND]: needs FEATURE: REASON` and return `None`,
//! and under `NETPATH_STRICT=1` ([`strict`]) fail instead. A test that needs the outcome to go
//! on uses [`run_or_return!`](crate::run_or_return), which returns from the test on a skip.
//!
//! ```no_run
//! // Needs root: the scenario builds namespaces on the real kernel.
//! use netpath::FailureKind;
//! use netpath::testing::{want, without_lines};
//! use netpath::{Backend, Scenario};
//!
//! fn the_reply_needs_the_masquerade() {
//!     let mut sc = Scenario::load("scenarios/masquerade.toml".as_ref()).unwrap();
//!     let host = sc.netns_mut("host").unwrap();
//!     host.iptables = host.iptables.as_deref().map(|r| without_lines(r, "-j MASQUERADE"));
//!     let o = netpath::run_or_return!(&sc, Backend::Nft);
//!     let uplink = want(FailureKind::Header).packet(1).request().at("host/eth0").find(&o.probes[0].failures);
//!     assert_eq!(uplink.observed.as_deref(), Some("192.168.0.2 > 10.171.77.30"));
//! }
//! ```

use std::io::Write;

use crate::observe::trace::Hook;
use crate::scenario::Direction;
use crate::verdict::{Failure, FailureKind};
use crate::{Backend, Outcome, RunOptions, Scenario};

/// Whether skips are failures: `NETPATH_STRICT=1`.
pub fn strict() -> bool {
    crate::caps::strict()
}

/// netpath needs root: say so once, clearly, instead of a wall of EPERMs.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("netpath tests need CAP_NET_ADMIN and CAP_SYS_ADMIN: run `cargo test` as root");
    }
}

/// `Err` with the skip line (`SKIP NAME [BACKEND]: needs FEATURE: REASON`) when this machine
/// lacks a feature `sc` needs under `backend`.
pub fn check(sc: &Scenario, backend: Backend) -> Result<(), String> {
    crate::caps::requires::check(sc, backend, &RunOptions::default()).map_err(|skip| {
        format!("SKIP {} [{}]: needs {}: {}", sc.name, backend.name(), skip.feature.name(), skip.reason)
    })
}

/// Run `sc` under `backend`, or skip it: `None` after printing why when the kernel lacks a
/// feature it needs; under strict mode that panics instead. An `Err` of the engine fails the
/// test with its message.
pub fn run_or_skip(sc: &Scenario, backend: Backend) -> Option<Outcome> {
    require_root();
    if let Err(line) = check(sc, backend) {
        if strict() {
            panic!("{line} (NETPATH_STRICT=1 makes a skip a failure)");
        }
        // Straight to stderr, past the test harness's capture: a skip must be seen.
        let _ = writeln!(std::io::stderr(), "{line}");
        return None;
    }
    Some(run_checked(sc, backend))
}

fn run_checked(sc: &Scenario, backend: Backend) -> Outcome {
    crate::run(sc, backend, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{} [{}] did not run: {e}", sc.name, backend.name()))
}

/// Run a scenario under one backend, for a test that needs its outcome to go on. It cannot
/// skip: when the kernel lacks a feature the scenario needs, it fails the test naming the
/// feature and why. Tests that can skip use [`run_or_skip`] or
/// [`run_or_return!`](crate::run_or_return).
pub fn run(sc: &Scenario, backend: Backend) -> Outcome {
    require_root();
    if let Err(line) = check(sc, backend) {
        panic!("{line}: this test needs the outcome (use netpath::run_or_return! to skip instead)");
    }
    run_checked(sc, backend)
}

/// Run and require every expectation to hold, showing the report otherwise; `None` when
/// skipped (see [`run_or_skip`]).
pub fn assert_passes(sc: &Scenario, backend: Backend) -> Option<Outcome> {
    let o = run_or_skip(sc, backend)?;
    assert!(o.passed(), "\n{}", crate::output::report::outcome(&o, true));
    Some(o)
}

/// `let o = run_or_return!(&sc, backend);`: the outcome, or return from the test when the
/// kernel lacks a feature the scenario needs (a failure under `NETPATH_STRICT=1`).
#[macro_export]
macro_rules! run_or_return {
    ($sc:expr, $backend:expr) => {
        match $crate::testing::run_or_skip($sc, $backend) {
            Some(outcome) => outcome,
            None => return,
        }
    };
}

/// The ruleset `rules` without the lines that contain `needle`: the usual edit of a negative
/// twin (check it changed something, or the twin passes for the wrong reason).
///
/// ```
/// let rules = "*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n";
/// assert_eq!(netpath::testing::without_lines(rules, "-j MASQUERADE"), "*nat\nCOMMIT\n");
/// ```
pub fn without_lines(rules: &str, needle: &str) -> String {
    rules.lines().filter(|l| !l.contains(needle)).map(|l| format!("{l}\n")).collect()
}

/// A hook from its text (`nat:POSTROUTING:rule:1`, `eb:filter:FORWARD`), for comparing with a
/// failure's hooks; panics on a typo.
pub fn hook(text: &str) -> Hook {
    text.parse().unwrap_or_else(|e| panic!("`{text}` is not a hook: {e:?}"))
}

/// Which failure a test looks for: its kind and the structured fields it names, each optional.
/// Build one with [`want`].
///
/// ```
/// use netpath::{Failure, FailureKind};
/// use netpath::testing::want;
///
/// let mut f = Failure::new(FailureKind::PathLast, "path ... (last hook)".into(), "...".into());
/// f.packet = Some(1);
/// f.netns = Some("host".into());
/// let last = want(FailureKind::PathLast).packet(1).netns("host");
/// assert!(last.matches(&f));
/// assert!(!last.clone().reply().matches(&f));
/// assert_eq!(last.find(std::slice::from_ref(&f)).kind, FailureKind::PathLast);
/// ```
#[derive(Debug, Clone)]
pub struct Want {
    kinds: Vec<FailureKind>,
    packet: Option<u16>,
    direction: Option<Direction>,
    netns: Option<String>,
    at: Option<String>,
    answered_by: Option<String>,
    hooks: Vec<Hook>,
    missing: Vec<Hook>,
    unexpected: Vec<Hook>,
    expected: Option<String>,
    observed: Option<String>,
}

/// The failures of `kind`; narrow them with [`Want`]'s methods.
pub fn want(kind: FailureKind) -> Want {
    want_any(&[kind])
}

/// The failures of any of `kinds` ([`FailureKind::PATH`], [`FailureKind::ADDRESS`]).
pub fn want_any(kinds: &[FailureKind]) -> Want {
    Want {
        kinds: kinds.to_vec(),
        packet: None,
        direction: None,
        netns: None,
        at: None,
        answered_by: None,
        hooks: vec![],
        missing: vec![],
        unexpected: vec![],
        expected: None,
        observed: None,
    }
}

impl Want {
    /// About packet `n` (1-based).
    pub fn packet(mut self, n: u16) -> Want {
        self.packet = Some(n);
        self
    }

    /// About the request.
    pub fn request(mut self) -> Want {
        self.direction = Some(Direction::Request);
        self
    }

    /// About the reply.
    pub fn reply(mut self) -> Want {
        self.direction = Some(Direction::Reply);
        self
    }

    /// In netns `name` (a path or conntrack expectation; the sender for reply kinds).
    pub fn netns(mut self, name: &str) -> Want {
        self.netns = Some(name.into());
        self
    }

    /// At capture point `point` (`host/eth0`), by its real name or by the handle the
    /// scenario named it by (`host/peer:c1/eth0`).
    pub fn at(mut self, point: &str) -> Want {
        self.at = Some(point.into());
        self
    }

    /// Of an expectation with `answered_by = server`, or the `Answers` of `server`.
    pub fn answered_by(mut self, server: &str) -> Want {
        self.answered_by = Some(server.into());
        self
    }

    /// Whose observed path has `hook` ([`Failure::hooks`]); call again for more.
    pub fn observing(mut self, hook_text: &str) -> Want {
        self.hooks.push(hook(hook_text));
        self
    }

    /// Whose path lacks `hook` ([`Failure::missing`]); call again for more.
    pub fn missing(mut self, hook_text: &str) -> Want {
        self.missing.push(hook(hook_text));
        self
    }

    /// Whose path has `hook` where it should not ([`Failure::unexpected`]); call again for more.
    pub fn unexpected(mut self, hook_text: &str) -> Want {
        self.unexpected.push(hook(hook_text));
        self
    }

    /// Whose expected side is `text` ([`Failure::expected`]).
    pub fn expected(mut self, text: &str) -> Want {
        self.expected = Some(text.into());
        self
    }

    /// Whose observed side is `text` ([`Failure::observed`]).
    pub fn observed(mut self, text: &str) -> Want {
        self.observed = Some(text.into());
        self
    }

    /// Whether `f` is such a failure.
    pub fn matches(&self, f: &Failure) -> bool {
        let point =
            |p: &Option<crate::scenario::CapturePoint>, want: &str| p.as_ref().is_some_and(|p| p.to_string() == want);
        self.kinds.contains(&f.kind)
            && self.packet.is_none_or(|n| f.packet == Some(n))
            && self.direction.is_none_or(|d| f.direction == Some(d))
            && self.netns.as_ref().is_none_or(|n| f.netns.as_ref() == Some(n))
            && self.at.as_ref().is_none_or(|a| point(&f.at, a) || point(&f.handle, a))
            && self.answered_by.as_ref().is_none_or(|a| f.answered_by.as_ref() == Some(a))
            && self.hooks.iter().all(|h| f.hooks.contains(h))
            && self.missing.iter().all(|h| f.missing.contains(h))
            && self.unexpected.iter().all(|h| f.unexpected.contains(h))
            && self.expected.as_ref().is_none_or(|e| f.expected.as_ref() == Some(e))
            && self.observed.as_ref().is_none_or(|o| f.observed.as_ref() == Some(o))
    }

    /// The first such failure among `failures`, or a panic listing them all.
    pub fn find<'a>(&self, failures: &'a [Failure]) -> &'a Failure {
        failures.iter().find(|f| self.matches(f)).unwrap_or_else(|| panic!("no failure {self:?} in {failures:#?}"))
    }

    /// Whether `failures` hold such a failure.
    pub fn any(&self, failures: &[Failure]) -> bool {
        failures.iter().any(|f| self.matches(f))
    }

    /// Check that `failures` hold no such failure, or panic listing them all.
    pub fn assert_none(&self, failures: &[Failure]) {
        assert!(!self.any(failures), "unexpected failure {self:?} in {failures:#?}");
    }
}
