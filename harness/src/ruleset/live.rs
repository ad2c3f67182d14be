//! The [`Model`] of a netns's rulesets as the kernel holds them, for the check after the steps
//! ran (rulesets a step wrote are known only then): x_tables through `iptables-legacy-save` and
//! `ip6tables-legacy-save`, nf_tables (iptables-nft's tables and native ones alike) through
//! `nft -j list ruleset`, read with [`RuleIndex`], the reader that names nf_tables trace events.
//! `iptables-nft-save` is not read: it lists built-in chains that do not exist (and so report
//! nothing) where a table has some of them only.

use super::check::{Model, pattern_item};
use super::iptables;
use super::scenario::traced_eb;
use crate::error::{Error, Result};
use crate::firewall::{Backend, Family, run_tool};
use crate::kernel::KernelRange;
use crate::lab::Lab;
use crate::lab::netns::Netns;
use crate::observe::trace::nft_events::TRACE_TABLE;
use crate::observe::trace::nftrace::RuleIndex;
use crate::scenario::{PathExpect, Scenario};
use crate::verdict::Failure;

/// Reads the live rulesets of `ns` (called `name` in the scenario); `eb` are the ebtables chains
/// netpath traces there ([`super::scenario::traced_eb`]).
pub fn read(ns: &Netns, name: &str, eb: Vec<(String, String)>) -> Result<Model> {
    let mut m = Model { netns: name.to_string(), eb, ..Model::default() };
    for family in Family::ALL {
        let save = Backend::Legacy.iptables(family).save(ns)?;
        let set = iptables::parse(&save, if family == Family::V6 { "ip6" } else { "ip" });
        if !set.tables.is_empty() {
            m.rulesets.push(set);
        }
    }
    let json = run_tool(ns, "nft", &["-j", "list", "ruleset"], None)?;
    match RuleIndex::from_nft_json(&json) {
        Ok(index) => {
            for mut set in index.rulesets() {
                set.tables.retain(|t| t.name != TRACE_TABLE);
                m.rulesets.push(set);
            }
        }
        // Not judged rather than judged wrong.
        Err(_) => m.opaque = true,
    }
    Ok(m)
}

/// After the steps: every path entry of `sc` about a netns a step ran in, that applies to this
/// run (its backend and kernel), judged against that netns's live rulesets. A pattern that
/// names nothing fails the run with [`Error::VacuousPattern`] at the entry's `FILE:LINE:COL`,
/// with the message a load error would have (the load check skips these netns).
pub fn check_after_steps(lab: &Lab, sc: &Scenario, backend: Backend) -> Result<()> {
    let kernel = crate::kernel::running();
    let mut errors = vec![];
    for n in sc.netns.iter().filter(|n| sc.step.iter().any(|s| s.netns == n.name)) {
        let entries: Vec<(usize, usize, &PathExpect)> = sc
            .probe
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.path.iter().enumerate().map(move |(j, e)| (i, j, e)))
            .filter(|(_, _, e)| {
                e.netns == n.name
                    && e.backend.is_none_or(|b| b == backend)
                    && KernelRange::applies(e.kernel.as_ref(), kernel)
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let model = read(lab.netns(&n.name)?, &n.name, traced_eb(sc, n))?;
        for (i, j, e) in entries {
            for (key, k, message) in model.vacuous(e) {
                let at = sc.source.place(&pattern_item(i, j, key, k));
                errors.push(Error::VacuousPattern { at, message });
            }
        }
    }
    match <[Error; 1]>::try_from(errors) {
        Ok([e]) => Err(e),
        Err(errors) if errors.is_empty() => Ok(()),
        Err(errors) => Err(Error::Many(errors)),
    }
}

/// Says beside each `exact`, `includes` or `last` failure of `failures` (those of probe
/// `probe` of `sc`) what its entry names that the netns cannot report (a rule past the chain's
/// end, a comment no rule has...), from the scenario's rulesets or, where a step ran in the
/// netns, its live ones. Such a hook never matches, so the run failed anyway: this says why.
/// Best effort: a ruleset that cannot be read adds nothing.
pub fn explain(lab: &Lab, sc: &Scenario, backend: Backend, probe: usize, failures: &mut [Failure]) {
    use crate::verdict::FailureKind::{PathExact, PathIncludes, PathLast};
    let Some(p) = sc.probe.get(probe) else { return };
    for f in failures.iter_mut().filter(|f| matches!(f.kind, PathExact | PathIncludes | PathLast)) {
        let Some(ns) = f.netns.clone() else { continue };
        let Some(n) = sc.netns.iter().find(|n| n.name == ns) else { continue };
        let model = match super::scenario::model(sc, n, backend) {
            Some(m) => m,
            None => match lab.netns(&ns).and_then(|real| read(real, &ns, traced_eb(sc, n))) {
                Ok(m) => m,
                Err(_) => continue,
            },
        };
        let why: Vec<String> = p
            .path
            .iter()
            .filter(|e| e.netns == ns && f.direction.is_none_or(|d| d == e.direction))
            .flat_map(|e| model.entry_problems(e))
            .filter(|(key, _, _)| *key != "never")
            .map(|(_, _, m)| m)
            .collect();
        if !why.is_empty() {
            f.detail.push_str(&format!(" (it names what netns {ns} cannot report: {})", why.join("; ")));
        }
    }
}
