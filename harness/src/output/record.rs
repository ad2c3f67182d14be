//! `netpath record`: write what a run observed as the scenario's expectations, the snapshot
//! workflow for datapaths (write topology + rules + probes, record, review the diff, commit).

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{Outcome, ProbeOutcome};
use crate::evidence::Exchange;
use crate::firewall::Backend;
use crate::observe::trace::Hook;
use crate::scenario::{AddrExpect, CapturePoint, Direction, Packets, PathExpect, PortExpect, ProbeSpec, Scenario};
use crate::verdict::expect::{oriented, reference_ports};

/// What a recording holds: the scenario with the expectations the run showed, and what the
/// recorder has to say about it (a probe that is not deterministic, a split too small to
/// require every endpoint).
#[derive(Debug, Clone)]
pub struct Recording {
    pub scenario: Scenario,
    pub warnings: Vec<String>,
}

/// The chance, per probe, that a correct datapath fails the answered_by floor a recording
/// writes for its load split, when the split is uniform over the endpoints that answered.
pub const FLOOR_FALSE_FAILURE: f64 = 1e-6;

/// `scenario` with every probe's expectations replaced by what `outcomes` (one per backend)
/// observed. Invariants, not samples: where every packet of a probe took the same path in a
/// netns (or carried the same addresses at a capture point) the entry names no packet; where
/// the packets split by the endpoint that answered them, one entry per endpoint
/// (`answered_by`); where only the first packet of the flow differs (conntrack knows the rest),
/// `packet = 1` and `packet = "2-"`; any other split is written packet by packet, with a
/// warning. A variant per backend where the backends differ. Ports are literals only where the
/// scenario fixes them, else `kept`/`changed` (see [`PortPolicy`]); a load split becomes an
/// answered_by floor derived from `count` (see [`split_floor`]).
pub fn expectations(scenario: &Scenario, outcomes: &[Outcome]) -> Recording {
    let mut sc = scenario.clone();
    let points = sc.capture_points();
    let mut warnings = vec![];
    for probe in &mut sc.probe {
        let runs: Vec<(Backend, &ProbeOutcome)> = outcomes
            .iter()
            .filter_map(|o| o.probes.iter().find(|p| p.name == probe.name).map(|p| (o.backend, p)))
            .collect();
        if runs.is_empty() {
            continue;
        }
        let exchanges = || runs.iter().flat_map(|(_, p)| &p.exchanges);
        probe.replies = exchanges().all(|e| e.replied);
        probe.answered_by = floors(probe, &runs, &mut warnings);
        let spec = probe.clone();
        let policy = PortPolicy::of(scenario, &spec);
        let warn = |warnings: &mut Vec<String>, backend: Backend, what: String, groups: Vec<String>| {
            warnings.push(format!(
                "probe `{}` [{}] is not deterministic: its packets took different {what}: {}; recorded packet by packet",
                spec.name,
                backend.name(),
                groups.join("; ")
            ));
        };

        let sites: BTreeSet<(Direction, &String)> = exchanges()
            .flat_map(|x| [Direction::Request, Direction::Reply].map(|d| (d, x.of(d).path.keys())))
            .flat_map(|(d, keys)| keys.map(move |k| (d, k)))
            .collect();
        probe.path.clear();
        for (d, netns) in sites {
            let per_backend = runs
                .iter()
                .map(|(b, p)| {
                    let values = observe(&p.exchanges, |x| hooks_of(x, d, netns));
                    let classes = classify(&values).unwrap_or_else(|groups| {
                        let what = format!("paths in netns {netns} ({d})");
                        warn(&mut warnings, *b, what, groups.iter().map(|g| hook_difference(g, &groups[0])).collect());
                        per_packet(&values)
                    });
                    (*b, classes)
                })
                .collect();
            for (sel, backend, hooks) in merge(per_backend) {
                probe.path.push(PathExpect {
                    packet: sel.packet,
                    answered_by: sel.answered_by,
                    backend,
                    exact: Some(hooks),
                    ..PathExpect::new(d, netns)
                });
            }
        }

        // A reply no packet had is not `absent` at every capture point: it is not there to see.
        let any_reply = exchanges().any(|x| x.replied || !x.reply.seen.is_empty());
        probe.addr.clear();
        for d in [Direction::Request, Direction::Reply].into_iter().filter(|d| *d == Direction::Request || any_reply) {
            for point in &points {
                let per_backend = runs
                    .iter()
                    .map(|(b, p)| {
                        let values = observe(&p.exchanges, |x| policy.observed(&spec, x, d, point));
                        let classes = classify(&values).unwrap_or_else(|groups| {
                            let what = format!("addresses at {point} ({d})");
                            warn(&mut warnings, *b, what, groups.iter().map(addr_difference).collect());
                            per_packet(&values)
                        });
                        (*b, classes)
                    })
                    .collect();
                for (sel, backend, addr) in merge(per_backend) {
                    probe.addr.push(AddrExpect { packet: sel.packet, answered_by: sel.answered_by, backend, ..addr });
                }
            }
        }
    }
    Recording { scenario: sc, warnings }
}

