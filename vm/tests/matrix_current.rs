//! The committed kernel matrix (vm/matrix/matrix.json, shown in the README) against the bundled
//! scenarios: every scenario × backend × probe they define has a row on every kernel of the
//! matrix, and every row is one they still define, unless the README lists the scenario under
//! the table as "added since, not yet run on the matrix". The README's table is matrix.md. A
//! scenario added, renamed or given a new probe fails here until the matrix is regenerated
//! (README "Kernel matrix") or the scenario is listed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netpath::Scenario;

/// The kernels the committed matrix must cover.
const KERNELS: [&str; 5] = ["host", "5.10", "6.1", "6.12", "7.2"];
/// The line under the README's table that opens the list of scenarios not run yet.
const ADDED_SINCE: &str = "Added since, not yet run on the matrix:";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

type Row = (String, String, String);

/// Scenario × backend × probe of every bundled scenario file.
fn bundled_rows() -> BTreeSet<Row> {
    let files = netpath::suite::scenario_files(&[repo().join("cases/scenarios")]).expect("bundled scenarios");
    let mut rows = BTreeSet::new();
    for f in files {
        let sc = Scenario::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for b in &sc.backends {
            for p in &sc.probe {
                rows.insert((sc.name.clone(), b.name().to_string(), p.name.clone()));
            }
        }
    }
    rows
}

/// The scenarios the README lists as added since the matrix was generated: `- name` bullets
/// (`- name` and anything after it, such as `(issue 19)`) right after [`ADDED_SINCE`].
fn added_since(readme: &str) -> BTreeSet<String> {
    let Some(start) = readme.find(ADDED_SINCE) else { return BTreeSet::new() };
    readme[start + ADDED_SINCE.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "))
        .filter_map(|l| l[2..].split_whitespace().next())
        .map(|n| n.trim_matches('`').to_string())
        .filter(|n| !n.starts_with('('))
        .collect()
}

/// matrix.md as the README shows it: every heading two levels down.
fn demoted(md: &str) -> String {
    md.lines().map(|l| if l.starts_with('#') { format!("##{l}\n") } else { format!("{l}\n") }).collect()
}

#[test]
fn the_committed_matrix_has_a_row_for_every_bundled_scenario_backend_and_probe() {
    let readme = read("README.md");
    let listed = added_since(&readme);
    let matrix: serde_json::Value = serde_json::from_str(&read("vm/matrix/matrix.json")).expect("matrix.json");
    let mut committed = BTreeSet::new();
    let mut holes = vec![];
    for r in matrix["rows"].as_array().expect("rows") {
        let key = (
            r["scenario"].as_str().unwrap_or_default().to_string(),
            r["backend"].as_str().unwrap_or_default().to_string(),
            r["probe"].as_str().unwrap_or_default().to_string(),
        );
        for k in KERNELS {
            if r["cells"].get(k).is_none() {
                holes.push(format!("{} [{}] {}: no cell for kernel {k}", key.0, key.1, key.2));
            }
        }
        committed.insert(key);
    }
    let bundled = bundled_rows();
    let name = |(s, b, p): &Row| format!("{s} [{b}] {p}");
    let missing: Vec<String> = bundled.difference(&committed).filter(|r| !listed.contains(&r.0)).map(name).collect();
    let gone: Vec<String> = committed.difference(&bundled).filter(|r| !listed.contains(&r.0)).map(name).collect();
    assert!(
        missing.is_empty() && gone.is_empty() && holes.is_empty(),
        "vm/matrix/matrix.json is stale: regenerate it (README \"Kernel matrix\") or list the scenario \
         under the README's table after \"{ADDED_SINCE}\".\nbundled but not in the matrix:\n  {}\n\
         in the matrix but no longer bundled:\n  {}\nrows without every kernel:\n  {}",
        missing.join("\n  "),
        gone.join("\n  "),
        holes.join("\n  ")
    );
    // A listed scenario that is in the matrix with all its rows is a list nobody trimmed.
    let stale_list: Vec<&String> = listed
        .iter()
        .filter(|s| {
            let theirs: BTreeSet<&Row> = bundled.iter().filter(|r| &r.0 == *s).collect();
            !theirs.is_empty() && theirs.iter().all(|r| committed.contains(*r))
        })
        .collect();
    assert!(stale_list.is_empty(), "the README lists as not yet run what the matrix has: {stale_list:?}");
}

#[test]
fn the_readme_shows_the_committed_matrix() {
    let readme = read("README.md");
    let table = demoted(&read("vm/matrix/matrix.md"));
    assert!(
        readme.contains(&table),
        "README.md does not show vm/matrix/matrix.md (its headings two levels down): run .ci/matrix-readme"
    );
}

#[test]
fn the_added_since_list_is_read_from_its_bullets() {
    let text = format!("table\n\n{ADDED_SINCE}\n\n- `a-new-one` (issue 19)\n- other\n\nNext paragraph\n- not this\n");
    assert!(added_since(&format!("{ADDED_SINCE}\n\n- (none)\n")).is_empty());
    assert_eq!(added_since(&text), ["a-new-one".to_string(), "other".to_string()].into());
}

#[test]
fn a_scenario_missing_from_a_matrix_is_named() {
    // The check above on a matrix that lacks one bundled row: its name is what the failure says.
    let bundled = bundled_rows();
    let first = bundled.iter().next().expect("a bundled scenario").clone();
    let committed: BTreeSet<Row> = bundled.iter().skip(1).cloned().collect();
    let missing: Vec<&Row> = bundled.difference(&committed).collect();
    assert_eq!(missing, vec![&first]);
}
