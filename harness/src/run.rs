//! The engine: build a scenario's lab, observe, send its probes, judge, tear down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::evidence::{self, Exchange, Frame, TimedEvent};
use crate::expect::{self, Failure};
use crate::firewall::{Backend, ebtables, iptables};
use crate::lab::{Lab, VethEnd};
use crate::pcap_thread::{PcapThread, Record};
use crate::scenario::{CapturePoint, ProbeKind, RouteDst, Scenario};
use crate::{probe, sysctl, trace};

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
    if backend == Backend::Nft {
        return Err(Error::Scenario {
            scenario: scenario.name.clone(),
            message: "the nft backend's trace source (nf_tables trace events) is not wired into the engine yet: run with backend legacy".into(),
        });
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

    let mut observers = Observers::start(lab, sc)?;
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
    let (frames, events, pcaps) = observers.stop(&ifnames)?;
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
                // Legacy TRACE logs through the netns's nf_log; bind IPv4's to nfnetlink_log so the
                // records reach this netns's NFLOG socket instead of the global kernel log.
                sysctl::write(ns, "net.netfilter.nf_log.2", "nfnetlink_log")?;
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

type Pcaps = Vec<(String, pcap::Linktype, Vec<Record>)>;

/// A pcap on every interface and an NFLOG reader in every traced netns.
struct Observers {
    captures: Vec<(CapturePoint, PcapThread)>,
    traces: Vec<(String, PcapThread)>,
}

impl Observers {
    fn start(lab: &Lab, sc: &Scenario) -> Result<Observers> {
        let mut captures = vec![];
        for point in sc.capture_points() {
            let ns = lab.netns(&point.netns)?;
            let t = PcapThread::start(ns.entry()?, &point.iface).map_err(|message| Error::Capture {
                netns: ns.name().to_string(),
                iface: point.iface.clone(),
                message,
            })?;
            captures.push((point, t));
        }
        let mut traces = vec![];
        for n in sc.netns.iter().filter(|n| n.trace) {
            let ns = lab.netns(&n.name)?;
            let device = format!("nflog:0,{}", ebtables::TRACE_GROUP);
            let t = PcapThread::start(ns.entry()?, &device)
                .map_err(|message| Error::Trace { netns: ns.name().to_string(), message })?;
            traces.push((n.name.clone(), t));
        }
        Ok(Observers { captures, traces })
    }

    #[allow(clippy::type_complexity)]
    fn stop(
        &mut self,
        ifnames: &BTreeMap<String, BTreeMap<u32, String>>,
    ) -> Result<(Vec<Frame>, BTreeMap<String, Vec<TimedEvent>>, Pcaps)> {
        let mut frames = vec![];
        let mut pcaps = vec![];
        let mut errors = vec![];
        for (point, t) in self.captures.drain(..) {
            let linktype = t.linktype;
            match t.stop() {
                Ok(records) => {
                    frames.extend(records.iter().map(|r| Frame {
                        point: point.clone(),
                        ts: r.ts,
                        data: r.data.clone(),
                    }));
                    pcaps.push((format!("{}_{}", point.netns, point.iface), linktype, records));
                }
                Err(message) => {
                    errors.push(Error::Capture { netns: point.netns.clone(), iface: point.iface.clone(), message })
                }
            }
        }
        let mut events = BTreeMap::new();
        let empty = BTreeMap::new();
        for (netns, t) in self.traces.drain(..) {
            let linktype = t.linktype;
            match t.stop() {
                Ok(records) => {
                    let names = ifnames.get(&netns).unwrap_or(&empty);
                    let evs: Vec<TimedEvent> = records
                        .iter()
                        .filter_map(|r| {
                            let rec = trace::nflog::parse_record(&r.data).ok()?;
                            let event = trace::nflog::to_event(&rec, &netns, names)?;
                            Some(TimedEvent { ts: r.ts, event })
                        })
                        .collect();
                    events.insert(netns.clone(), evs);
                    pcaps.push((format!("{netns}_nflog"), linktype, records));
                }
                Err(message) => errors.push(Error::Trace { netns, message }),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Many(errors));
        }
        Ok((frames, events, pcaps))
    }
}