fn hooks_of(x: &Exchange, d: Direction, netns: &str) -> Vec<Hook> {
    x.of(d).path.get(netns).map(|evs| evs.iter().map(|e| e.hook.clone()).collect()).unwrap_or_default()
}

/// Which packets a recorded entry is about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    packet: Option<Packets>,
    answered_by: Option<String>,
}

/// One packet's observation: its number, the endpoint that answered it, what was seen.
struct Observation<V> {
    packet: u16,
    answer: Option<String>,
    value: V,
}

fn observe<V>(exchanges: &[Exchange], f: impl Fn(&Exchange) -> V) -> Vec<Observation<V>> {
    exchanges.iter().map(|x| Observation { packet: x.packet, answer: x.answer.clone(), value: f(x) }).collect()
}

/// Packets that saw the same thing: their numbers and what they saw.
type Group<V> = (Vec<u16>, V);

/// The fewest entries that say what each packet saw: one for all of them; one per answering
/// endpoint; one for the first packet and one for the rest. `Err` with the groups of packets
/// that saw the same when none of these explains the split.
fn classify<V: PartialEq + Clone>(values: &[Observation<V>]) -> Result<Vec<(Selector, V)>, Vec<Group<V>>> {
    let all = |vs: &[&V]| vs.windows(2).all(|w| w[0] == w[1]);
    let sel = |packet, answered_by| Selector { packet, answered_by };
    let Some(first) = values.first() else { return Ok(vec![]) };
    if all(&values.iter().map(|o| &o.value).collect::<Vec<_>>()) {
        return Ok(vec![(sel(None, None), first.value.clone())]);
    }
    // First of its kind, then the rest alike: a flow's first packet creates its conntrack
    // entry, a first connection to an endpoint may wait for its neighbour entry.
    let first_then_rest = |vs: &[&V]| vs.len() >= 2 && all(&vs[1..]);
    let mut by_answer: BTreeMap<&str, Vec<&V>> = BTreeMap::new();
    for o in values {
        if let Some(a) = &o.answer {
            by_answer.entry(a).or_default().push(&o.value);
        }
    }
    let answered = values.iter().all(|o| o.answer.is_some());
    if answered && by_answer.len() > 1 && by_answer.values().all(|vs| all(vs) || first_then_rest(vs)) {
        let mut out = vec![];
        for (a, vs) in by_answer {
            let by = Some(a.to_string());
            if all(&vs) {
                out.push((sel(None, by), vs[0].clone()));
            } else {
                // Counted among this endpoint's packets, whose number varies from run to run.
                out.push((sel(Some(Packets::One(1)), by.clone()), vs[0].clone()));
                out.push((sel(Some(Packets::From(2)), by), vs[1].clone()));
            }
        }
        return Ok(out);
    }
    let rest: Vec<&V> = values.iter().map(|o| &o.value).collect();
    if first_then_rest(&rest) {
        let later = if values.len() == 2 { Packets::One(2) } else { Packets::From(2) };
        return Ok(vec![
            (sel(Some(Packets::One(1)), None), first.value.clone()),
            (sel(Some(later), None), values[1].value.clone()),
        ]);
    }
    let mut groups: Vec<Group<V>> = vec![];
    for o in values {
        match groups.iter_mut().find(|(_, v)| *v == o.value) {
            Some((packets, _)) => packets.push(o.packet),
            None => groups.push((vec![o.packet], o.value.clone())),
        }
    }
    Err(groups)
}

fn per_packet<V: Clone>(values: &[Observation<V>]) -> Vec<(Selector, V)> {
    values
        .iter()
        .map(|o| (Selector { packet: Some(Packets::One(o.packet)), answered_by: None }, o.value.clone()))
        .collect()
}

/// `packets 1, 3` of a group.
fn packets_text(packets: &[u16]) -> String {
    let list = packets.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    if packets.len() == 1 { format!("packet {list}") } else { format!("packets {list}") }
}

/// How a group's hooks differ from the first group's: where they part, what each has there.
fn hook_difference(group: &Group<Vec<Hook>>, first: &Group<Vec<Hook>>) -> String {
    let (packets, hooks) = group;
    let at = hooks.iter().zip(&first.1).position(|(a, b)| a != b).unwrap_or(hooks.len().min(first.1.len()));
    let hook = hooks.get(at).map(|h| h.to_string()).unwrap_or_else(|| "(no more hooks)".into());
    format!("{} at hook {}: {hook}", packets_text(packets), at + 1)
}

