//! Mutants of the bundled scenarios: ids stable and unique, places in the file, every mutant a
//! change.

use std::path::Path;

use super::*;

fn bundled(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_bundled_scenario_gives_unique_ids_and_real_changes_at_its_own_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let ms = mutants(&sc);
        let mut ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "{}: ids repeat", path.display());
        let file = std::fs::read_to_string(&path).unwrap();
        for m in &ms {
            assert_ne!(m.after.as_deref(), Some(m.before.as_str()), "{}", m.describe());
            let mutated = m.apply(&sc);
            assert_ne!(mutated, sc, "{} changes nothing", m.describe());
            // The place names the line the mutant changes, in the scenario's own file.
            let (at, line) = m.place.rsplit_once(':').unwrap();
            let line: usize = line.parse().unwrap();
            if Path::new(at) == path && m.operator != Operator::Sysctl {
                let text = file.lines().nth(line - 1).unwrap().trim();
                assert_eq!(text, m.before, "{}", m.describe());
            }
        }
        total += ms.len();
    }
    assert!(total > 100, "{total} mutants over the bundled scenarios");
}

#[test]
fn a_masquerading_docker_host_gives_each_operator() {
    let ms = mutants(&bundled("docker-masquerade-native-nft.toml"));
    let ops: std::collections::BTreeSet<Operator> = ms.iter().map(|m| m.operator).collect();
    for op in [
        Operator::DeleteRule,
        Operator::FlipVerdict,
        Operator::FlipPolicy,
        Operator::NegateMatch,
        Operator::DropMatch,
        Operator::SwapRules,
    ] {
        assert!(ops.contains(&op), "{op:?} missing: {ops:?}");
    }
    assert!(ms.iter().all(|m| m.native_nft() || m.operator == Operator::Sysctl));
}

#[test]
fn an_annotation_above_a_rule_marks_its_mutants_equivalent() {
    let text = "*filter\n:FORWARD DROP [0:0]\n# mutate: equivalent(delete-rule) — the policy drops it anyway\n\
                -A FORWARD -p udp -j DROP\n-A FORWARD -j ACCEPT\nCOMMIT\n";
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(annotation(&lines, 4, Operator::DeleteRule, None).as_deref(), Some("the policy drops it anyway"));
    assert_eq!(annotation(&lines, 4, Operator::FlipVerdict, None), None);
    assert_eq!(annotation(&lines, 5, Operator::DeleteRule, None), None);
    let any = ["# mutate: equivalent — both ways", "-A X -j ACCEPT"];
    assert_eq!(annotation(&any, 2, Operator::SwapRules, None).as_deref(), Some("both ways"));
    let one = ["# mutate: equivalent(negate-match(--dport)) — no probe sends TCP", "-A X -p tcp --dport 9 -j DROP"];
    assert_eq!(annotation(&one, 2, Operator::NegateMatch, Some("--dport")).as_deref(), Some("no probe sends TCP"));
    assert_eq!(annotation(&one, 2, Operator::NegateMatch, Some("-p")), None);
}
