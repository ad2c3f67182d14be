//! A path pattern that names nothing in its netns is an error, never a pass (issue 19). Where
//! the scenario writes the netns's rulesets, the check runs when the file loads (see
//! tests/malformed/ and the lib's `ruleset::check` tests); where a step writes them, it runs on
//! the live rulesets after the steps, before any packet, and fails the run at the entry's
//! FILE:LINE:COL with the message the load check gives for the same rules.

use std::path::{Path, PathBuf};

use netpath::{Backend, Error, RunOptions, Scenario};
use rstest::rstest;

/// kube-proxy's nftables mode in miniature: a `services` base chain that sends TCP to port 80
/// to an `endpoint-<hash>` chain; the probe is a ping, which never goes there.
const NFT: &str = "table ip kube-proxy {\n\
    \tchain services {\n\
    \t\ttype nat hook prerouting priority -100; policy accept;\n\
    \t\ttcp dport 80 jump endpoint-5ozpwkbu\n\
    \t}\n\
    \tchain endpoint-5ozpwkbu {\n\
    \t\tmeta l4proto tcp dnat to 10.50.0.1:80 comment \"to ep1\"\n\
    \t}\n\
    }\n";

/// The same in iptables (legacy): `nat:KUBE-SEP-*` chains.
const SAVE: &str = "*nat\n\
    :PREROUTING ACCEPT [0:0]\n\
    :KUBE-SERVICES - [0:0]\n\
    :KUBE-SEP-5OZPWKBU - [0:0]\n\
    -A PREROUTING -j KUBE-SERVICES\n\
    -A KUBE-SERVICES -p tcp --dport 80 -j KUBE-SEP-5OZPWKBU\n\
    -A KUBE-SEP-5OZPWKBU -p tcp -j DNAT --to-destination 10.50.0.1:80\n\
    COMMIT\n";

/// How a backend's rules get into netns `node`: the program a step runs, its args, the ruleset
/// key the same rules have in a file, the ruleset, and a pattern over the endpoint chains.
struct Way {
    backend: Backend,
    program: &'static str,
    args: &'static str,
    key: &'static str,
    rules: &'static str,
    pattern: &'static str,
}

const NATIVE: Way = Way {
    backend: Backend::Nft,
    program: "nft",
    args: r#"["-f", "-"]"#,
    key: "nft",
    rules: NFT,
    pattern: "kube-proxy:endpoint-*",
};

const LEGACY: Way = Way {
    backend: Backend::Legacy,
    program: "iptables-legacy-restore",
    args: "[]",
    key: "iptables",
    rules: SAVE,
    pattern: "nat:KUBE-SEP-*",
};

/// Two netns joined by a veth; the ping from `client` to `node` with `never = [pattern]` in
/// node. The rules are written by a step, or (`in_file`) given as node's ruleset.
fn scenario(way: &Way, rules: &str, pattern: &str, in_file: bool) -> String {
    let backend = way.backend.name();
    let rules_toml = format!("\"\"\"\n{rules}\"\"\"");
    let (netns_rules, step) = if in_file {
        (format!("{} = {rules_toml}\n", way.key), String::new())
    } else {
        (
            String::new(),
            format!(
                "[[step]]\nname = \"proxy\"\nnetns = \"node\"\nprogram = \"{}\"\nargs = {}\nstdin = {rules_toml}\n\n",
                way.program, way.args
            ),
        )
    };
    format!(
        "name = \"vacuous\"\nbackends = [\"{backend}\"]\n\n\
         [[netns]]\nname = \"client\"\n\n\
         [[netns]]\nname = \"node\"\n{netns_rules}\n\
         [[veth]]\n\
         a = {{ netns = \"client\", name = \"eth0\", addresses = [\"10.49.0.2/24\"] }}\n\
         b = {{ netns = \"node\", name = \"eth0\", addresses = [\"10.49.0.1/24\"] }}\n\n\
         {step}\
         [[probe]]\nname = \"ping\"\nfrom = \"client\"\nto = \"10.49.0.1\"\n\n\
         [[probe.path]]\nnetns = \"node\"\nnever = [\"{pattern}\"]\n"
    )
}

