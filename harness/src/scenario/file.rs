//! Scenario files: parsing TOML into a [`Scenario`] with every problem reported at its
//! `file.toml:LINE:COL`, and writing one back.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::*;

/// A problem of a scenario file with where it is; shown as `file.toml:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong, and how to fix it where known.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// Where in a file a problem is: 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

impl Scenario {
    /// Parse a scenario file's text; `origin` names it in errors. Each problem is one line
    /// `origin:LINE:COL: message` ([`Diagnostic`]): one problem is an [`Error::File`] whose
    /// `path` is `origin:LINE:COL`, several are an [`Error::Many`] of those.
    ///
    /// [`Error::File`]: crate::Error::File
    /// [`Error::Many`]: crate::Error::Many
    pub fn from_toml(text: &str, origin: &Path) -> crate::Result<Scenario> {
        Scenario::parse(text, origin).map_err(|diags| {
            let errs: Vec<crate::Error> = diags
                .into_iter()
                .map(|d| crate::Error::File {
                    path: PathBuf::from(format!("{}:{}:{}", d.file.display(), d.line, d.column)),
                    message: d.message,
                })
                .collect();
            match <[crate::Error; 1]>::try_from(errs) {
                Ok([e]) => e,
                Err(errs) => crate::Error::Many(errs),
            }
        })
    }

    /// Parse a scenario file's text and check it, reporting every problem with its line and
    /// column, in file order. A syntax error comes alone (the first: what a parser says after
    /// one is mostly its echo); else every type error (a wrong type, an unknown key, a missing
    /// field, a bad CIDR, MAC, backend or hook name); else what [`Scenario::problems`] finds.
    pub fn parse(text: &str, origin: &Path) -> Result<Scenario, Vec<Diagnostic>> {
        // The file and the bases it `extends`, each parsed on its own, merged into one document
        // whose spans say which file a value is in.
        let files = extends::Files::read(text, origin)?;
        // A message quotes what the file says: its control characters are shown as escapes.
        let diag =
            |span: Range<usize>, message: String| files.diagnostic(span, super::printable(&message).into_owned());
        let sorted = |mut v: Vec<Diagnostic>| {
            v.sort_by_key(|d| (d.line, d.column));
            v
        };
        let mut docs = vec![];
        for (own, start, dir) in files.texts() {
            let (doc, syntax) = DeTable::parse_recoverable(own);
            // A syntax error comes alone: what the parser says after one is mostly its echo.
            if let Some(e) = syntax.iter().min_by_key(|e| e.span().map_or(0, |s| s.start)) {
                let span = e.span().unwrap_or(0..0);
                let mut message = e.message().to_string();
                if message == "duplicate key"
                    && let Some(key) = own.get(span.clone()).filter(|k| !k.is_empty() && k.len() < 80)
                {
                    message = format!("duplicate key `{key}`");
                } else if message.contains("inline table") {
                    message.push_str(" (does a `{ ... }` before this lack its `}`?)");
                }
                return Err(vec![diag(span.start + start..span.end + start, message)]);
            }
            let mut doc: Node<'_> = Spanned::new(doc.span(), DeValue::Table(doc.into_inner()));
            extends::shift(&mut doc, start);
            extends::rebase_paths(&mut doc, dir);
            docs.push(doc);
        }
        let doc = extends::merge(docs);
        let mut sc = deserialize_all(&doc, files.text.len())
            .map_err(|errs| sorted(errs.into_iter().map(|(s, m)| diag(s, m)).collect()))?;
        crate::lab::step::resolve_files(&mut sc, origin);
        let escapes = input::confine_steps(&mut sc, origin);
        sc.source = crate::firewall::located::Source::in_files(ruleset_lines(&doc, &files))
            .with_sysctls(sysctl_lines(&doc, &files))
            .with_probes(probe_lines(&doc, &files))
            .with_places([pattern_places(&sc, &doc, &files), item_places(&sc, &doc, &files)].concat());
        let mut problems = sc.problems();
        // A file outside the tree is reported as that, not as what else is wrong with it.
        problems.retain(|p| !escapes.iter().any(|e| e.item == p.item));
        problems.extend(escapes);
        if problems.is_empty() {
            return Ok(sc);
        }
        let mut located: Vec<(Range<usize>, String)> =
            problems.into_iter().map(|p| (span_of(&doc, &parse_item(&p.item)), p.to_string())).collect();
        // Each diagnostic counts lines up to its place: a file with thousands of problems
        // shows the first of them, in file order, and how many more there are.
        if located.len() > MAX_PROBLEMS {
            located.sort_by_key(|(span, _)| span.start);
            let more = located.len() - MAX_PROBLEMS;
            located.truncate(MAX_PROBLEMS);
            let last = located[MAX_PROBLEMS - 1].0.clone();
            located.push((last, format!("and {more} more problems: fix these first")));
        }
        Err(sorted(located.into_iter().map(|(span, message)| diag(span, message)).collect()))
    }

