//! The answers to a probe's packets: `replies` (whether each is answered) and `answered_by`
//! (which server netns answered how many: a load split), both keys of the probe itself.

use crate::scenario::validate::Problems;
use crate::scenario::{ProbeSpec, Scenario};

/// What is wrong with the answers probe `p` (`probe[i]`) of `sc` expects: an endpoint without a
/// server.
pub(in crate::scenario) fn problems(sc: &Scenario, i: usize, p: &ProbeSpec, ps: &mut Problems) {
    for server in p.answered_by.keys() {
        if !sc.server.iter().any(|s| &s.netns == server) {
            ps.add(format!("probe[{i}].answered_by.{server}"), format!("no [[server]] runs in netns `{server}`"));
        }
    }
}
