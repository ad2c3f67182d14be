//! The engine: build a scenario's lab, observe, send its probes, judge, tear down.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::bound::{self, RunBound};
use crate::caps::{self, Feature};
use crate::error::{Error, Incomplete, Result};
use crate::evidence::{self, Exchange, Frame};
use crate::firewall::Backend;
use crate::firewall::located::{self, Kind};
use crate::lab::step::{Phase, Steps};
use crate::lab::wireguard::{self, Implementation, Tunnels};
use crate::lab::{Lab, VethEnd};
use crate::observe::{self, Observed, Observers, TraceChoice};
use crate::probe::server::Server;
use crate::scenario::{RouteDst, Scenario};
use crate::timings::{Stopwatch, Timings};
use crate::verdict::{self, Failure, ProbeEvidence};
use crate::{evidence::conntrack, lab::sysctl, probe};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where a failed scenario's artifacts go (a folder per run below it).
    pub artifacts_root: PathBuf,
    /// Write artifacts also when everything passed.
    pub keep: bool,
    /// Which trace source to read; `None` follows the backend.
    pub trace: Option<TraceChoice>,
    /// The most the run may take before it stops with [`Error::RunBound`]; `None`:
    /// `NETPATH_MAX_DURATION` if set, else the scenario's worst case capped at ten minutes
    /// ([`crate::bound`]).
    pub max_duration: Option<std::time::Duration>,
    /// Whether a packet that expects a reply and got none in time listens as long again for a
    /// late one, so its failure says how late it was (see `probe::Context::late_window`);
    /// off where only pass or fail matters and time does (mutation testing).
    pub late_answers: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        let root = std::env::var_os("NETPATH_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("netpath-artifacts"));
        RunOptions { artifacts_root: root, keep: false, trace: None, max_duration: None, late_answers: true }
    }
}

/// The verdict on one probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeOutcome {
    /// The probe's name in the scenario.
    pub name: String,
    /// Every packet of the probe, request and reply, with its evidence.
    pub exchanges: Vec<Exchange>,
    /// Every expectation of the probe that did not hold; empty when it passed.
    pub failures: Vec<Failure>,
}

/// The verdict on a scenario under one backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// The backend it ran under.
    pub backend: Backend,
    /// Per probe, in the scenario's order.
    pub probes: Vec<ProbeOutcome>,
    /// Where the artifacts were written, if they were.
    pub artifacts: Option<PathBuf>,
    /// The WireGuard implementation that made the scenario's `[[wireguard]]` interfaces
    /// (`userspace (wireguard-go 0.0.20220316)`, `kernel (Linux 6.12.0)`); `None` without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<Implementation>,
    /// What the steps did and made: their records, the handles' real names, each netns's
    /// detected backend (empty without steps and handles).
    pub setup: crate::scenario::handle::Setup,
    /// Every frame captured, in capture order per interface: for tests that look past the
    /// probes' own packets (a tunnel's encrypted datagrams, handshakes, ARP). Not serialized.
    #[serde(skip)]
    pub frames: Vec<Frame>,
    /// Where the run spent its time, stage by stage, teardown included.
    pub timings: Timings,
}

impl Outcome {
    /// Whether every probe met every expectation.
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
    let max = match opts.max_duration {
        Some(d) => Some(d),
        None => bound::from_env().map_err(|m| Error::io(m, std::io::ErrorKind::InvalidInput.into()))?,
    };
    let bound = RunBound::new(scenario, max);
    // Before anything is built: a missing feature must not leave half a lab behind, nor a
    // trace source that would see nothing of a netns.
    let wireguard = wireguard_implementation(scenario)?;
    observe::trace::source::check_run(scenario, backend, opts.trace.unwrap_or(TraceChoice::for_backend(backend)))?;
    let mut clock = Stopwatch::default();
    let mut lab = Lab::new()?;
    // Dropped last: `{run_dir}` outlives the teardown steps, and goes also after a panic.
    let mut steps = Steps::new(&lab)?;
    let cx = Run { backend, opts, wireguard: wireguard.as_ref(), bound: &bound };
    let result = run_in(&mut lab, &mut steps, scenario, &cx, &mut clock);
    // Before the namespaces go, whatever happened: each undoes what its ADD step made.
    let teardown_steps = steps.teardown(&lab, scenario);
    if !scenario.step.is_empty() {
        clock.lap("teardown steps");
    }
    let teardown = lab.teardown();
    clock.lap("teardown");
    let mut outcome = match (result, teardown_steps) {
        (Ok(o), Ok(())) => o,
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(t)) => return Err(Error::Many(vec![e, t])),
    };
    teardown?;
    outcome.timings = clock.finish();
    outcome.setup.steps = std::mem::take(&mut steps.records);
    if let Some(dir) = &outcome.artifacts {
        // Written before the namespaces went (they dump the live rulesets): add the teardown.
        crate::output::artifacts::write_outcome(dir, &outcome)?;
        steps.records.clone_from(&outcome.setup.steps);
        steps.write_artifacts(dir)?;
    }
    Ok(outcome)
}

