//! The artifact folder of a run: a pcap per interface and one pcapng with them all, the trace
//! tagged with probe packets, each netns's rules (as the tools list them and as JSON),
//! conntrack entries, addresses, IPv4 and IPv6 routes, and the report (text and HTML).

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
    let test = std::thread::current().name().filter(|n| *n != "main").map(str::to_string);
    let when = utc_stamp(std::time::SystemTime::now());
    let dir = opts.artifacts_root.join(folder_name(&sc.name, backend, &when, test.as_deref(), lab.run_id()));
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let put = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(file_name(name));
        fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
    };
    for (name, linktype, records) in pcaps {
        write_pcap(&dir.join(file_name(&format!("{name}.pcap"))), *linktype, records)
            .map_err(|message| Error::File { path: dir.join(name), message })?;
    }
    let fs_err = |message: String| Error::File { path: dir.join("all.pcapng"), message };
    fs::write(dir.join("all.pcapng"), crate::output::pcapng::write(&outcome.frames))
        .map_err(|e| fs_err(e.to_string()))?;
    put("trace.txt", &tagged_trace(outcome, events))?;
    let all: Vec<&TimedEvent> = events.values().flatten().collect();
    let json = serde_json::to_string_pretty(&all.iter().map(|t| &t.event).collect::<Vec<_>>()).unwrap_or_default();
    put("trace.json", &json)?;
    write_outcome(&dir, outcome)?;
    put("report.txt", &crate::output::report::outcome(outcome, true))?;
    put("report.html", &crate::output::html::page(sc, outcome, Some("")))?;
    for n in &sc.netns {
        let ns = lab.netns(&n.name)?;
        let dump = |file: &str, r: Result<String>| put(file, &r.unwrap_or_else(|e| format!("unavailable: {e}\n")));
        dump(&format!("{}.iptables-save", n.name), backend.iptables(Family::V4).save(ns))?;
        if n.ip6tables.is_some() {
            dump(&format!("{}.ip6tables-save", n.name), backend.iptables(Family::V6).save(ns))?;
        }
        dump(&format!("{}.ebtables-save", n.name), ebtables::save(ns))?;
        dump(&format!("{}.nft.json", n.name), run_tool(ns, "nft", &["-j", "list", "ruleset"], None))?;
        // The ruleset as text, as a person writes it (and what iptables-nft made of their rules).
        dump(&format!("{}.nft", n.name), run_tool(ns, "nft", &["list", "ruleset"], None))?;
        dump(&format!("{}.conntrack", n.name), run_tool(ns, "conntrack", &["-L"], None))?;
        dump(&format!("{}.addr.json", n.name), run_tool(ns, "ip", &["-j", "addr"], None))?;
        dump(&format!("{}.route.json", n.name), run_tool(ns, "ip", &["-j", "route"], None))?;
        dump(&format!("{}.route6.json", n.name), run_tool(ns, "ip", &["-j", "-6", "route"], None))?;
        let routes = |family: &str| run_tool(ns, "ip", &[family, "route", "show", "table", "all"], None);
        let text = match (routes("-4"), routes("-6")) {
            (Ok(v4), Ok(v6)) => Ok(format!("# ip -4 route show table all\n{v4}\n# ip -6 route show table all\n{v6}")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        dump(&format!("{}.routes.txt", n.name), text)?;
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

/// The artifact folder of one run, under `$NETPATH_ARTIFACTS`:
/// `SCENARIO-BACKEND-TIME[-TEST]-RUNID`, the scenario's name made a file name ([`file_name`]),
/// `TIME` as [`utc_stamp`] writes it, `TEST` the name of the test that ran it (under `cargo
/// test`, the name of its thread: `docker_masquerade::twin`), cut to [`MAX_STEM_BYTES`].
pub fn folder_name(scenario: &str, backend: Backend, time: &str, test: Option<&str>, run_id: &str) -> String {
    let test = test.map(|t| format!("-{}", file_name(&t.replace("::", ".")))).unwrap_or_default();
    format!("{}-{}-{}{test}-{}", file_name(scenario), backend.name(), file_name(time), file_name(run_id))
}

/// `20261207T014502Z`: when a run wrote its artifacts, in UTC, as folder names sort.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The trace in the order each netns's source gave it, each event tagged with the probe packet
/// it belongs to (`ping-b packet 1 reply`, `ping-b packet 2 request, retransmission 1`), or
/// `(no probe packet)` for one no probe claimed (ARP, a neighbour solicitation, another flow).
fn tagged_trace(outcome: &Outcome, events: &BTreeMap<String, Vec<TimedEvent>>) -> String {
    let mut owners: Vec<(&crate::observe::trace::TraceEvent, String)> = vec![];
    for p in &outcome.probes {
        for ex in &p.exchanges {
            let sides = [("request".to_string(), &ex.request), ("reply".to_string(), &ex.reply)];
            let again = [("request", &ex.retransmissions), ("reply", &ex.reply_retransmissions)].into_iter().flat_map(
                |(d, again)| {
                    again.iter().enumerate().map(move |(k, pe)| (format!("{d}, retransmission {}", k + 1), pe))
                },
            );
            for (side, pe) in sides.into_iter().chain(again) {
                for ev in pe.path.values().flatten() {
                    owners.push((ev, format!("{} packet {} {side}", p.name, ex.packet)));
                }
            }
        }
    }
    let mut trace = String::new();
    for (netns, evs) in events {
        for te in evs {
            let owner = owners.iter().find(|(ev, _)| **ev == te.event).map_or("(no probe packet)", |(_, o)| o.as_str());
            trace.push_str(&format!("[{owner}] {netns}: {}\n", crate::observe::trace::text::render(&te.event)));
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scenario_name_leads_out_of_the_artifacts_folder() {
        let root = std::path::Path::new("/tmp/netpath-artifacts");
        let long = "x".repeat(5000);
        for name in ["../../../../../tmp/x/y", "/etc/cron.d/x", "..", ".", "", "a\0b", "a/../../b", "\n", &long] {
            let folder = folder_name(name, Backend::Legacy, "1x2", None, "3x4");
            let with_test = folder_name("sc", Backend::Legacy, "1", Some(name), "3x4");
            assert_eq!(root.join(&with_test).parent(), Some(root), "{name:?} -> {with_test}");
            assert!(!with_test.contains(['/', '\0']), "{name:?} -> {with_test}");
            let dir = root.join(&folder);
            assert_eq!(dir.parent(), Some(root), "{name:?} -> {folder}");
            assert_eq!(dir.components().count(), root.components().count() + 1, "{name:?} -> {folder}");
            assert!(!folder.starts_with('.') && !folder.contains(['/', '\0']), "{name:?} -> {folder}");
            assert!(folder.len() <= MAX_STEM_BYTES + "-legacy-1x2-3x4".len(), "{name:?} -> {folder}");
        }
        assert_eq!(folder_name("docker-masquerade", Backend::Nft, "T", None, "1x2"), "docker-masquerade-nft-T-1x2");
        assert_eq!(folder_name("../../tmp/x", Backend::Legacy, "T", None, "7"), "_._.._tmp_x-legacy-T-7");
        assert_eq!(
            folder_name("docker-masquerade", Backend::Nft, "20261207T014502Z", Some("docker_masquerade::twin"), "1x2"),
            "docker-masquerade-nft-20261207T014502Z-docker_masquerade.twin-1x2"
        );
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        let at = |secs: u64| utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        // 2026-12-07 01:45:02 UTC; 2024-02-29 23:59:59 UTC (a leap day).
        assert_eq!(at(1_796_607_902), "20261207T014502Z");
        assert_eq!(at(1_709_251_199), "20240229T235959Z");
        assert_eq!(file_name("host_eth0.pcap"), "host_eth0.pcap");
    }
}
