//! The artifact folder of a run: a pcap per interface, the trace, each netns's rules,
//! conntrack entries, addresses and routes, and the report.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use crate::engine::{Outcome, RunOptions};
use crate::error::{Error, Result};
use crate::evidence::TimedEvent;
use crate::firewall::{Backend, Family, ebtables, run_tool};
use crate::lab::Lab;
use crate::observe::capture::{Record, write_pcap};
use crate::scenario::Scenario;

/// Write a run's pcaps, traces and reports into its artifacts folder; returns the folder.
pub fn write(
    lab: &Lab,
    sc: &Scenario,
    backend: Backend,
    outcome: &Outcome,
    events: &BTreeMap<String, Vec<TimedEvent>>,
    pcaps: &[(String, pcap::Linktype, Vec<Record>)],
    opts: &RunOptions,
) -> Result<PathBuf> {
    let dir = opts.artifacts_root.join(format!("{}-{}-{}", sc.name, backend.name(), lab.run_id()));
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let put = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
    };
    for (name, linktype, records) in pcaps {
        write_pcap(&dir.join(format!("{name}.pcap")), *linktype, records)
            .map_err(|message| Error::File { path: dir.join(name), message })?;
    }
    let mut trace = String::new();
    for (netns, evs) in events {
        for te in evs {
            trace.push_str(&format!("{netns}: {}\n", crate::observe::trace::text::render(&te.event)));
        }
    }
    put("trace.txt", &trace)?;
    let all: Vec<&TimedEvent> = events.values().flatten().collect();
    let json = serde_json::to_string_pretty(&all.iter().map(|t| &t.event).collect::<Vec<_>>()).unwrap_or_default();
    put("trace.json", &json)?;
    write_outcome(&dir, outcome)?;
    put("report.txt", &crate::output::report::outcome(outcome, true))?;
    for n in &sc.netns {
        let ns = lab.netns(&n.name)?;
        let dump = |file: &str, r: Result<String>| put(file, &r.unwrap_or_else(|e| format!("unavailable: {e}\n")));
        dump(&format!("{}.iptables-save", n.name), backend.iptables(Family::V4).save(ns))?;
        if n.ip6tables.is_some() {
            dump(&format!("{}.ip6tables-save", n.name), backend.iptables(Family::V6).save(ns))?;
        }
        dump(&format!("{}.ebtables-save", n.name), ebtables::save(ns))?;
        dump(&format!("{}.nft.json", n.name), run_tool(ns, "nft", &["-j", "list", "ruleset"], None))?;
        dump(&format!("{}.conntrack", n.name), run_tool(ns, "conntrack", &["-L"], None))?;
        dump(&format!("{}.addr.json", n.name), run_tool(ns, "ip", &["-j", "addr"], None))?;
        dump(&format!("{}.route.json", n.name), run_tool(ns, "ip", &["-j", "route"], None))?;
    }
    Ok(dir)
}

/// (Re)write `outcome.json` in an artifact folder: once with the run, again with its teardown's time.
pub fn write_outcome(dir: &std::path::Path, outcome: &Outcome) -> Result<()> {
    let p = dir.join("outcome.json");
    fs::write(&p, serde_json::to_string_pretty(outcome).unwrap_or_default())
        .map_err(|e| Error::io(format!("write {}", p.display()), e))
}