/// The WireGuard implementation a scenario with `[[wireguard]]` entries runs with: the kernel's
/// where [`caps`] finds it, else wireguard-go (or what `NETPATH_WIREGUARD` forces); an error that
/// names the missing features (`WireGuard (kernel)`, `WireGuard (userspace)`) and why otherwise.
fn wireguard_implementation(sc: &Scenario) -> Result<Option<Implementation>> {
    if sc.wireguard.is_empty() {
        return Ok(None);
    }
    let fail = |message: String| Error::Scenario { scenario: sc.name.clone(), message };
    let preference = wireguard::Preference::from_env().map_err(fail)?;
    let kernel = caps::require(&[Feature::WireGuard]);
    let userspace = caps::require(&[Feature::WireGuardUserspace]);
    let kind = wireguard::choose(preference, kernel, userspace).map_err(fail)?;
    Implementation::find(kind).map(Some).map_err(fail)
}

/// What one run is given besides its lab and scenario.
struct Run<'a> {
    backend: Backend,
    opts: &'a RunOptions,
    wireguard: Option<&'a Implementation>,
    bound: &'a RunBound,
}

fn run_in(lab: &mut Lab, steps: &mut Steps, sc: &Scenario, cx: &Run<'_>, clock: &mut Stopwatch) -> Result<Outcome> {
    let Run { backend, opts, wireguard, bound } = *cx;
    let trace = opts.trace.unwrap_or(TraceChoice::for_backend(backend));
    // Held to the end: dropped on an early return or a panic, it kills the wireguard-go
    // processes before the lab's namespaces go.
    let tunnels = build(lab, steps, sc, cx, trace, clock)?;
    steps.run_phase(lab, sc, Phase::AfterRules, bound)?;
    // From here on the scenario speaks of what the tools made by its real names.
    let (sc, setup) = crate::scenario::handle::after_steps(lab, sc, backend, trace)?;
    let sc = &sc;
    if !sc.step.is_empty() {
        clock.lap("steps after rules, tool-made links");
        // Before any packet: a pattern naming nothing the steps made would pass vacuously.
        crate::ruleset::live::check_after_steps(lab, sc, backend)?;
        clock.lap("path patterns against the live rulesets");
    }
    let ifnames: BTreeMap<String, BTreeMap<u32, String>> =
        sc.netns.iter().map(|n| Ok((n.name.clone(), lab.links(&n.name)?))).collect::<Result<_>>()?;

    bound.at("starting the servers and observers")?;
    let servers = sc
        .server
        .iter()
        .map(|srv| Server::start(lab.netns(&srv.netns)?, srv.kind, srv.port, &srv.netns))
        .collect::<Result<Vec<_>>>()?;
    clock.lap("servers");
    // Not counted: a global trace source first waits for the other runs reading it.
    let observers = bound.excluding(|| Observers::start_at(lab, sc, trace, &setup.points, &setup.traces))?;
    clock.lap("observers");
    let mut probes = vec![];
    let mut probe_error = None;
    for p in &sc.probe {
        // A packet whose wait the bound cut short has no verdict: past the bound is an error.
        let sent = probe::send(lab, sc, p, observers.drops(), bound, opts.late_answers)
            .and_then(|s| bound.check().map(|()| s));
        clock.lap(format!("probe {}", p.name));
        match sent {
            Ok(sent) => probes.push(sent),
            Err(e) => {
                probe_error = Some(e);
                break;
            }
        }
    }
    let Observed { frames, events, pcaps, drops } = observers.stop(lab, &ifnames)?;
    for srv in servers {
        srv.stop().map_err(|message| Error::Probe { probe: "server".into(), message })?;
    }
    clock.lap("drain");
    if let Some(e) = probe_error {
        return Err(e);
    }
    let conntrack = conntrack::snapshot(lab, sc)?;
    clock.lap("conntrack");

    let parsed = evidence::Parsed::new(&frames);
    let mut joined = evidence::join(&mut probes, &parsed, &events);
    evidence::drop::attach(&probes, &mut joined.probes, &drops);
    if !joined.unattributed.is_empty() {
        let names: Vec<&str> = sc.probe.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::EvidenceIncomplete {
            losses: joined.unattributed(&names),
            cause: Incomplete::Unattributable,
        });
    }
    let kernel = crate::kernel::running();
    let outcomes: Vec<ProbeOutcome> = sc
        .probe
        .iter()
        .zip(joined.probes)
        .enumerate()
        .map(|(i, (spec, exchanges))| {
            let evidence = ProbeEvidence { backend, kernel, exchanges: &exchanges, conntrack: &conntrack };
            let mut failures = verdict::judge(spec, &evidence);
            setup.decorate(&mut failures);
            crate::ruleset::live::explain(lab, sc, backend, i, &mut failures);
            sc.source.locate(i, &spec.name, &mut failures);
            ProbeOutcome { name: spec.name.clone(), exchanges, failures }
        })
        .collect();
    drop(parsed);
    let mut outcome = Outcome {
        scenario: sc.name.clone(),
        backend,
        probes: outcomes,
        artifacts: None,
        wireguard: wireguard.cloned(),
        setup,
        frames,
        timings: Timings::default(),
    };
    clock.lap("verdict");
    if opts.keep || !outcome.passed() {
        outcome.timings = clock.timings().clone();
        outcome.artifacts = Some(crate::output::artifacts::write(lab, sc, backend, &outcome, &events, &pcaps, opts)?);
        clock.lap("artifacts");
    }
    if let Some(t) = tunnels {
        t.stop()?;
    }
    Ok(outcome)
}