fn addr_difference(group: &Group<AddrExpect>) -> String {
    let (packets, a) = group;
    let text = if a.absent {
        "not seen".to_string()
    } else {
        let show = |v: Option<std::net::IpAddr>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let port = |p: Option<PortExpect>| p.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}{} > {}{}", show(a.src), port(a.sport), show(a.dst), port(a.dport))
    };
    format!("{} {text}", packets_text(packets))
}

/// One entry per selector where the backends agree, a variant per backend where they differ.
fn merge<V: PartialEq + Clone>(per_backend: Vec<(Backend, Vec<(Selector, V)>)>) -> Vec<(Selector, Option<Backend>, V)> {
    let mut selectors: Vec<&Selector> = vec![];
    for (_, classes) in &per_backend {
        for (s, _) in classes {
            if !selectors.contains(&s) {
                selectors.push(s);
            }
        }
    }
    let mut out = vec![];
    for sel in selectors {
        let have: Vec<(Backend, &V)> = per_backend
            .iter()
            .filter_map(|(b, classes)| classes.iter().find(|(s, _)| s == sel).map(|(_, v)| (*b, v)))
            .collect();
        if have.len() == per_backend.len() && have.windows(2).all(|w| w[0].1 == w[1].1) {
            out.push((sel.clone(), None, have[0].1.clone()));
        } else {
            out.extend(have.into_iter().map(|(b, v)| (sel.clone(), Some(b), v.clone())));
        }
    }
    out
}

/// Which ports a recording may write as numbers: those the scenario fixes. Every other port
/// the kernel chose (a client's ephemeral port, one MASQUERADE picked) and is recorded by its
/// relation to the probe's own connection, `kept` or `changed`; `changed` is left out where the
/// rules let the kernel pick a port at random (`--random`, `--random-fully`, a port range), since
/// it may pick the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPolicy {
    /// Probe ports, frame source ports, server ports, WireGuard ports, NAT target ports.
    pub fixed: BTreeSet<u16>,
    /// Whether some NAT rule picks ports at random.
    pub random: bool,
    /// The port ranges NAT rules translate into (`--to-ports 20000-20010`): a port already in
    /// one may be kept.
    pub ranges: Vec<(u16, u16)>,
    /// Whether the probe's own source port is fixed (a crafted frame's `sport`).
    pub client_fixed: bool,
}

impl PortPolicy {
    pub fn of(sc: &Scenario, probe: &ProbeSpec) -> PortPolicy {
        let mut fixed: BTreeSet<u16> = sc.probe.iter().filter_map(|p| p.port).collect();
        fixed.extend(sc.probe.iter().filter_map(|p| p.frame.as_ref()?.sport));
        fixed.extend(sc.server.iter().map(|s| s.port));
        fixed.extend(sc.wireguard.iter().filter_map(|w| w.listen_port));
        fixed.extend(sc.wireguard.iter().flat_map(|w| &w.peers).filter_map(|p| p.endpoint.map(|e| e.port())));
        let (mut random, mut ranges) = (false, vec![]);
        for rules in sc.netns.iter().flat_map(|n| [&n.iptables, &n.nft]).flatten() {
            let nat = nat_ports(rules);
            fixed.extend(nat.ports);
            ranges.extend(nat.ranges);
            random |= nat.random;
        }
        let client_fixed = probe.frame.as_ref().is_some_and(|f| f.sport.is_some());
        PortPolicy { fixed, random, ranges, client_fixed }
    }

    /// What a recording writes for the packet of `x` in direction `d` at `at`.
    fn observed(&self, probe: &ProbeSpec, x: &Exchange, d: Direction, at: &CapturePoint) -> AddrExpect {
        let mut e = AddrExpect::new(d, at.clone());
        let Some(p) = x.of(d).seen.get(at) else {
            e.absent = true;
            return e;
        };
        (e.src, e.dst) = (p.src, p.dst);
        let (sport, dport) = p.ports();
        let (rs, rd) = oriented(reference_ports(probe, x), d);
        // Where the probe's sender put the request on the wire its source port is the
        // reference itself: `kept` there could not fail.
        let own = d == Direction::Request && at.netns == probe.from;
        // The client's side of the connection where source NAT rewrote its address: the port is
        // the NAT's choice, which keeps the port unless that tuple is taken (seen: one hairpin
        // connection in 40 of k8s-service), so neither `kept` nor `changed` would hold for sure.
        let client = x.request.seen.iter().find(|(pt, _)| pt.netns == probe.from).and_then(|(_, p)| p.src);
        let client_here = if d == Direction::Request { p.src } else { p.dst };
        let snatted = client.is_some() && client_here != client;
        e.sport = self.port(sport, rs, d == Direction::Request, own, snatted && d == Direction::Request);
        e.dport = self.port(dport, rd, d == Direction::Reply, false, snatted && d == Direction::Reply);
        e
    }

