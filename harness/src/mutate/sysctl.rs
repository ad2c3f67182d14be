//! Mutants of a netns's sysctls: each one set to `0` or `1` flipped (forwarding,
//! `bridge-nf-call-iptables`, `rp_filter`, `route_localnet`, proxy ARP: the switches a
//! datapath stands on).

use super::{Edit, Mutant, Operator, Target};
use crate::scenario::Scenario;

/// Mutants of the sysctls of netns number `netns` of `sc`.
pub(super) fn mutants(sc: &Scenario, netns: usize) -> Vec<Mutant> {
    let n = &sc.netns[netns];
    let mut out = vec![];
    for (key, value) in &n.sysctls {
        let flipped = match value.trim() {
            "0" => "1",
            "1" => "0",
            _ => continue,
        };
        let place = sc.source.sysctl_at(&n.name, key);
        let op = Operator::Sysctl;
        out.push(Mutant {
            id: format!("{}/sysctl:{key}", n.name),
            operator: op,
            before: format!("{key} = {value}"),
            after: Some(format!("{key} = {flipped}")),
            target: Target::Sysctl { netns: n.name.clone(), key: key.clone() },
            equivalent: annotation(&place, key),
            place,
            edit: Edit::Sysctl { netns, key: key.clone(), value: flipped.to_string() },
        });
    }
    out
}

/// A `# mutate: equivalent(sysctl KEY) — WHY` comment on the lines right above the sysctl's line
/// in its file (`place` is `FILE:LINE`).
fn annotation(place: &str, key: &str) -> Option<String> {
    let (file, line) = place.rsplit_once(':')?;
    let line: usize = line.parse().ok()?;
    let text = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let above = lines.get(..line.checked_sub(1)?)?;
    above.iter().rev().map(|l| l.trim()).take_while(|l| l.starts_with('#')).find_map(|l| {
        let rest =
            l.trim_start_matches('#').trim().strip_prefix("mutate:")?.trim().strip_prefix("equivalent(sysctl")?;
        let (k, why) = rest.split_once(')')?;
        (k.trim() == key).then(|| why.trim().trim_start_matches(['—', '-', ':']).trim().to_string())
    })
}