    /// Read and parse a scenario file: a regular file of at most [`MAX_FILE_BYTES`] of UTF-8
    /// (see [`input`](super::input)); invalid UTF-8 is an error at its line and column.
    pub fn load(path: &Path) -> crate::Result<Scenario> {
        Scenario::from_toml(&read_file(path)?, path)
    }

    /// The scenario as a scenario file.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }
}

/// The text of the scenario file `path`, read as [`input::read_text`] reads it; an error names
/// the file (and the line and column of a byte that is not UTF-8).
pub fn read_file(path: &Path) -> crate::Result<String> {
    input::read_text(path, false).map_err(|e| match e {
        input::ReadError::Refused(message) => crate::Error::File { path: path.to_path_buf(), message },
        input::ReadError::NotUtf8 { line, column, message } => {
            crate::Error::File { path: PathBuf::from(format!("{}:{line}:{column}", path.display())), message }
        }
    })
}

/// The most problems a file's error lists; the last line says how many more there are.
const MAX_PROBLEMS: usize = 100;

/// Per netns with a ruleset: `(netns, field, file, line)`, the file line of the ruleset's first
/// line (a multi-line string's first newline is not part of its value).
fn ruleset_lines(doc: &Node<'_>, files: &extends::Files) -> Vec<(String, &'static str, PathBuf, usize)> {
    let mut out = vec![];
    let Some(DeValue::Array(all)) = child(doc, &Step::Key("netns".into())).map(Spanned::get_ref) else { return out };
    for n in all {
        let Some(name) = child(n, &Step::Key("name".into())).and_then(|v| v.get_ref().as_str()) else { continue };
        for field in ["iptables", "ip6tables", "ebtables", "nft"] {
            let Some(v) = child(n, &Step::Key(field.into())) else { continue };
            let start = v.span().start;
            let (file, line) = files.line_of(start);
            let rest = files.text.get(start..).unwrap_or("");
            let skips_newline = ["\"\"\"\n", "'''\n", "\"\"\"\r\n", "'''\r\n"].iter().any(|q| rest.starts_with(q));
            out.push((name.to_string(), field, file.to_path_buf(), line + usize::from(skips_newline)));
        }
    }
    out
}

/// `(item, FILE:LINE:COL)` of every pattern of a path entry about a netns a step runs in: the
/// check of what it names runs after the steps ([`crate::ruleset::live`]) and reports there.
fn pattern_places(sc: &Scenario, doc: &Node<'_>, files: &extends::Files) -> Vec<(String, String)> {
    let mut out = vec![];
    for (i, p) in sc.probe.iter().enumerate() {
        for (j, e) in p.path.iter().enumerate().filter(|(_, e)| sc.step.iter().any(|s| s.netns == e.netns)) {
            let mut items: Vec<String> = vec![];
            for (key, n) in [
                ("exact", e.exact.as_ref().map_or(0, Vec::len)),
                ("includes", e.includes.as_ref().map_or(0, Vec::len)),
                ("never", e.never.len()),
                ("last", usize::from(e.last.is_some())),
            ] {
                items.extend((0..n).map(|k| crate::ruleset::check::pattern_item(i, j, key, k)));
            }
            for item in items {
                let d = files.diagnostic(span_of(doc, &parse_item(&item)), String::new());
                out.push((item, format!("{}:{}:{}", d.file.display(), d.line, d.column)));
            }
        }
    }
    out
}

