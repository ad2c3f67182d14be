//! Every example of the documentation (README.md and docs/*.md) is one netpath accepts.
//!
//! Each ```toml block is loaded with the scenario loader, at its own lines, so a failure names
//! the page and line. A block says on its first line when it is not a whole scenario:
//!
//! - `# abridged: cases/scenarios/NAME.toml ...`: lines taken from that bundled file, in its
//!   order (blank lines, comment lines and trailing comments aside); a line the file does not
//!   have fails.
//! - `# fragment: cases/scenarios/NAME.toml ...`: entries that load appended to that file.
//! - `# refused: ...`: a whole scenario the loader must refuse, with the page's line.
//!
//! Every `netpath SUBCOMMAND --flag` (and `netpath-vm ...`) the pages name must be a subcommand
//! and a flag that `netpath SUBCOMMAND --help` lists, every link between the pages must lead to a file and,
//! with `#anchor`, to a heading of it, and the scenario catalogue must list exactly the bundled
//! scenarios.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use netpath::Scenario;
use netpath_cases::docs::{Block, doc_files, doc_text, fenced_blocks, repo};

/// How a block was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Checked {
    Loaded,
    Abridged,
    Fragment,
    Refused,
}

/// A line as the abridged check compares it: without a trailing comment and outer spaces.
fn bare(line: &str) -> &str {
    let line = line.trim();
    match line.find(" #") {
        Some(at) => line[..at].trim_end(),
        None => line,
    }
}

/// Whether `line` says nothing the loader reads.
fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// The bundled file a marker names (its first word), read.
fn named_file(block: &Block, rest: &str) -> Result<(String, String), String> {
    let rel = rest.split_whitespace().next().ok_or_else(|| format!("{}: the marker names no file", block.place()))?;
    let text = std::fs::read_to_string(repo().join(rel))
        .map_err(|e| format!("{}: the marker names {rel}, which cannot be read: {e}", block.place()))?;
    Ok((rel.to_string(), text))
}

/// Check one ```toml block as its first line says.
fn check(block: &Block) -> Result<Checked, String> {
    let first = block.text.lines().next().unwrap_or_default();
    let place = block.place();
    if let Some(rest) = first.strip_prefix("# abridged: ") {
        let (rel, file) = named_file(block, rest)?;
        let mut have = file.lines().filter(|l| !is_blank_or_comment(l)).map(bare);
        for (i, line) in block.text.lines().enumerate().filter(|(_, l)| !is_blank_or_comment(l)) {
            let want = bare(line);
            if !have.any(|h| h == want) {
                return Err(format!(
                    "{}:{}: `{want}` is not in {rel} (after the lines before it): the example is no longer abridged \
                     from the file; take it from the file again",
                    block.file,
                    block.line + i
                ));
            }
        }
        return Ok(Checked::Abridged);
    }
    if let Some(rest) = first.strip_prefix("# fragment: ") {
        let (rel, file) = named_file(block, rest)?;
        let whole = format!("{file}\n{}", block.text);
        Scenario::from_toml(&whole, &repo().join(&rel))
            .map_err(|e| format!("{place}: the fragment does not load appended to {rel}: {e}"))?;
        return Ok(Checked::Fragment);
    }
    let loaded = Scenario::from_toml(&block.text_at_its_lines(), Path::new(&block.file));
    match (first.starts_with("# refused: "), loaded) {
        (false, Ok(_)) => Ok(Checked::Loaded),
        (false, Err(e)) => Err(format!(
            "{place}: the example does not load (mark a partial one `# abridged:` or `# fragment:`, \
             one shown refused `# refused:`): {e}"
        )),
        (true, Ok(_)) => Err(format!("{place}: the example marked `# refused:` loads")),
        (true, Err(e)) if e.to_string().contains(&format!("{}:", block.file)) => Ok(Checked::Refused),
        (true, Err(e)) => Err(format!("{place}: the refusal does not name the page's line: {e}")),
    }
}

fn toml_blocks() -> Vec<Block> {
    doc_files().iter().flat_map(|f| fenced_blocks(f, &doc_text(f))).filter(|b| b.lang == "toml").collect()
}

