//! The README's first run, as a newcomer does it: its scenario saved as `router.toml` and run
//! with the README's command passes and prints what the README shows; with the conntrack rule
//! deleted, as the README says, it fails and prints the README's failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netpath_cases::docs::{after, example};

const CONNTRACK_RULE: &str = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT";

/// The README's scenario, saved as `router.toml` in a folder of its own named after `test`.
fn saved(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpath-first-run-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("router.toml"), text).unwrap();
    dir
}

/// `netpath ARGS` run from `dir`, as the README runs it (the binary built from this workspace).
fn netpath(dir: &Path, args: &[&str]) -> (Output, String) {
    let out = Command::new(netpath_cases::netpath_bin()).args(args).current_dir(dir).output().expect("run netpath");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The README's words after `marker`, up to the end of the first code block there.
fn shown_after(marker: &str) -> String {
    let text = after("README.md", marker);
    text.split("```\n").nth(1).expect("a code block after it").to_string()
}

/// The README's command for the first run, without `cargo run -p netpath --`.
fn readme_args() -> Vec<String> {
    let block = after("README.md", "Saved as `router.toml`");
    let line = block.lines().find(|l| l.starts_with("cargo run -p netpath -- run")).expect("the README's command");
    line.trim_start_matches("cargo run -p netpath -- ").split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_readme_scenario_passes_and_prints_what_the_readme_shows() {
    netpath_cases::require_root();
    let scenario = example("README.md", "# example: first scenario");
    let dir = saved("pass", &scenario.text);
    let args = readme_args();
    assert!(args.iter().any(|a| a == "router.toml"), "{args:?}");
    let (out, stdout) = netpath(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let shown = shown_after("the rule that decided:");
    assert!(stdout.contains(&shown), "the README's output is not what the run prints:\n{shown}\n---\n{stdout}");
    assert!(stdout.contains("PASS router [nft]"), "{stdout}");
}

#[test]
fn without_the_conntrack_rule_it_fails_as_the_readme_shows() {
    netpath_cases::require_root();
    let scenario = example("README.md", "# example: first scenario").text;
    let readme = netpath_cases::doc_text("README.md");
    assert!(readme.contains(&format!("Delete the conntrack rule,\n`{CONNTRACK_RULE}`")), "the README's step");
    let broken = scenario.replace(&format!("{CONNTRACK_RULE}\n"), "");
    assert_ne!(broken, scenario, "the scenario has the conntrack rule");
    let dir = saved("fail", &broken);
    let (out, stdout) = netpath(&dir, &readme_args().iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let mut shown = shown_after("what was observed instead:");
    // The function that drops is the running kernel's (the README shows 6.18's); on a kernel
    // whose drop source has no reasons the drop lines say less, and only the others are compared.
    let function = |text: &str| {
        let at = text.find("reply dropped in router at ").map(|i| i + "reply dropped in router at ".len())?;
        text[at..].split(',').next().map(str::to_string)
    };
    if let (Some(readme), Some(here)) = (function(&shown), function(&stdout)) {
        shown = shown.replace(&format!(" at {readme}"), &format!(" at {here}"));
    }
    if !stdout.contains("(NETFILTER_DROP:") {
        shown = shown.lines().filter(|l| !l.contains("dropped")).map(|l| format!("{l}\n")).collect();
        for line in shown.lines() {
            assert!(stdout.contains(line), "the README's line is not what the run prints:\n{line}\n---\n{stdout}");
        }
        return;
    }
    assert!(stdout.contains(&shown), "the README's failure is not what the run prints:\n{shown}\n---\n{stdout}");
    assert!(stdout.contains("FAIL router [nft]"), "{stdout}");
}