/// Build the lab; the WireGuard interfaces come up once the veths carry packets (an endpoint is
/// on one) and before the routes (a route may lead through one).
fn build(
    lab: &mut Lab,
    steps: &mut Steps,
    sc: &Scenario,
    cx: &Run<'_>,
    trace: TraceChoice,
    clock: &mut Stopwatch,
) -> Result<Option<Tunnels>> {
    let Run { backend, wireguard, bound, .. } = *cx;
    bound.at("building the lab")?;
    for n in &sc.netns {
        lab.add_netns(&n.name)?;
    }
    clock.lap("netns");
    // A refusal names the item as the file wrote it (lab/item.rs).
    let at = |e, item: String, netns: &str, hint: Option<String>| {
        crate::lab::item::locate(e, lab, sc, crate::lab::item::Item { item, netns, hint })
    };
    for (i, b) in sc.bridge.iter().enumerate() {
        lab.add_bridge(&b.netns, &b.name, b.mac).map_err(|e| at(e, format!("bridge[{i}]"), &b.netns, None))?;
    }
    for (i, v) in sc.veth.iter().enumerate() {
        let end =
            |e: &crate::scenario::VethEndSpec| VethEnd { netns: e.netns.clone(), name: e.name.clone(), mac: e.mac };
        lab.add_veth(&end(&v.a), &end(&v.b)).map_err(|e| at(e, format!("veth[{i}].a"), &v.a.netns, None))?;
    }
    let ends =
        sc.veth.iter().enumerate().flat_map(|(i, v)| [(format!("veth[{i}].a"), &v.a), (format!("veth[{i}].b"), &v.b)]);
    for (item, e) in ends.clone() {
        if let Some(m) = &e.master {
            let located = |err| at(err, item.clone(), &e.netns, None);
            lab.set_master(&e.netns, &e.name, m).map_err(located)?;
            if e.hairpin {
                lab.set_hairpin(&e.netns, &e.name, true).map_err(located)?;
            }
        }
    }
    let v6_hint =
        |a: &crate::cidr::Cidr, iface: &str, mtu| crate::lab::item::ipv6_mtu_hint(a.addr.is_ipv6(), iface, mtu);
    for (i, b) in sc.bridge.iter().enumerate() {
        let item = format!("bridge[{i}]");
        if let Some(mtu) = b.mtu {
            lab.set_mtu(&b.netns, &b.name, mtu).map_err(|e| at(e, item.clone(), &b.netns, None))?;
        }
        for a in &b.addresses {
            let hint = v6_hint(a, &b.name, b.mtu);
            lab.add_address(&b.netns, &b.name, *a).map_err(|e| at(e, item.clone(), &b.netns, hint))?;
        }
    }
    for (item, e) in ends {
        if let Some(mtu) = e.mtu {
            lab.set_mtu(&e.netns, &e.name, mtu).map_err(|err| at(err, item.clone(), &e.netns, None))?;
        }
        for a in &e.addresses {
            let hint = v6_hint(a, &e.name, e.mtu);
            lab.add_address(&e.netns, &e.name, *a).map_err(|err| at(err, item.clone(), &e.netns, hint))?;
        }
        lab.set_up(&e.netns, &e.name).map_err(|err| at(err, item.clone(), &e.netns, None))?;
    }
    // Links carry nothing until the kernel has them operationally up (see wait_until_up).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // A WireGuard interface is not there yet, and its state stays UNKNOWN (a TUN device, or the
    // kernel's wireguard link, reports no carrier state): it is up once `Tunnels::up` returns.
    for p in sc.capture_points().iter().filter(|p| sc.wireguard_at(&p.netns, &p.iface).is_none()) {
        lab.wait_until_up(&p.netns, &p.iface, deadline)?;
    }
    clock.lap("links");
    // `wireguard` is Some exactly when the scenario has `[[wireguard]]` entries.
    let tunnels = wireguard.map(|imp| Tunnels::up(lab, sc, imp)).transpose()?;
    if tunnels.is_some() {
        clock.lap("wireguard");
    }
    for (i, r) in sc.route.iter().enumerate() {
        let dst = match r.to {
            RouteDst::Default => None,
            RouteDst::Prefix(c) => Some(c),
        };
        let hint =
            r.dev.as_deref().and_then(|d| crate::lab::item::ipv6_mtu_hint(r.is_ipv6(), d, sc.iface_mtu(&r.netns, d)));
        lab.add_route(&r.netns, dst, r.via, r.dev.as_deref()).map_err(|e| {
            crate::lab::item::locate(
                e,
                lab,
                sc,
                crate::lab::item::Item { item: format!("route[{i}]"), netns: &r.netns, hint },
            )
        })?;
    }
    clock.lap("routes");
    steps.run_phase(lab, sc, Phase::BeforeRules, bound)?;
    bound.at("applying the rules")?;
    if !sc.step.is_empty() {
        clock.lap("steps before rules");
    }
    for n in &sc.netns {
        let ns = lab.netns(&n.name)?;
        sysctl::apply(ns, &n.name, &n.sysctls, &sc.source)?;
        if n.trace && sc.has_bridge(&n.name) {
            observe::prepare_bridge(ns, trace)?;
        }
        if let Some(rules) = &n.ebtables {
            located::apply(ns, &sc.source, &n.name, Kind::Ebtables, rules)?;
        }
        for (family, rules) in n.iptables_rulesets() {
            located::apply(ns, &sc.source, &n.name, Kind::Iptables(backend, family), rules)?;
            if n.trace {
                observe::prepare_iptables(ns, rules, backend, family, trace)?;
            }
        }
        if let Some(rules) = &n.nft {
            located::apply(ns, &sc.source, &n.name, Kind::Nft, rules)?;
            if n.trace {
                observe::prepare_nft(ns, trace)?;
            }
        }
    }
    clock.lap("rules");
    Ok(tunnels)
}