#[test]
fn every_toml_block_of_the_docs_loads_or_is_marked_and_checked() {
    let mut counted: BTreeMap<Checked, usize> = BTreeMap::new();
    let mut problems = vec![];
    for block in toml_blocks() {
        match check(&block) {
            Ok(kind) => *counted.entry(kind).or_default() += 1,
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{} examples are wrong:\n{}", problems.len(), problems.join("\n"));
    // Each kind of check ran at least once: a marker the docs no longer use is dead code here.
    for kind in [Checked::Loaded, Checked::Abridged, Checked::Fragment, Checked::Refused] {
        assert!(counted.contains_key(&kind), "no block was checked as {kind:?}: {counted:?}");
    }
}

/// The twins of the check above: each kind of wrong example fails, naming the page and line.
#[test]
fn a_wrong_example_fails_naming_its_page_and_line() {
    let block =
        |line: usize, text: &str| Block { file: "docs/t.md".into(), line, lang: "toml".into(), text: text.into() };
    // A whole scenario with a bad key: the loader's error at the page's line.
    let e = check(&block(40, "name = \"x\"\n[[netns]]\nnmae = \"a\"\n")).unwrap_err();
    assert!(e.contains("docs/t.md:42:"), "{e}");
    // Abridged, with a line the file does not have (and with one it has, after it: order).
    let e =
        check(&block(10, "# abridged: cases/scenarios/docker-masquerade.toml\n[[probe]]\ncount = 3\n")).unwrap_err();
    assert!(e.contains("docs/t.md:12: `count = 3` is not in cases/scenarios/docker-masquerade.toml"), "{e}");
    let e =
        check(&block(10, "# abridged: cases/scenarios/docker-masquerade.toml\ncount = 2\n[[netns]]\n")).unwrap_err();
    assert!(e.contains("`[[netns]]` is not in"), "{e}");
    assert_eq!(
        check(&block(10, "# abridged: cases/scenarios/docker-masquerade.toml\n[[netns]]\ncount = 2 # two\n")),
        Ok(Checked::Abridged)
    );
    let e = check(&block(10, "# abridged: cases/scenarios/no-such.toml\n[[probe]]\n")).unwrap_err();
    assert!(e.contains("cases/scenarios/no-such.toml, which cannot be read"), "{e}");
    // A fragment the file does not take.
    let e = check(&block(5, "# fragment: cases/scenarios/docker-masquerade.toml\n[[probe.addr]]\nat = \"nowhere\"\n"))
        .unwrap_err();
    assert!(e.contains("docs/t.md:5: the fragment does not load appended to"), "{e}");
    // Marked refused, yet it loads.
    let whole = doc_text("README.md");
    let first = netpath_cases::docs::example("README.md", "# example: first scenario");
    assert!(whole.contains(&first.text));
    let e = check(&block(3, &first.text.replacen("# example:", "# refused:", 1))).unwrap_err();
    assert!(e.contains("docs/t.md:3: the example marked `# refused:` loads"), "{e}");
}

/// `COMMAND SUBCOMMAND ...` mentions in `text` (inline code spans and lines of code blocks), as
/// (subcommand, the words after it), for `command` `netpath` or `netpath-vm`.
fn mentions(text: &str, command: &str) -> Vec<(String, Vec<String>)> {
    let mut spans: Vec<String> = vec![];
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if fenced || line.starts_with("    ") {
            let code = line.split(" # ").next().unwrap_or_default();
            // A synopsis continues its command on the lines below it: `    [--junit FILE] ...`.
            match spans.last_mut() {
                Some(last) if code.trim_start().starts_with('[') => last.push_str(code),
                _ => spans.push(code.to_string()),
            }
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    spans.extend(prose.split('`').skip(1).step_by(2).map(|s| s.replace('\n', " ")));
    let mut found = vec![];
    for span in spans {
        let span = span.replace("cargo run -p netpath --", "netpath");
        let words: Vec<&str> = span.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == command && i + 1 < words.len() && !words[i + 1].starts_with('-') {
                // What follows `--` is the guest's command line, not this one's.
                let rest = words[i + 2..].iter().take_while(|w| !["netpath", "netpath-vm", "&&", "--"].contains(*w));
                found.push((words[i + 1].to_string(), rest.map(|w| w.to_string()).collect()));
            }
        }
    }
    found
}

/// The flags among `words` (`[--backend` → `--backend`, `--json=x` → `--json`, `-j` → `-j`).
fn flags(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| w.trim_start_matches(['[', '(']))
        .take_while(|w| *w != "--")
        .filter(|w| w.starts_with("--") || (w.len() > 1 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic()))
        .map(|w| w.split(['=', ']', ')', ',', '`', '|']).next().unwrap_or_default().to_string())
        .filter(|w| w.len() > 1)
        .collect()
}

/// What is wrong with the `command` mentions of `text` (the page `file`), given each
/// subcommand's help text: every problem named.
fn wrong_mentions(file: &str, text: &str, command: &str, help: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = vec![];
    for (sub, words) in mentions(text, command) {
        let Some(h) = help.get(&sub) else {
            if sub.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !sub.is_empty() {
                problems.push(format!("{file}: `{command} {sub}`: {command} has no subcommand {sub}"));
            }
            continue;
        };
        for flag in flags(&words) {
            let listed = h.match_indices(&flag).any(|(at, _)| {
                let after = h[at + flag.len()..].chars().next();
                let before = h[..at].chars().next_back();
                !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !listed {
                problems.push(format!("{file}: `{command} {sub} ... {flag}`: `{command} {sub} --help` has no {flag}"));
            }
        }
    }
    problems
}

/// `COMMAND --help` and every subcommand's, by subcommand, for the binary `bin`.
fn helps(bin: &Path) -> BTreeMap<String, String> {
    let help = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().expect("run the command");
        assert!(out.status.success(), "{} {args:?}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 help")
    };
    let top = help(&["--help"]);
    let subs: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(subs.contains(&"run".to_string()), "{top}");
    // `netpath help SUBCOMMAND` takes no flags: its help is the command's own.
    subs.into_iter().map(|s| (s.clone(), if s == "help" { top.clone() } else { help(&[&s, "--help"]) })).collect()
}

#[test]
fn every_netpath_flag_the_docs_name_is_one_the_command_has() {
    let commands =
        [("netpath", netpath_cases::netpath_bin()), ("netpath-vm", netpath_cases::workspace_bin("netpath-vm"))];
    let mut problems = vec![];
    for (command, bin) in &commands {
        let help = helps(bin);
        let mut checked = 0;
        for file in doc_files() {
            let text = doc_text(&file);
            checked += mentions(&text, command).len();
            problems.extend(wrong_mentions(&file, &text, command, &help));
        }
        assert!(checked > 10, "only {checked} mentions of {command} subcommands found: is the parser blind?");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let help = helps(&commands[0].1);

    // The twins: a flag and a subcommand that do not exist are named; the real ones are not.
    let text = "Run `netpath run --show-path --no-such-flag x.toml`, or\n\n    netpath frobnicate [-j N]\n\n\
                then `netpath caps --kernel-config` and `netpath mutate a.toml [--min-score P]`.\n";
    let found = wrong_mentions("t.md", text, "netpath", &help);
    assert_eq!(
        found,
        [
            "t.md: `netpath frobnicate`: netpath has no subcommand frobnicate",
            "t.md: `netpath run ... --no-such-flag`: `netpath run --help` has no --no-such-flag",
        ],
        "{found:#?}"
    );
}

#[test]
fn mentions_are_found_in_spans_code_blocks_and_across_lines() {
    let text = "a `netpath mutate FILE\n[--shard K/N]` b\n```sh\ncargo run -p netpath -- run --keep # why\n```\n\n    \
                netpath caps\n        [--kernel-config]\n";
    let found = mentions(text, "netpath");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found[1].0.as_str(), flags(&found[1].1)), ("caps", vec!["--kernel-config".to_string()]));
    let found = [found[0].clone(), found[2].clone()];
    assert_eq!(flags(&found[1].1), ["--shard"]);
    assert_eq!(found[0].0, "run");
    assert_eq!(flags(&found[0].1), ["--keep"]);
}

/// A heading's anchor as GitHub makes it: lowercase, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' | '-' => Some('-'),
            '_' => Some('_'),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// What is wrong with the relative links of `text` (the page `file`): a file that is not there,
/// or an anchor no heading of the linked page has.
fn broken_links(file: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = vec![];
    let prose: String = fenced_blocks(file, text).iter().fold(text.to_string(), |t, b| t.replacen(&b.text, "", 1));
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    for (at, _) in prose.match_indices("](") {
        let target = prose[at + 2..].split(')').next().unwrap_or_default();
        if target.contains("://") || target.contains(' ') {
            continue;
        }
        let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
        let linked = if path.is_empty() { file.to_string() } else { normalize(&dir.join(path)) };
        let Some(page) = read(&linked) else {
            problems.push(format!("{file}: the link to {target} leads to {linked}, which is not there"));
            continue;
        };
        let headings: Vec<String> =
            page.lines().filter(|l| l.starts_with('#')).map(|l| anchor(l.trim_start_matches('#').trim())).collect();
        if !fragment.is_empty() && !headings.iter().any(|h| h == fragment) {
            problems.push(format!("{file}: the link to {target}: {linked} has no heading #{fragment}"));
        }
    }
    problems
}

/// `docs/../README.md` as `README.md`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&str> = vec![];
    for part in path.iter().filter_map(|p| p.to_str()) {
        match part {
            ".." => {
                parts.pop();
            }
            "." => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[test]
fn every_link_between_the_pages_leads_to_a_file_and_heading() {
    let read = |rel: &str| std::fs::read(repo().join(rel)).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut problems = vec![];
    for file in doc_files() {
        problems.extend(broken_links(&file, &doc_text(&file), &read));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The twins: a page that is not there and a heading that is not there are named.
    let text = "[a](scenarios.md#no-such-heading), [b](gone.md), [c](../README.md#one-failure), [d](#here)\n\n# Here\n";
    let found = broken_links("docs/t.md", text, &|rel| if rel == "docs/t.md" { Some(text.into()) } else { read(rel) });
    assert_eq!(
        found,
        [
            "docs/t.md: the link to scenarios.md#no-such-heading: docs/scenarios.md has no heading #no-such-heading",
            "docs/t.md: the link to gone.md leads to docs/gone.md, which is not there",
        ],
        "{found:#?}"
    );
    assert_eq!(anchor("Mutation testing (`netpath mutate`)"), "mutation-testing-netpath-mutate");
    assert_eq!(anchor("The two commands (as root, from a clone)"), "the-two-commands-as-root-from-a-clone");
}

/// The scenario names of the catalogue's rows (`| `NAME` | ...`) against the bundled ones:
/// every problem named.
fn catalogue_problems(catalogue: &str, bundled: &std::collections::BTreeSet<String>) -> Vec<String> {
    let rows: std::collections::BTreeSet<String> =
        catalogue.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_string)).collect();
    let missing = bundled.difference(&rows).map(|n| format!("docs/catalogue.md has no row for the bundled {n}"));
    let gone = rows.difference(bundled).map(|n| format!("docs/catalogue.md has a row for {n}, which is not bundled"));
    missing.chain(gone).collect()
}

#[test]
fn the_catalogue_has_a_row_for_every_bundled_scenario_and_no_other() {
    let files = netpath::suite::scenario_files(&[netpath_cases::scenarios_dir()]).expect("bundled scenarios");
    let bundled =
        files.iter().map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).name).collect();
    let problems = catalogue_problems(&doc_text("docs/catalogue.md"), &bundled);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The twin: a scenario without a row, and a row without a scenario, are named.
    let twin = ["docker-masquerade".to_string(), "brand-new".to_string()].into();
    let found = catalogue_problems("| `docker-masquerade` | 000 |\n| `retired` | 001 |\n", &twin);
    assert_eq!(
        found,
        [
            "docs/catalogue.md has no row for the bundled brand-new",
            "docs/catalogue.md has a row for retired, which is not bundled"
        ]
    );
}