    /// `got` as a number when the scenario fixes it (and it is not the client's own ephemeral
    /// port that happens to equal one), else as its relation to `reference`.
    /// `snatted`: this is the client's port where source NAT rewrote the client's address.
    fn port(
        &self,
        got: Option<u16>,
        reference: Option<u16>,
        client_side: bool,
        own: bool,
        snatted: bool,
    ) -> Option<PortExpect> {
        let got = got?;
        let ephemeral = client_side && !self.client_fixed;
        if self.fixed.contains(&got) && !(ephemeral && reference == Some(got)) {
            return Some(PortExpect::Is(got));
        }
        let in_range = |p: u16| self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p));
        match reference? {
            _ if snatted && !(in_range(got) && reference.is_some_and(|r| !in_range(r))) => None,
            r if r == got => (!own).then_some(PortExpect::Kept),
            // Picked at random, or from a range the original port is in: it might have stayed.
            r => (!self.random && !in_range(r)).then_some(PortExpect::Changed),
        }
    }
}

/// What the NAT rules of a ruleset say about ports.
#[derive(Debug, Default, PartialEq, Eq)]
struct NatPorts {
    /// The ports they translate to (`--to-destination 10.0.0.2:80`, `--to-ports 8080`, nft
    /// `dnat to 10.0.0.2:80`).
    ports: Vec<u16>,
    /// The ranges they pick from (`--to-ports 20000-20010`, `--to-source 10.0.0.1:1024-2047`).
    ranges: Vec<(u16, u16)>,
    /// Whether some rule picks at random (`--random`, `--random-fully`, nft `random`, `fully-random`).
    random: bool,
}

fn nat_ports(rules: &str) -> NatPorts {
    let mut nat = NatPorts::default();
    let words: Vec<&str> = rules.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        nat.random |= w.contains("random");
        let Some(prev) = i.checked_sub(1).map(|j| words[j]) else { continue };
        let port = match prev {
            "--to-ports" => Some(*w),
            "--to-destination" | "--to-source" | "--to" | "to" => match w.rsplit_once("]:") {
                Some((_, p)) => Some(p),
                None => w.split_once(':').filter(|(_, p)| !p.contains(':')).map(|(_, p)| p),
            },
            _ => None,
        };
        let Some(port) = port.map(|p| p.trim_end_matches([',', ';'])) else { continue };
        match port.split_once('-').map(|(lo, hi)| (lo.parse::<u16>(), hi.parse::<u16>())) {
            Some((Ok(lo), Ok(hi))) => nat.ranges.push((lo, hi)),
            Some(_) => nat.random = true,
            None => nat.ports.extend(port.parse::<u16>()),
        }
    }
    nat
}

/// The largest floor `f` such that a probe of `count` packets split uniformly over `endpoints`
/// gives some endpoint fewer than `f` answers with probability below [`FLOOR_FALSE_FAILURE`]:
/// `endpoints × P(X < f)` for X ~ Binomial(count, 1/endpoints) (a union bound over endpoints).
/// 0 when even one answer each cannot be required that surely.
pub fn split_floor(count: u16, endpoints: usize) -> u16 {
    if endpoints <= 1 {
        return count;
    }
    let (n, p) = (f64::from(count), 1.0 / endpoints as f64);
    let k = endpoints as f64;
    // pmf(i+1) = pmf(i) · (n - i)/(i + 1) · p/(1 - p), from pmf(0) = (1 - p)^n.
    let mut pmf = (1.0 - p).powf(n);
    let mut below = 0.0;
    for f in 0..count {
        // `below` is P(X < f); the floor f + 1 needs P(X < f + 1) = below + pmf(f).
        if k * (below + pmf) >= FLOOR_FALSE_FAILURE {
            return f;
        }
        below += pmf;
        pmf *= (n - f64::from(f)) / f64::from(f + 1) * p / (1.0 - p);
    }
    count
}

/// The recorded `answered_by` floors of a probe: every packet for its one endpoint; for a load
/// split over several, [`split_floor`] of its count. A floor the file already has is kept when
/// it is within that bound (1 up to the derived floor): it is the author's choice, and keeps a
/// re-recording from rewriting it.
fn floors(probe: &ProbeSpec, runs: &[(Backend, &ProbeOutcome)], warnings: &mut Vec<String>) -> BTreeMap<String, u16> {
    let answers = || runs.iter().flat_map(|(_, p)| &p.exchanges).map(|x| x.answer.as_deref());
    let endpoints: BTreeSet<&str> = answers().flatten().collect();
    if endpoints.is_empty() {
        return BTreeMap::new();
    }
    if endpoints.len() == 1 && answers().any(|a| a.is_none()) {
        warnings.push(format!(
            "probe `{}`: only some of its packets were answered (by {}): no answered_by floor recorded",
            probe.name,
            endpoints.iter().next().copied().unwrap_or_default()
        ));
        return BTreeMap::new();
    }
    let floor = split_floor(probe.count, endpoints.len());
    if floor == 0 {
        warnings.push(format!(
            "probe `{}`: {} packets split over {} endpoints are too few to require an answer from each with a false-failure rate below {FLOOR_FALSE_FAILURE:e}: no answered_by floor recorded (raise count)",
            probe.name,
            probe.count,
            endpoints.len()
        ));
        return BTreeMap::new();
    }
    endpoints
        .into_iter()
        .map(|e| {
            let kept = probe.answered_by.get(e).copied().filter(|old| (1..=floor).contains(old));
            (e.to_string(), kept.unwrap_or(floor))
        })
        .collect()
}

