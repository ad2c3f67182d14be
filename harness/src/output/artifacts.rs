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
    let dir = opts.artifacts_root.join(folder_name(&sc.name, backend, lab.run_id()));
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let put = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(file_name(name));
        fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
    };
    for (name, linktype, records) in pcaps {
        write_pcap(&dir.join(file_name(&format!("{name}.pcap"))), *linktype, records)
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

/// The longest stem netpath gives a file or folder it names after the scenario's words.
const MAX_STEM_BYTES: usize = 80;

/// `name` as one file name: letters, digits, `.`, `-` and `_` kept, anything else (a `/`, a NUL,
/// a space, a non-ASCII letter) as `_`, at most [`MAX_STEM_BYTES`], never `.`, `..` or empty,
/// never starting with a `.`. A scenario name (`../../x`, `/etc`) cannot lead out of the
/// artifacts folder through it.
pub fn file_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(MAX_STEM_BYTES)
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The artifact folder of one run, under `$NETPATH_ARTIFACTS`: `SCENARIO-BACKEND-RUNID`, the
/// scenario's name made a file name ([`file_name`]).
pub fn folder_name(scenario: &str, backend: Backend, run_id: &str) -> String {
    format!("{}-{}-{}", file_name(scenario), backend.name(), file_name(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scenario_name_leads_out_of_the_artifacts_folder() {
        let root = std::path::Path::new("/tmp/netpath-artifacts");
        let long = "x".repeat(5000);
        for name in ["../../../../../tmp/x/y", "/etc/cron.d/x", "..", ".", "", "a\0b", "a/../../b", "\n", &long] {
            let folder = folder_name(name, Backend::Legacy, "1x2");
            let dir = root.join(&folder);
            assert_eq!(dir.parent(), Some(root), "{name:?} -> {folder}");
            assert_eq!(dir.components().count(), root.components().count() + 1, "{name:?} -> {folder}");
            assert!(!folder.starts_with('.') && !folder.contains(['/', '\0']), "{name:?} -> {folder}");
            assert!(folder.len() <= MAX_STEM_BYTES + "-legacy-1x2".len(), "{name:?} -> {folder}");
        }
        assert_eq!(folder_name("docker-masquerade", Backend::Nft, "1x2"), "docker-masquerade-nft-1x2");
        assert_eq!(folder_name("../../tmp/x", Backend::Legacy, "7"), "_._.._tmp_x-legacy-7");
        assert_eq!(file_name("host_eth0.pcap"), "host_eth0.pcap");
    }
}