/// Where each item the lab builds is written, for an error the kernel gives at run time
/// ([`crate::firewall::located::Source::place`]): `route[i]`, `bridge[i]`, and each end of a
/// veth, `veth[i].a` and `veth[i].b`.
fn item_places(sc: &Scenario, doc: &Node<'_>, files: &extends::Files) -> Vec<(String, String)> {
    let items = (0..sc.route.len())
        .map(|i| format!("route[{i}]"))
        .chain((0..sc.bridge.len()).map(|i| format!("bridge[{i}]")))
        .chain((0..sc.veth.len()).flat_map(|i| [format!("veth[{i}].a"), format!("veth[{i}].b")]));
    items
        .map(|item| {
            let d = files.diagnostic(span_of(doc, &parse_item(&item)), String::new());
            let at = format!("{}:{}:{}", d.file.display(), d.line, d.column);
            (item, at)
        })
        .collect()
}

/// Per netns and sysctl key: `(netns, key, file, line)` of the key.
fn sysctl_lines(doc: &Node<'_>, files: &extends::Files) -> Vec<(String, String, PathBuf, usize)> {
    let mut out = vec![];
    let Some(DeValue::Array(all)) = child(doc, &Step::Key("netns".into())).map(Spanned::get_ref) else { return out };
    for n in all {
        let Some(name) = child(n, &Step::Key("name".into())).and_then(|v| v.get_ref().as_str()) else { continue };
        let Some(DeValue::Table(t)) = child(n, &Step::Key("sysctls".into())).map(Spanned::get_ref) else { continue };
        for (k, _) in t.iter() {
            let (file, line) = files.line_of(k.span().start);
            out.push((name.to_string(), k.get_ref().to_string(), file.to_path_buf(), line));
        }
    }
    out
}

/// Per probe: where each of its expectations is, for failures to cite
/// ([`crate::firewall::located::Source::locate`]): each `[[probe.path]]`, `[[probe.addr]]` and
/// `[[probe.conntrack]]` entry's first line, the line of `answer`, `replies` and `answered_by`,
/// and the probe's own (key `probe`: the line of its first key).
fn probe_lines(doc: &Node<'_>, files: &extends::Files) -> Vec<crate::firewall::located::ProbeEntryAt> {
    let mut out = vec![];
    let Some(DeValue::Array(all)) = child(doc, &Step::Key("probe".into())).map(Spanned::get_ref) else { return out };
    let first_line = |n: &Node<'_>| -> Option<(PathBuf, usize)> {
        let start = match n.get_ref() {
            DeValue::Table(t) => t.iter().map(|(k, _)| k.span().start).min()?,
            _ => n.span().start,
        };
        let (file, line) = files.line_of(start);
        Some((file.to_path_buf(), line))
    };
    for (i, p) in all.iter().enumerate() {
        let DeValue::Table(t) = p.get_ref() else { continue };
        if let Some((file, line)) = first_line(p) {
            out.push((i, "probe".to_string(), None, file, line));
        }
        for (k, v) in t.iter() {
            let key = k.get_ref().to_string();
            match (key.as_str(), v.get_ref()) {
                ("path" | "addr" | "conntrack", DeValue::Array(entries)) => {
                    for (j, e) in entries.iter().enumerate() {
                        if let Some((file, line)) = first_line(e) {
                            out.push((i, key.clone(), Some(j), file, line));
                        }
                    }
                }
                ("answer" | "replies" | "answered_by", _) => {
                    let (file, line) = files.line_of(k.span().start);
                    out.push((i, key, None, file.to_path_buf(), line));
                }
                _ => {}
            }
        }
    }
    out
}

/// A value of the parsed document, with its byte span.
pub(super) type Node<'i> = Spanned<DeValue<'i>>;