/// The scenario file `original` with each probe's recorded expectations (`replies`, `path`,
/// `addr`) put in place of its old ones, and everything else (comments, the order of keys, the
/// layout of rulesets) left as the user wrote it: recording in place must not cost the file its
/// explanations.
pub fn rewrite(original: &str, recorded: &Scenario) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = original.parse().map_err(|e| format!("parse the scenario: {e}"))?;
    let fresh: toml_edit::DocumentMut =
        recorded.to_toml().parse().map_err(|e| format!("parse the recorded expectations: {e}"))?;
    let fresh_probes = fresh.get("probe").and_then(toml_edit::Item::as_array_of_tables);
    let Some(probes) = doc.get_mut("probe").and_then(toml_edit::Item::as_array_of_tables_mut) else {
        return Err("the scenario has no [[probe]] tables to record".into());
    };
    for probe in probes.iter_mut() {
        let name = probe.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let Some(new) =
            fresh_probes.and_then(|ps| ps.iter().find(|p| p.get("name").and_then(|v| v.as_str()) == Some(&name)))
        else {
            return Err(format!("probe `{name}` is missing from the recording"));
        };
        // `replies = true` is the default, which the file left unsaid; so is an empty answered_by.
        set_value(probe, "replies", new.get("replies"), |v| v.as_bool() == Some(true));
        set_value(probe, "answered_by", new.get("answered_by"), |_| false);
        for key in ["path", "addr"] {
            let old = probe.get(key).and_then(toml_edit::Item::as_array_of_tables).cloned();
            let Some(mut entries) = new.get(key).and_then(toml_edit::Item::as_array_of_tables).cloned() else {
                probe.remove(key);
                continue;
            };
            {
                let none = toml_edit::ArrayOfTables::new();
                let old = old.as_ref().unwrap_or(&none);
                match key {
                    "path" => keep_what_holds::<PathExpect>(old, &mut entries, |p| {
                        let place = format!("{} {}", p.direction, p.netns);
                        (place, format!("{:?} {:?}", p.packet, p.answered_by), p.backend.map(Backend::name))
                    }),
                    _ => keep_what_holds::<AddrExpect>(old, &mut entries, |a| {
                        let place = format!("{} {}", a.direction, a.at);
                        (place, format!("{:?} {:?}", a.packet, a.answered_by), a.backend.map(Backend::name))
                    }),
                }
            }
            // Tables are written in the order of their positions: the new entries take the place
            // of the old ones (a table without a position follows the one before it).
            let place = old.as_ref().and_then(|o| o.iter().find_map(toml_edit::Table::position));
            for t in entries.iter_mut() {
                place_table(t, place);
            }
            match probe.get_mut(key) {
                Some(slot) => *slot = toml_edit::Item::ArrayOfTables(entries),
                None => drop(probe.insert(key, toml_edit::Item::ArrayOfTables(entries))),
            }
        }
    }
    Ok(doc.to_string())
}

/// Put the recorded value of `key` in the probe's table: a value the file already holds (in
/// whatever layout) stays as written, a changed one is assigned in place so the key keeps the
/// comment above it, a default the file left unsaid stays unsaid.
fn set_value(
    probe: &mut toml_edit::Table,
    key: &str,
    new: Option<&toml_edit::Item>,
    is_default: impl Fn(&toml_edit::Value) -> bool,
) {
    // The serializer writes a map as a table of its own; a probe's keys are inline values.
    let new = new.and_then(|i| i.clone().into_value().ok()).map(|mut v| {
        v.decor_mut().clear();
        if let Some(t) = v.as_inline_table_mut() {
            t.fmt();
        }
        v
    });
    let same = |a: &toml_edit::Value, b: &toml_edit::Value| {
        let typed = |v: &toml_edit::Value| toml::from_str::<toml::Table>(&format!("x = {v}")).ok();
        typed(a) == typed(b)
    };
    match (probe.get_mut(key), new) {
        (Some(old), Some(v)) if old.as_value().is_some_and(|o| same(o, &v)) => {}
        (Some(old), Some(v)) => {
            let decor = old.as_value().map(|o| o.decor().clone());
            *old = toml_edit::Item::Value(v);
            if let (Some(d), Some(value)) = (decor, old.as_value_mut()) {
                *value.decor_mut() = d;
            }
        }
        (None, Some(v)) if is_default(&v) => {}
        (None, Some(v)) => drop(probe.insert(key, toml_edit::Item::Value(v))),
        (Some(_), None) => drop(probe.remove(key)),
        (None, None) => {}
    }
}

