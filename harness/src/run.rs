//! The engine: build a scenario's lab, observe, send its probes, judge, tear down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::evidence::{self, Exchange};
use crate::expect::{self, Failure};
use crate::firewall::{Backend, ebtables, iptables};
use crate::lab::{Lab, VethEnd};
use crate::observe::{Observed, Observers};
use crate::scenario::{ProbeKind, RouteDst, Scenario};
use crate::trace::nft_events;
use crate::{probe, sysctl};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where a failed scenario's artifacts go (a folder per run below it).
    pub artifacts_root: PathBuf,
    /// Write artifacts also when everything passed.
    pub keep: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        let root = std::env::var_os("NETPATH_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("netpath-artifacts"));
        RunOptions { artifacts_root: root, keep: false }
    }
}

/// The verdict on one probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeOutcome {
    pub name: String,
    pub exchanges: Vec<Exchange>,
    pub failures: Vec<Failure>,
}

/// The verdict on a scenario under one backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub backend: Backend,
    pub probes: Vec<ProbeOutcome>,
    /// Where the artifacts were written, if they were.
    pub artifacts: Option<PathBuf>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.probes.iter().all(|p| p.failures.is_empty())
    }
}

/// Run `scenario` under `backend`; an `Err` means the lab could not be built or observed (the
/// scenario did not run), failed expectations are in the `Outcome`.
pub fn run(scenario: &Scenario, backend: Backend, opts: &RunOptions) -> Result<Outcome> {
    let errs = scenario.validate();
    if !errs.is_empty() {
        return Err(Error::Scenario { scenario: scenario.name.clone(), message: errs.join("; ") });
    }
    let mut lab = Lab::new()?;
    let result = run_in(&mut lab, scenario, backend, opts);
    let teardown = lab.teardown();
    let outcome = result?;
    teardown?;
    Ok(outcome)
}

fn run_in(lab: &mut Lab, sc: &Scenario, backend: Backend, opts: &RunOptions) -> Result<Outcome> {
    build(lab, sc, backend)?;
    let ifnames: BTreeMap<String, BTreeMap<u32, String>> =
        sc.netns.iter().map(|n| Ok((n.name.clone(), lab.links(&n.name)?))).collect::<Result<_>>()?;

    let observers = Observers::start(lab, sc, backend)?;
    let mut probes = vec![];
    let mut probe_error = None;
    for p in &sc.probe {
        match send(lab, p) {
            Ok(sent) => probes.push(sent),
            Err(e) => {
                probe_error = Some(e);
                break;
            }
        }
    }
    let Observed { frames, events, pcaps } = observers.stop(lab, &ifnames)?;
    if let Some(e) = probe_error {
        return Err(e);
    }

    let outcomes: Vec<ProbeOutcome> = sc
        .probe
        .iter()
        .zip(probes)
        .map(|(spec, sent)| {
            let exchanges = evidence::join(&sent, &frames, &events, probe::echo_direction);
            let failures = expect::check(spec, backend, &exchanges);
            ProbeOutcome { name: spec.name.clone(), exchanges, failures }
        })
        .collect();
    let mut outcome = Outcome { scenario: sc.name.clone(), backend, probes: outcomes, artifacts: None };
    if opts.keep || !outcome.passed() {
        outcome.artifacts = Some(crate::artifacts::write(lab, sc, backend, &outcome, &events, &pcaps, opts)?);
    }
    Ok(outcome)
}

fn build(lab: &mut Lab, sc: &Scenario, backend: Backend) -> Result<()> {
    for n in &sc.netns {
        lab.add_netns(&n.name)?;
    }
    for b in &sc.bridge {
        lab.add_bridge(&b.netns, &b.name, b.mac)?;
    }
    for v in &sc.veth {
        let end =
            |e: &crate::scenario::VethEndSpec| VethEnd { netns: e.netns.clone(), name: e.name.clone(), mac: e.mac };
        lab.add_veth(&end(&v.a), &end(&v.b))?;
    }
    let ends = sc.veth.iter().flat_map(|v| [&v.a, &v.b]);
    for e in ends.clone() {
        if let Some(m) = &e.master {
            lab.set_master(&e.netns, &e.name, m)?;
        }
    }
    for b in &sc.bridge {
        if let Some(mtu) = b.mtu {
            lab.set_mtu(&b.netns, &b.name, mtu)?;
        }
        for a in &b.addresses {
            lab.add_address(&b.netns, &b.name, *a)?;
        }
    }
    for e in ends {
        if let Some(mtu) = e.mtu {
            lab.set_mtu(&e.netns, &e.name, mtu)?;
        }
        for a in &e.addresses {
            lab.add_address(&e.netns, &e.name, *a)?;
        }
        lab.set_up(&e.netns, &e.name)?;
    }
    for r in &sc.route {
        let dst = match r.to {
            RouteDst::Default => None,
            RouteDst::Prefix(c) => Some(c),
        };
        lab.add_route(&r.netns, dst, r.via, r.dev.as_deref())?;
    }
    for n in &sc.netns {
        let ns = lab.netns(&n.name)?;
        for (k, v) in &n.sysctls {
            sysctl::write(ns, k, v)?;
        }
        let has_bridge = sc.bridge.iter().any(|b| b.netns == n.name);
        if n.trace && has_bridge {
            let tables: Vec<&str> = ebtables::CHAINS
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| *t != "broute" || ebtables::has_table(ns, t))
                .collect();
            ebtables::restore(ns, &ebtables::trace_rules(&tables))?;
            if backend == Backend::Nft {
                // nf_tables reports the bridge chains only for frames with nftrace set.
                crate::firewall::run_tool(ns, "nft", &["-f", "-"], Some(&nft_events::bridge_trace_ruleset()))?;
            }
        }
        if let Some(rules) = &n.ebtables {
            ebtables::restore(ns, rules)?;
        }
        if let Some(rules) = &n.iptables {
            backend.iptables().restore(ns, rules)?;
            if n.trace {
                if !iptables::has_trace_rule(rules) {
                    add_trace_rules(ns, backend)?;
                }
                if backend == Backend::Legacy {
                    // Legacy TRACE logs through the netns's nf_log; bind IPv4's to nfnetlink_log so
                    // the records reach this netns's NFLOG socket instead of the global kernel log.
                    sysctl::write(ns, "net.netfilter.nf_log.2", "nfnetlink_log")?;
                }
            }
        }
    }
    Ok(())
}

/// Add the TRACE rules without flushing the user's raw table.
fn add_trace_rules(ns: &crate::netns::Netns, backend: Backend) -> Result<()> {
    let program = match backend {
        Backend::Legacy => "iptables-legacy-restore",
        Backend::Nft => "iptables-nft-restore",
    };
    crate::firewall::run_tool(ns, program, &["-w", "--noflush"], Some(iptables::TRACE_RULESET)).map(drop)
}

/// Send one probe; returns each packet's nonce and whether it was answered.
fn send(lab: &Lab, p: &crate::scenario::ProbeSpec) -> Result<Vec<(Vec<u8>, bool)>> {
    let ns = lab.netns(&p.from)?;
    match p.kind {
        ProbeKind::Icmp => {
            let dst = probe::ipv4(&p.name, p.to)?;
            let (_, echoes) = probe::icmp_echo(ns, dst, p.count, Duration::from_millis(p.timeout_ms))?;
            Ok(echoes.into_iter().map(|e| (e.nonce, e.reply.is_some())).collect())
        }
    }
}
