//! Machine-readable results of `netpath run --json FILE`: per scenario × backend the verdict, and
//! per probe the failures and the hooks observed in each netns, with the kernel they ran on, so
//! runs on several kernels can be compared (netpath-vm's kernel matrix reads them).

use serde::{Deserialize, Serialize};

use crate::caps::Skip;
use crate::engine::Outcome;
use crate::firewall::Backend;
use crate::scenario::{Direction, Scenario};

/// Everything one `netpath run` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// `uname -r` of the system that ran it (the guest's, in a VM).
    pub kernel: String,
    /// The kernel's own version string (`/proc/version`).
    pub version: String,
    /// One per scenario × backend, in the order they ran.
    pub runs: Vec<RunResult>,
    /// What the kernel's drop source gives on this kernel ([`drop_source`]); absent in results
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<String>,
}

impl Results {
    /// The results of `runs` on this kernel.
    pub fn new(runs: Vec<RunResult>) -> Results {
        let kernel = crate::kernel::running_release();
        let version = std::fs::read_to_string("/proc/version").map(|v| v.trim().to_string()).unwrap_or_default();
        Results { kernel, version, runs, drops: Some(drop_source()) }
    }

    /// Results as `--json` wrote them.
    pub fn read(text: &str) -> Result<Results, String> {
        serde_json::from_str(text).map_err(|e| format!("not netpath results: {e}"))
    }
}

/// The drop source on this kernel, in a few words, for the kernel matrix: `reason and location`
/// (Linux 5.17 and later), `location only: WHY` (5.10: the tracepoint has no reason), or
/// `none: WHY` (no BTF, no BPF events), from the `drop-reason` and `drop-location` features.
pub fn drop_source() -> String {
    use crate::caps::{Feature, require};
    match (require(&[Feature::DropLocation]), require(&[Feature::DropReason])) {
        (Ok(()), Ok(())) => "reason and location".into(),
        (Ok(()), Err(s)) => format!("location only: {}", s.reason),
        (Err(s), _) => format!("none: {}", s.reason),
    }
}

/// What came of one scenario under one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    /// Every probe met every expectation.
    Pass,
    /// An expectation did not hold (or a skip under strict mode).
    Fail,
    /// The kernel or userspace lacks a feature the scenario needs.
    Skip,
    /// The scenario did not run (lab not built, file not loaded, panic).
    Error,
    /// The scenario cannot run under this backend at all (a native nft ruleset under legacy).
    #[serde(rename = "not-applicable")]
    NotApplicable,
}

/// One scenario under one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The scenario file.
    pub file: String,
    /// The scenario's name.
    pub scenario: String,
    /// `legacy` or `nft`.
    pub backend: String,
    /// Its verdict.
    pub verdict: RunVerdict,
    /// The missing feature of a skip (`ebtables-broute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Why it was skipped or did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per probe, in the scenario's order.
    pub probes: Vec<ProbeResult>,
}

/// One probe of a run: its failures and the hooks its packets met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probe's name.
    pub name: String,
    /// Whether it ran and every expectation held.
    pub passed: bool,
    /// `what: detail` of each expectation that did not hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// The observed path per packet, direction and netns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<ObservedPath>,
    /// How many packets it sent (connections for TCP), each one exchange of its evidence.
    #[serde(default)]
    pub packets: usize,
}

/// The hooks one packet met in one netns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedPath {
    /// The packet, counted from 1.
    pub packet: u16,
    /// Request or reply.
    pub direction: Direction,
    /// Where the hooks were met.
    pub netns: String,
    /// The hooks, in order (`raw:PREROUTING:policy:2`).
    pub hooks: Vec<String>,
}

impl RunResult {
    /// The result of outcome `o` of scenario `file`.
    pub fn from_outcome(file: &str, o: &Outcome) -> RunResult {
        let probes = o
            .probes
            .iter()
            .map(|p| ProbeResult {
                name: p.name.clone(),
                passed: p.failures.is_empty(),
                packets: p.exchanges.len(),
                failures: p.failures.iter().map(|f| format!("{}: {}", f.what, f.detail)).collect(),
                paths: p
                    .exchanges
                    .iter()
                    .flat_map(|ex| {
                        [Direction::Request, Direction::Reply].into_iter().flat_map(move |d| {
                            ex.of(d).path.iter().map(move |(netns, events)| ObservedPath {
                                packet: ex.packet,
                                direction: d,
                                netns: netns.clone(),
                                hooks: events.iter().map(|e| e.hook.to_string()).collect(),
                            })
                        })
                    })
                    .collect(),
            })
            .collect();
        let verdict = if o.passed() { RunVerdict::Pass } else { RunVerdict::Fail };
        RunResult {
            file: file.into(),
            scenario: o.scenario.clone(),
            backend: o.backend.name().into(),
            verdict,
            feature: None,
            reason: None,
            probes,
        }
    }

    /// A file that did not load.
    pub fn not_loaded(file: &str, error: &str) -> RunResult {
        RunResult {
            file: file.into(),
            scenario: file.into(),
            backend: String::new(),
            verdict: RunVerdict::Error,
            feature: None,
            reason: Some(error.into()),
            probes: vec![],
        }
    }

    /// A run that did not happen: skipped for `skip`, or not run for `error`.
    pub fn unrun(file: &str, sc: &Scenario, backend: Backend, skip: Option<&Skip>, error: Option<&str>) -> RunResult {
        RunResult {
            file: file.into(),
            scenario: sc.name.clone(),
            backend: backend.name().into(),
            verdict: if skip.is_some() { RunVerdict::Skip } else { RunVerdict::Error },
            feature: skip.map(|s| s.feature.key().to_string()),
            reason: skip.map(|s| s.reason.clone()).or_else(|| error.map(str::to_string)),
            probes: sc
                .probe
                .iter()
                .map(|p| ProbeResult {
                    name: p.name.clone(),
                    passed: false,
                    failures: vec![],
                    paths: vec![],
                    packets: 0,
                })
                .collect(),
        }
    }
}