/// Writes `text` as a scenario file of its own and loads it.
fn write(name: &str, text: &str) -> (PathBuf, netpath::Result<Scenario>) {
    let dir = std::env::temp_dir().join(format!("netpath-vacuous-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let sc = Scenario::load(&path);
    (path, sc)
}

/// Line and column of the pattern in the file: the `never` list's first entry.
fn place(path: &Path, text: &str) -> String {
    let (n, line) = text.lines().enumerate().find(|(_, l)| l.starts_with("never = [")).unwrap();
    format!("{}:{}:{}", path.display(), n + 1, line.find('[').unwrap() + 2)
}

/// A step writes the rules: with the endpoint chain renamed away the pattern names nothing and
/// the run fails before any packet, at the pattern's place, with the load check's message for
/// the same rules in the file; with the chain there it passes (the ping never goes there).
#[rstest]
fn a_pattern_naming_nothing_a_step_made_fails_the_run(#[values(NATIVE, LEGACY)] way: Way) {
    let renamed =
        way.rules.replace("endpoint-5ozpwkbu", "ep-5ozpwkbu").replace("KUBE-SEP-5OZPWKBU", "KUBE-EP-5OZPWKBU");

    let text = scenario(&way, &renamed, way.pattern, false);
    let (path, sc) = write(&format!("{}-vacuous", way.key), &text);
    let sc = sc.unwrap_or_else(|e| panic!("a step's rules are not known at load: {e}"));
    let e = netpath::run(&sc, way.backend, &RunOptions::default()).expect_err("the pattern names nothing");
    let Error::VacuousPattern { at, message } = &e else { panic!("want VacuousPattern, got {e}") };
    assert_eq!(at, &place(&path, &text), "{e}");
    assert!(message.starts_with(&format!("`{}` matches no chain of netns node", way.pattern)), "{message}");

    // The same rules in the file: the load check says the same.
    let text = scenario(&way, &renamed, way.pattern, true);
    let (path, loaded) = write(&format!("{}-vacuous-in-file", way.key), &text);
    let load_error = loaded.expect_err("the load check sees it too").to_string();
    assert_eq!(load_error, format!("{}: probe[0].path[0].never[0]: {message}", place(&path, &text)));

    // The twin: the chain is there, the ping never visits it, the run passes.
    let text = scenario(&way, way.rules, way.pattern, false);
    let (_, sc) = write(&format!("{}-present", way.key), &text);
    netpath_cases::assert_passes(&sc.unwrap(), way.backend);
}

/// The docs' example, as written there, is refused when it loads; with the `never` the docs
/// say, it loads and passes under both backends, and its twin (the ping dropped at INPUT) fails
/// the comment reference's verdict. `filter:FORWARD` is refused under nft only.
#[rstest]
fn the_doc_example_is_refused_and_its_fix_runs(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    const CHAPTER: &str = "docs/expectations.md";
    let text = &netpath_cases::docs::example(CHAPTER, "# refused: a pattern that names nothing").text;
    let refused = Scenario::from_toml(text, Path::new(CHAPTER)).expect_err("refused at load").to_string();
    assert_eq!(refused.lines().count(), 1, "{refused}");
    assert!(refused.contains("probe[0].path[0].never[0]: `type:nat` matches no chain of netns router"), "{refused}");
    let forward = text.replace("never = [\"type:nat\"]", "never = [\"filter:FORWARD\"]");
    let refused = Scenario::from_toml(&forward, Path::new(CHAPTER)).expect_err("no FORWARD under nft").to_string();
    assert!(
        refused.contains(
            "`filter:FORWARD` names no chain of netns router (its chains in table filter: INPUT) under backend nft"
        ),
        "{refused}"
    );
    let fixed = text.replace("never = [\"type:nat\"]", "never = [\"filter:INPUT:policy:*\"]");
    let load = |t: &str| Scenario::from_toml(t, Path::new(CHAPTER)).unwrap_or_else(|e| panic!("{e}\n{t}"));
    netpath_cases::assert_passes(&load(&fixed), backend);
    let dropped = fixed
        .replace("--comment \"allow-ping\" -j ACCEPT", "--comment \"allow-ping\" -j DROP")
        .replace("to = \"10.9.0.2\"", "to = \"10.9.0.2\"\nanswer = \"none\"");
    let o = netpath_cases::run(&load(&dropped), backend);
    netpath_cases::want(netpath::verdict::expect::FailureKind::PathIncludes)
        .netns("router")
        .find(&o.probes[0].failures);
}
