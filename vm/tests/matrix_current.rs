//! The committed kernel matrix (vm/matrix/matrix.json, shown in docs/matrix.md) against the
//! bundled scenarios: every scenario × backend × probe they define has a row on every kernel of
//! the matrix, and every row is one they still define, unless docs/matrix.md lists the scenario
//! under the table as "added since, not yet run on the matrix". The table in docs/matrix.md is
//! vm/matrix/matrix.md. A scenario added, renamed or given a new probe fails here until the
//! matrix is regenerated (docs/matrix.md) or the scenario is listed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netpath::Scenario;

/// The chapter that shows the committed matrix and lists the scenarios not run on it yet.
const CHAPTER: &str = "docs/matrix.md";
/// The kernels the committed matrix must cover.
const KERNELS: [&str; 5] = ["host", "5.10", "6.1", "6.12", "7.2"];
/// The line under the chapter's table that opens the list of scenarios not run yet.
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

/// The scenarios the chapter lists as added since the matrix was generated: `- name` bullets
/// (`- name` and anything after it, such as `(issue 19)`) right after [`ADDED_SINCE`].
fn added_since(chapter: &str) -> BTreeSet<String> {
    let Some(start) = chapter.find(ADDED_SINCE) else { return BTreeSet::new() };
    chapter[start + ADDED_SINCE.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "))
        .filter_map(|l| l[2..].split_whitespace().next())
        .map(|n| n.trim_matches('`').to_string())
        .filter(|n| !n.starts_with('('))
        .collect()
}

/// matrix.md as the chapter shows it: every heading two levels down.
fn demoted(md: &str) -> String {
    md.lines().map(|l| if l.starts_with('#') { format!("##{l}\n") } else { format!("{l}\n") }).collect()
}

/// What is wrong with `matrix` (a matrix.json) against the `bundled` rows, the scenarios the
/// chapter lists as not yet run left aside: every problem named, or Ok.
fn check(bundled: &BTreeSet<Row>, matrix: &serde_json::Value, listed: &BTreeSet<String>) -> Result<(), String> {
    let mut committed = BTreeSet::new();
    let mut holes = vec![];
    for r in matrix["rows"].as_array().into_iter().flatten() {
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
    let name = |(s, b, p): &Row| format!("{s} [{b}] {p}");
    let missing: Vec<String> = bundled.difference(&committed).filter(|r| !listed.contains(&r.0)).map(name).collect();
    let gone: Vec<String> = committed.difference(bundled).filter(|r| !listed.contains(&r.0)).map(name).collect();
    if !(missing.is_empty() && gone.is_empty() && holes.is_empty()) {
        return Err(format!(
            "vm/matrix/matrix.json is stale: regenerate it (docs/matrix.md) or list the scenario \
             under the table of docs/matrix.md after \"{ADDED_SINCE}\".\nbundled but not in the matrix:\n  {}\n\
             in the matrix but no longer bundled:\n  {}\nrows without every kernel:\n  {}",
            missing.join("\n  "),
            gone.join("\n  "),
            holes.join("\n  ")
        ));
    }
    // A listed scenario that is in the matrix with all its rows is a list nobody trimmed.
    let stale_list: Vec<&String> = listed
        .iter()
        .filter(|s| {
            let theirs: BTreeSet<&Row> = bundled.iter().filter(|r| &r.0 == *s).collect();
            !theirs.is_empty() && theirs.iter().all(|r| committed.contains(*r))
        })
        .collect();
    if !stale_list.is_empty() {
        return Err(format!("docs/matrix.md lists as not yet run what the matrix has: {stale_list:?}"));
    }
    Ok(())
}

fn committed() -> serde_json::Value {
    serde_json::from_str(&read("vm/matrix/matrix.json")).expect("vm/matrix/matrix.json")
}

#[test]
fn the_committed_matrix_has_a_row_for_every_bundled_scenario_backend_and_probe() {
    if let Err(e) = check(&bundled_rows(), &committed(), &added_since(&read(CHAPTER))) {
        panic!("{e}");
    }
}

#[test]
fn a_bundled_scenario_without_rows_fails_by_name_unless_listed_as_added_since() {
    // The committed matrix with one scenario's rows taken out: as if it were added after it.
    let mut m = committed();
    let rows = m["rows"].as_array_mut().expect("rows");
    let victim = rows[0]["scenario"].as_str().expect("scenario").to_string();
    rows.retain(|r| r["scenario"] != victim.as_str());
    let bundled = bundled_rows();
    // Beside what the chapter lists already (scenarios added since the matrix was made).
    let listed = added_since(&read(CHAPTER));
    let e = check(&bundled, &m, &listed).expect_err("a matrix without a bundled scenario passed");
    assert!(e.contains(&format!("{victim} [")), "{e}");
    let mut with_victim = listed.clone();
    with_victim.insert(victim.clone());
    check(&bundled, &m, &with_victim).expect("the scenario is listed as added since");
    // Listed while the matrix has it: the list is stale.
    let e = check(&bundled, &committed(), &with_victim).expect_err("a stale list passed");
    assert!(e.contains(&victim), "{e}");
}

#[test]
fn a_row_without_every_kernel_fails() {
    let mut m = committed();
    m["rows"][0]["cells"].as_object_mut().expect("cells").remove("5.10");
    let e = check(&bundled_rows(), &m, &BTreeSet::new()).expect_err("a row without 5.10 passed");
    assert!(e.contains("no cell for kernel 5.10"), "{e}");
}

#[test]
fn the_chapter_shows_the_committed_matrix() {
    let chapter = read(CHAPTER);
    let table = demoted(&read("vm/matrix/matrix.md"));
    assert!(
        chapter.contains(&table),
        "{CHAPTER} does not show vm/matrix/matrix.md (its headings two levels down): run .ci/matrix-docs"
    );
}

#[test]
fn the_added_since_list_is_read_from_its_bullets() {
    let text = format!("table\n\n{ADDED_SINCE}\n\n- `a-new-one` (issue 19)\n- other\n\nNext paragraph\n- not this\n");
    assert!(added_since(&format!("{ADDED_SINCE}\n\n- (none)\n")).is_empty());
    assert_eq!(added_since(&text), ["a-new-one".to_string(), "other".to_string()].into());
}
