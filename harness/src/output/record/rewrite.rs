//! Putting a recording into the user's scenario file: each probe's recorded expectations in
//! place of its old ones, comments, layout and everything else as the user wrote it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Recording;
use crate::evidence::neighbour::whole_ms;
use crate::scenario::{AddrExpect, DropExpect, PathExpect, Scenario};

/// The scenario file `original` with each probe's recorded expectations (`replies`, `path`,
/// `addr`) put in place of its old ones, and everything else (comments, the order of keys, the
/// layout of rulesets) left as the user wrote it: recording in place must not cost the file its
/// explanations.
pub fn rewrite(original: &str, recorded: &Scenario) -> Result<String, String> {
    rewrite_with(original, recorded, &BTreeMap::new())
}

/// [`rewrite`] for a whole [`Recording`]: a `timeout_ms` it raised gets a comment above it that
/// says what answer made it, so the user knows the number was measured, not chosen.
pub fn rewrite_recording(original: &str, rec: &Recording) -> Result<String, String> {
    rewrite_with(original, &rec.scenario, &rec.timeouts)
}

fn rewrite_with(original: &str, recorded: &Scenario, timeouts: &BTreeMap<String, Duration>) -> Result<String, String> {
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
        if let Some(slowest) = timeouts.get(&name)
            && let Some(spec) = recorded.probe.iter().find(|p| p.name == name)
        {
            let ms = i64::try_from(spec.timeout_ms).unwrap_or(i64::MAX);
            probe.insert("timeout_ms", toml_edit::value(ms));
            if let Some(mut key) = probe.key_mut("timeout_ms") {
                key.leaf_decor_mut().set_prefix(format!(
                    "# Recorded: the slowest answer came {} after its send; 3 × that, rounded up to\n\
                     # 100 ms (at least the default 1,000 ms), holds for a slower run.\n",
                    whole_ms(*slowest)
                ));
            }
        }
        // `replies = true` is the default, which the file left unsaid; so is an empty answered_by.
        set_value(probe, "replies", new.get("replies"), |v| v.as_bool() == Some(true));
        set_value(probe, "answer", new.get("answer"), |v| v.as_str() == Some("reply"));
        set_value(probe, "answered_by", new.get("answered_by"), |_| false);
        for key in ["path", "addr", "drop"] {
            let old = probe.get(key).and_then(toml_edit::Item::as_array_of_tables).cloned();
            let Some(mut entries) = new.get(key).and_then(toml_edit::Item::as_array_of_tables).cloned() else {
                probe.remove(key);
                continue;
            };
            {
                let none = toml_edit::ArrayOfTables::new();
                let old = old.as_ref().unwrap_or(&none);
                match key {
                    "path" => keep_what_holds::<PathExpect>(old, &mut entries, super::path::key),
                    "drop" => keep_what_holds::<DropExpect>(old, &mut entries, super::drop::key),
                    _ => keep_what_holds::<AddrExpect>(old, &mut entries, super::addr::key),
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

    const FILE: &str = include_str!("../../../../cases/scenarios/docker-masquerade.toml");

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
        p.replies = Some(false);
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
}