/// Keep each old expectation the recording confirms as it was written (layout, defaults left
/// unsaid, comment), so an unchanged file records to no diff; give the others the comment of
/// their old counterpart: the one for the same packets (`packet`, `answered_by`), direction and
/// place (`netns` of a path, `at` of an address) under the same backend, else the first not yet
/// taken for those packets, direction and place (a path that now splits into backend variants
/// keeps its explanation on the first), else for that direction and place (an entry about
/// packet 1 that now holds for every packet). Comments of expectations that are gone go with them.
fn keep_what_holds<T: serde::de::DeserializeOwned + PartialEq>(
    old: &toml_edit::ArrayOfTables,
    new: &mut toml_edit::ArrayOfTables,
    key: impl Fn(&T) -> (String, String, Option<&'static str>),
) {
    let old: Vec<(&toml_edit::Table, Option<T>)> = old.iter().map(|t| (t, typed(t))).collect();
    let mut taken = vec![false; old.len()];
    // Where each entry goes: after the old one it took the place of, else after the entry before
    // it, so the file keeps its order and a recording adds rather than reshuffles.
    let mut order: Vec<(isize, u8, usize)> = vec![];
    let mut last = -1;
    let mut entries: Vec<toml_edit::Table> = new.iter().cloned().collect();
    for (seq, entry) in entries.iter_mut().enumerate() {
        order.push((last, 1, seq));
        indent_lists(entry);
        let Some(fresh) = typed::<T>(entry) else { continue };
        let k = key(&fresh);
        // The same place, packets and backend; else the same place and packets; else the place.
        let matches = |i: usize, tier: u8| {
            !taken[i]
                && old[i]
                    .1
                    .as_ref()
                    .map(&key)
                    .is_some_and(|o| o.0 == k.0 && (tier < 2 || o.1 == k.1) && (tier < 3 || o.2 == k.2))
        };
        let Some(i) = [3, 2, 1].into_iter().find_map(|tier| (0..old.len()).find(|&i| matches(i, tier))) else {
            continue;
        };
        taken[i] = true;
        last = i as isize;
        order[seq] = (last, 0, seq);
        if old[i].1.as_ref() == Some(&fresh) {
            *entry = old[i].0.clone();
        } else {
            *entry.decor_mut() = old[i].0.decor().clone();
        }
    }
    let mut placed: Vec<_> = order.into_iter().zip(entries).collect();
    placed.sort_by_key(|(o, _)| *o);
    new.clear();
    placed.into_iter().for_each(|(_, t)| new.push(t));
}

/// Lists of more than two values one per line, indented by two spaces, as the bundled scenarios
/// write hook lists (the serializer indents by four).
fn indent_lists(entry: &mut toml_edit::Table) {
    for (_, item) in entry.iter_mut() {
        if let Some(list) = item.as_array_mut()
            && list.len() > 2
        {
            list.iter_mut().for_each(|v| v.decor_mut().set_prefix("\n  "));
            list.iter_mut().for_each(|v| v.decor_mut().set_suffix(""));
            list.set_trailing_comma(true);
            list.set_trailing("\n");
        }
    }
}

/// One expectation table as the type it stands for, defaults filled in.
fn typed<T: serde::de::DeserializeOwned>(t: &toml_edit::Table) -> Option<T> {
    let mut doc = toml_edit::DocumentMut::new();
    for (k, v) in t.iter() {
        doc.insert(k, v.clone());
    }
    toml::from_str(&doc.to_string()).ok()
}

/// Put `table` at `position`, and the tables inside it right after it: tables copied from
/// another document keep that document's positions, which would scatter them among this one's
/// (a table without a position is written right after the one before it).
fn place_table(table: &mut toml_edit::Table, position: Option<isize>) {
    table.set_position(position);
    for (_, item) in table.iter_mut() {
        match item {
            toml_edit::Item::Table(t) => place_table(t, None),
            toml_edit::Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| place_table(t, None)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const FILE: &str = include_str!("../../../cases/scenarios/docker-masquerade.toml");

    fn parse(text: &str) -> Scenario {
        Scenario::from_toml(text, Path::new("docker-masquerade.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// What a recording would change: a shorter path, another address, an address gone, no replies.
    fn changed(sc: &Scenario) -> Scenario {
        let mut rec = sc.clone();
        let p = &mut rec.probe[0];
        p.path[0].exact.as_mut().unwrap().pop();
        p.addr[1].dst = Some("10.171.77.99".parse().unwrap());
        p.addr.pop();
        p.replies = false;
        rec
    }

    #[test]
    fn rewriting_replaces_the_expectations_and_keeps_every_comment_and_ruleset() {
        let sc = parse(FILE);
        let rec = changed(&sc);
        let out = rewrite(FILE, &rec).unwrap();
        assert_eq!(parse(&out).probe, rec.probe);
        for line in FILE.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(out.contains(line), "lost the comment {line:?}\n{out}");
        }
        let rules = sc.netns[0].iptables.as_deref().unwrap();
        assert_eq!(parse(&out).netns[0].iptables.as_deref(), Some(rules));
        // Everything before the first probe is the user's text, untouched.
        let head = |t: &str| t[..t.find("[[probe]]").unwrap()].to_string();
        assert_eq!(head(&out), head(FILE));
    }

    #[test]
    fn the_comment_of_an_expectation_that_is_gone_goes_with_it() {
        let sc = parse(FILE);
        let mut rec = sc.clone();
        rec.probe[0].path.truncate(1);
        let out = rewrite(FILE, &rec).unwrap();
        assert!(out.contains("# The request through the host"), "{out}");
        assert!(!out.contains("# The reply: conntrack de-NATs it"), "{out}");
        assert_eq!(parse(&out).probe, rec.probe);
    }

    #[test]
    fn recording_the_same_expectations_twice_changes_nothing() {
        let rec = changed(&parse(FILE));
        let once = rewrite(FILE, &rec).unwrap();
        assert_eq!(rewrite(&once, &rec).unwrap(), once);
        // And recording what the file already says leaves it as it was, byte for byte.
        assert_eq!(rewrite(FILE, &parse(FILE)).unwrap(), FILE, "recording what the file says must not change it");
    }

    #[test]
    fn every_bundled_scenario_records_onto_itself_unchanged() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let sc = Scenario::from_toml(&text, &path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rewrite(&text, &sc).unwrap(), text, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 10, "only {seen} scenarios in {}", dir.display());
    }

    #[test]
    fn a_probe_missing_from_the_recording_is_an_error_not_a_silent_loss() {
        let mut rec = parse(FILE);
        rec.probe[0].name = "renamed".into();
        let e = rewrite(FILE, &rec).unwrap_err();
        assert!(e.contains(&format!("probe `{}`", parse(FILE).probe[0].name)), "{e}");
        assert!(rewrite("name = \"x\"", &rec).unwrap_err().contains("no [[probe]]"));
        assert!(rewrite("name = ", &rec).unwrap_err().starts_with("parse the scenario"));
    }

    fn obs(values: &[(u16, Option<&str>, u8)]) -> Vec<Observation<u8>> {
        values.iter().map(|&(packet, a, value)| Observation { packet, answer: a.map(Into::into), value }).collect()
    }

    fn sel(packet: Option<Packets>, answered_by: Option<&str>) -> Selector {
        Selector { packet, answered_by: answered_by.map(Into::into) }
    }

    #[test]
    fn splits_are_explained_by_the_endpoint_or_by_the_first_packet_or_not_at_all() {
        // The same for every packet: one entry, whatever the count.
        assert_eq!(classify(&obs(&[(1, None, 7), (2, None, 7), (3, None, 7)])), Ok(vec![(sel(None, None), 7)]));
        // By the endpoint that answered, the first connection to one of them apart.
        let split = obs(&[
            (1, Some("ep2"), 2),
            (2, Some("ep1"), 9),
            (3, Some("ep1"), 1),
            (4, Some("ep2"), 2),
            (5, Some("ep1"), 1),
        ]);
        assert_eq!(
            classify(&split),
            Ok(vec![
                (sel(Some(Packets::One(1)), Some("ep1")), 9),
                (sel(Some(Packets::From(2)), Some("ep1")), 1),
                (sel(None, Some("ep2")), 2),
            ])
        );
        // The first packet of a flow, then the rest alike.
        let flow = obs(&[(1, None, 1), (2, None, 2), (3, None, 2)]);
        assert_eq!(
            classify(&flow),
            Ok(vec![(sel(Some(Packets::One(1)), None), 1), (sel(Some(Packets::From(2)), None), 2)])
        );
        let two = obs(&[(1, None, 1), (2, None, 2)]);
        assert_eq!(
            classify(&two),
            Ok(vec![(sel(Some(Packets::One(1)), None), 1), (sel(Some(Packets::One(2)), None), 2)])
        );
        // Anything else: the groups of packets alike, for the warning.
        let noise = obs(&[(1, None, 1), (2, None, 2), (3, None, 1), (4, None, 2)]);
        assert_eq!(classify(&noise), Err(vec![(vec![1, 3], 1), (vec![2, 4], 2)]));
        assert_eq!(per_packet(&noise).len(), 4);
        assert_eq!(
            addr_difference(&(
                vec![2, 4],
                AddrExpect { absent: true, ..AddrExpect::new(Direction::Request, "a/b".parse().unwrap()) }
            )),
            "packets 2, 4 not seen"
        );
    }

    #[test]
    fn backends_that_agree_share_an_entry_and_others_get_variants() {
        let all = sel(None, None);
        let merged = merge(vec![(Backend::Legacy, vec![(all.clone(), 1)]), (Backend::Nft, vec![(all.clone(), 1)])]);
        assert_eq!(merged, vec![(all.clone(), None, 1)]);
        let merged = merge(vec![(Backend::Legacy, vec![(all.clone(), 1)]), (Backend::Nft, vec![(all.clone(), 2)])]);
        assert_eq!(merged, vec![(all.clone(), Some(Backend::Legacy), 1), (all, Some(Backend::Nft), 2)]);
    }

    #[test]
    fn a_split_floor_is_derived_from_the_count_with_a_bounded_false_failure_rate() {
        // P(X < f) for X ~ Binomial(n, 1/2), summed exactly.
        let below = |n: u32, f: u32| -> f64 {
            let mut c = 1.0f64;
            let mut sum = 0.0;
            for i in 0..f {
                sum += c;
                c = c * f64::from(n - i) / f64::from(i + 1);
            }
            sum / 2f64.powi(n as i32)
        };
        for n in [20u16, 40, 100, 200, 1000] {
            let f = split_floor(n, 2);
            assert!(2.0 * below(n.into(), f.into()) < FLOOR_FALSE_FAILURE, "count {n}: floor {f}");
            assert!(
                2.0 * below(n.into(), u32::from(f) + 1) >= FLOOR_FALSE_FAILURE,
                "count {n}: floor {f} is not the largest"
            );
        }
        assert_eq!(split_floor(20, 2), 0, "2 × 2^-20 is above 1e-6: no floor can be that sure");
        assert_eq!((split_floor(40, 2), split_floor(200, 2)), (5, 66));
        assert_eq!(split_floor(200, 3), 35);
        assert_eq!(split_floor(7, 1), 7, "one endpoint answers every packet");
    }

    #[test]
    fn nat_rules_fix_ports_or_let_the_kernel_pick() {
        let nat = nat_ports(
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.0.2:80\n\
             -A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE\n\
             -A OUTPUT -p tcp -j REDIRECT --to-ports 3128\n\
             -A POSTROUTING -p tcp -j SNAT --to-source 10.0.0.1:20000-20010\n",
        );
        assert_eq!(nat, NatPorts { ports: vec![80, 3128], ranges: vec![(20000, 20010)], random: false });
        assert!(nat_ports("-A POSTROUTING -j MASQUERADE --random-fully").random);
        let nft = nat_ports(
            "chain pre { type nat hook prerouting priority dstnat; tcp dport 8080 dnat ip to 192.168.0.2:80; }",
        );
        assert_eq!(nft.ports, [80]);
        assert!(nat_ports("ip saddr 10.0.0.0/8 masquerade fully-random").random);
        assert_eq!(nat_ports("-j DNAT --to-destination 10.0.0.2").ports, Vec::<u16>::new());
    }

    #[test]
    fn ports_are_numbers_where_the_scenario_fixes_them_and_relations_elsewhere() {
        let policy =
            PortPolicy { fixed: [80, 8080].into(), random: false, ranges: vec![(20000, 20010)], client_fixed: false };
        // The service side: the port the probe sent to, or the one DNAT fixed.
        assert_eq!(policy.port(Some(80), Some(8080), false, false, false), Some(PortExpect::Is(80)));
        // The client side: its own port, kept or translated; never the number.
        assert_eq!(policy.port(Some(40312), Some(40312), true, false, false), Some(PortExpect::Kept));
        assert_eq!(policy.port(Some(20003), Some(40312), true, false, false), Some(PortExpect::Changed));
        // Where it is the sender's own port, `kept` could not fail: nothing.
        assert_eq!(policy.port(Some(40312), Some(40312), true, true, false), None);
        // An ephemeral port that happens to equal a fixed one is still the client's port.
        assert_eq!(policy.port(Some(8080), Some(8080), true, false, false), Some(PortExpect::Kept));
        // A port that may have stayed by chance is not said to change.
        assert_eq!(policy.port(Some(20001), Some(20005), true, false, false), None);
        let random = PortPolicy { random: true, ..policy.clone() };
        assert_eq!(random.port(Some(1024), Some(40312), true, false, false), None);
        // Where source NAT rewrote the client's address the port is the NAT's to choose: kept
        // as a rule, changed when the tuple is taken; only a forced move into a range is sure.
        assert_eq!(policy.port(Some(40312), Some(40312), true, false, true), None);
        assert_eq!(policy.port(Some(40313), Some(40312), true, false, true), None);
        assert_eq!(policy.port(Some(20003), Some(40312), true, false, true), Some(PortExpect::Changed));
    }
}