/// One step of a path into the document: a key of a table or an index of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `veth[2].b.netns` for its steps.
fn item_name(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        match st {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(&key_item(k));
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A key as an item names it: as it is when it is a plain word, else quoted as Rust quotes a
/// string (`sysctls."net.ipv4.ip_forward"`).
pub(in crate::scenario) fn key_item(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// The steps of `veth[2].b.netns` (or of `netns[0].sysctls."net.ipv4.ip_forward"`).
fn parse_item(item: &str) -> Vec<Step> {
    let mut steps = vec![];
    let mut rest = item;
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => rest = &rest[1..],
            '"' => {
                let (key, after) = unquote(&rest[1..]);
                steps.push(Step::Key(key));
                rest = after;
            }
            '[' => {
                let end = rest.find(']').unwrap_or(rest.len());
                if let Ok(i) = rest[1..end].parse() {
                    steps.push(Step::Index(i));
                }
                rest = rest.get(end + 1..).unwrap_or("");
            }
            _ => {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                steps.push(Step::Key(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
    }
    steps
}

/// The string `{:?}` wrote, from after its opening quote; and what follows its closing one.
fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some('u') => {
                    let hex: String = chars.by_ref().map(|(_, h)| h).skip(1).take_while(|h| *h != '}').collect();
                    out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, "")
}

fn child<'a, 'i>(v: &'a Node<'i>, step: &Step) -> Option<&'a Node<'i>> {
    match (v.get_ref(), step) {
        (DeValue::Table(t), Step::Key(k)) => t.get(k.as_str()),
        (DeValue::Array(a), Step::Index(i)) => a.get(*i),
        _ => None,
    }
}

fn walk<'a, 'i>(root: &'a Node<'i>, steps: &[Step]) -> Option<&'a Node<'i>> {
    steps.iter().try_fold(root, |v, st| child(v, st))
}

fn walk_mut<'a, 'i>(root: &'a mut Node<'i>, steps: &[Step]) -> Option<&'a mut Node<'i>> {
    let mut cur = root;
    for st in steps {
        cur = match (cur.get_mut(), st) {
            (DeValue::Table(t), Step::Key(k)) => t.get_mut(k.as_str())?,
            (DeValue::Array(a), Step::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The span of the value at `steps`, or of its deepest ancestor in the file (a value left to
/// its default is not in the file: its table stands for it).
fn span_of(root: &Node<'_>, steps: &[Step]) -> Range<usize> {
    let mut cur = root;
    for st in steps {
        match child(cur, st) {
            Some(c) => cur = c,
            None => break,
        }
    }
    cur.span()
}

/// The deepest entry whose value (or key: `true`) has exactly `span`.
fn find_span(v: &Node<'_>, span: &Range<usize>, path: &mut Vec<Step>, best: &mut Option<(Vec<Step>, bool)>) {
    let deeper = |best: &Option<(Vec<Step>, bool)>, len: usize| best.as_ref().is_none_or(|(p, _)| p.len() < len);
    if v.span() == *span && deeper(best, path.len()) {
        *best = Some((path.clone(), false));
    }
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, c) in t.iter() {
                path.push(Step::Key(k.get_ref().to_string()));
                if k.span() == *span && deeper(best, path.len()) {
                    *best = Some((path.clone(), true));
                }
                find_span(c, span, path, best);
                path.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(Step::Index(i));
                find_span(c, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The `quoted` parts of a message.
fn backticked(s: &str) -> impl Iterator<Item = &str> {
    s.split('`').skip(1).step_by(2)
}

/// Where an error at `span` is: the path of the value (or, `true`, of the key) it is about. An
/// error about an element of an array of strings (a bad hook, CIDR or backend) carries the span
/// of the array: the element is the one the message quotes.
fn locate(root: &Node<'_>, span: &Range<usize>, message: &str) -> Option<(Vec<Step>, bool)> {
    let mut best = None;
    find_span(root, span, &mut vec![], &mut best);
    let (mut path, key) = best?;
    if !key
        && let Some(DeValue::Array(a)) = walk(root, &path).map(Spanned::get_ref)
        && let Some(i) = backticked(message).find_map(|t| a.iter().position(|e| e.get_ref().as_str() == Some(t)))
    {
        path.push(Step::Index(i));
    }
    Some((path, key))
}

/// Deserialize the document, collecting every type error rather than the first: after each
/// error the offending value is cut from a working copy (a table missing a field goes whole)
/// and deserialization runs again. A "missing field" for a field cut that way is not reported.
///
/// Each round deserializes the whole document again: the rounds are bounded by the text's
/// size (`len`, in bytes), so a large file full of errors answers in bounded time with the
/// first of them.
fn deserialize_all(doc: &Node<'_>, len: usize) -> Result<Scenario, Vec<(Range<usize>, String)>> {
    /// Bytes deserialized, summed over the rounds, beyond which no more round is run.
    const WORK: usize = 8 << 20;
    let rounds = (WORK / len.max(1)).clamp(8, 500);
    let mut work = doc.clone();
    let mut found: Vec<(Range<usize>, String)> = vec![];
    let mut cut: Vec<(Range<usize>, String)> = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for round in 0.. {
        if round == rounds {
            let more = "more problems may follow: fix these first (netpath stops looking in a file this large)";
            found.push((found.last().map_or(0..0, |(s, _)| s.clone()), more.to_string()));
            break;
        }
        let e = match Scenario::deserialize(work.clone().into_deserializer()) {
            Ok(sc) if found.is_empty() => return Ok(sc),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        let message = e.message().to_string();
        let Some(span) = e.span() else {
            found.push((0..0, message));
            break;
        };
        if !seen.insert((span.start, span.end, message.clone())) {
            break;
        }
        let missing = message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')).map(str::to_string);
        let after_cut = missing.as_ref().is_some_and(|m| cut.contains(&(span.clone(), m.clone())));
        let (shown, suggested) = polish(&message);
        if !after_cut {
            let (at, item) = match locate(doc, &span, &message) {
                // An unknown key: the key is where it is, its table is the item.
                Some((path, true)) => (span.clone(), item_name(path.split_last().map_or(&[][..], |(_, p)| p))),
                Some((path, false)) => (span_of(doc, &path), item_name(&path)),
                None => (span.clone(), String::new()),
            };
            found.push((at, Problem { item, message: shown }.to_string()));
        }
        let Some((path, key)) = locate(&work, &span, &message) else { break };
        // A misspelt key: the field it was meant to be is not missing on top of that.
        if key
            && let Some(meant) = suggested
            && let Some((_, parent)) = path.split_last()
            && let Some(table) = walk(&work, parent)
        {
            cut.push((table.span(), meant));
        }
        if path.is_empty() {
            // The root lacks a field: `name` is its only required one.
            match (work.get_mut(), missing.as_deref()) {
                (DeValue::Table(t), Some("name")) => {
                    t.insert(Spanned::new(0..0, "name".into()), Spanned::new(0..0, DeValue::String("".into())));
                    continue;
                }
                _ => break,
            }
        }
        if !cut_at(&mut work, &path, &mut cut) {
            break;
        }
    }
    if found.is_empty() {
        found.push((0..0, "the file does not describe a scenario".to_string()));
    }
    Err(found)
}

/// Remove the value at `path` from its table or array; note `(table span, key)` of what a table lost.
fn cut_at(root: &mut Node<'_>, path: &[Step], cut: &mut Vec<(Range<usize>, String)>) -> bool {
    let Some((last, parent)) = path.split_last() else { return false };
    let Some(parent) = walk_mut(root, parent) else { return false };
    let parent_span = parent.span();
    match (parent.get_mut(), last) {
        (DeValue::Table(t), Step::Key(k)) => {
            cut.push((parent_span, k.clone()));
            t.remove(k.as_str()).is_some()
        }
        (DeValue::Array(a), Step::Index(i)) if *i < a.len() => {
            *a = a.iter().enumerate().filter(|(j, _)| j != i).map(|(_, e)| e.clone()).collect();
            true
        }
        _ => false,
    }
}

/// Serde's message, with a suggestion for a misspelt key (and the key suggested).
fn polish(message: &str) -> (String, Option<String>) {
    if message.starts_with("unknown field `") {
        let words: Vec<&str> = backticked(message).collect();
        if let Some((unknown, valid)) = words.split_first()
            && let Some((d, best)) = valid.iter().map(|v| (edit_distance(unknown, v), *v)).min()
            && d <= 2
            && d < unknown.len()
        {
            return (format!("{message} (did you mean `{best}`?)"), Some(best.to_string()));
        }
    }
    (message.to_string(), None)
}

/// The Levenshtein distance of `a` and `b`, in characters: for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
