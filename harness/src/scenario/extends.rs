//! `extends = "base.toml"`: a scenario file built on another one. The file's own document is
//! merged over its base's (which may extend a base of its own):
//!
//! - tables merge key by key, the extending file's value winning;
//! - `[[netns]]`, `[[probe]]` and `[[step]]` entries merge by `name`: an entry naming one of
//!   the base's merges into it key by key, any other is added after the base's;
//! - every other array of tables (`[[veth]]`, `[[bridge]]`, `[[route]]`, `[[probe.path]]`, ...)
//!   is appended to the base's;
//! - any other value (a string, a number, a plain array like `backends`) replaces the base's.
//!
//! Nothing of a base can be removed: a base holds what all its extensions share.
//!
//! The files' texts are laid end to end in one string, each parsed on its own, so every span of
//! the merged document says which file, line and column a value came from: diagnostics point
//! into the base where the value is the base's, and name the extending file too.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::file::Node;
use super::{Diagnostic, input, line_col};

/// The arrays of tables whose entries merge by their `name`.
const BY_NAME: [&str; 3] = ["netns", "probe", "step"];

/// A scenario file and the bases it extends, in that order, their texts one after another.
pub(super) struct Files {
    /// Every file's text, each followed by a newline.
    pub text: String,
    parts: Vec<Part>,
    /// Where each newline of `text` is: a line is found by a binary search, so a file with
    /// thousands of located entries is not read from its start for each.
    newlines: Vec<usize>,
}

struct Part {
    file: PathBuf,
    /// Its folder, relative to the extending file's: what its relative paths are relative to.
    dir: PathBuf,
    /// Where its text is in [`Files::text`].
    range: Range<usize>,
}

impl Files {
    /// `text` (the file `origin`) and, following `extends`, each base it is built on. A base
    /// that cannot be read, that is not a string, or that leads back to a file of the chain is
    /// a diagnostic at the `extends` that names it.
    pub fn read(text: &str, origin: &Path) -> Result<Files, Vec<Diagnostic>> {
        let mut files = Files { text: String::new(), parts: vec![], newlines: vec![] };
        let mut next = Some((origin.to_path_buf(), PathBuf::new(), text.to_string()));
        while let Some((file, dir, own)) = next.take() {
            let start = files.text.len();
            files.text.push_str(&own);
            files.text.push('\n');
            files.parts.push(Part { file, dir, range: start..start + own.len() });
            next = files.base_of_last()?;
        }
        files.newlines = files.text.match_indices('\n').map(|(i, _)| i).collect();
        Ok(files)
    }

    /// The base the last file read names, read: `None` without `extends` (or when the file
    /// does not parse: its own parse will say why).
    fn base_of_last(&self) -> Result<Option<(PathBuf, PathBuf, String)>, Vec<Diagnostic>> {
        let part = self.parts.last().expect("a file was read");
        let Ok(doc) = DeTable::parse(&self.text[part.range.clone()]) else { return Ok(None) };
        let Some(value) = doc.get_ref().get("extends") else { return Ok(None) };
        let at = shifted(value.span(), part.range.start);
        let fail = |message: String| Err(vec![self.diagnostic(at.clone(), message)]);
        let Some(name) = value.get_ref().as_str() else {
            return fail("`extends` must be a string: the path of the base file, relative to this file".into());
        };
        let path = part.file.parent().unwrap_or(Path::new("")).join(name);
        let same = |p: &Path| same_file(p, &path);
        if let Some(again) = self.parts.iter().position(|p| same(&p.file)) {
            let chain: Vec<String> = self.parts[again..]
                .iter()
                .map(|p| p.file.display().to_string())
                .chain([path.display().to_string()])
                .collect();
            return fail(format!("`extends = \"{name}\"` makes a cycle: {}", chain.join(" extends ")));
        }
        let cannot = |why: String| fail(format!("`extends = \"{name}\"`: cannot read the base file {why}"));
        // Only from the folder tree of the file netpath was given, and only a bounded regular file.
        let root = match input::root_of(&self.parts[0].file) {
            Ok(root) => root,
            Err(why) => return fail(format!("`extends = \"{name}\"`: {why}")),
        };
        let real = match input::confine(&root, &path) {
            Ok(real) => real,
            Err(input::Escape::Unresolved(why)) => return cannot(format!("{}: {why}", path.display())),
            Err(outside) => return fail(format!("`extends = \"{name}\"` {outside}")),
        };
        match input::read_text(&real, true) {
            Ok(text) => Ok(Some((path, part.dir.join(Path::new(name).parent().unwrap_or(Path::new(""))), text))),
            Err(input::ReadError::Refused(why)) => cannot(format!("{}: {why}", path.display())),
            Err(input::ReadError::NotUtf8 { line, column, message }) => {
                let message = format!("{message} (in the base of {})", self.parts[0].file.display());
                Err(vec![Diagnostic { file: path, line, column, message }])
            }
        }
    }

    /// Each file's text, with where it starts in [`Files::text`] and its folder relative to
    /// the extending file's, the extending file first.
    pub fn texts(&self) -> impl Iterator<Item = (&str, usize, &Path)> {
        self.parts.iter().map(|p| (&self.text[p.range.clone()], p.range.start, p.dir.as_path()))
    }

    /// The file that `offset` of [`Files::text`] is in, with the text's start and what extends it.
    fn part_of(&self, offset: usize) -> (usize, &Part) {
        let i = self.parts.iter().rposition(|p| p.range.start <= offset).unwrap_or(0);
        (i, &self.parts[i])
    }

    /// A diagnostic at `span` of [`Files::text`]: in the file the span is in, at its line and
    /// column there; in a base, it names the file that extends it too.
    pub fn diagnostic(&self, span: Range<usize>, message: String) -> Diagnostic {
        let (i, part) = self.part_of(span.start);
        let (line, column) = self.line_col(part, span.start);
        let message = match i {
            0 => message,
            _ => format!("{message} (in the base of {})", self.parts[0].file.display()),
        };
        Diagnostic { file: part.file.clone(), line, column, message }
    }

    /// The file and 1-based line that `offset` of [`Files::text`] is at.
    pub fn line_of(&self, offset: usize) -> (&Path, usize) {
        let (_, part) = self.part_of(offset);
        (&part.file, self.line_col(part, offset).0)
    }

    /// [`line_col`] of `offset` of [`Files::text`] in `part`, from the newline index (before
    /// it is made, from the text).
    fn line_col(&self, part: &Part, offset: usize) -> (usize, usize) {
        let offset = offset.clamp(part.range.start, part.range.end);
        if self.newlines.is_empty() {
            return line_col(&self.text[part.range.clone()], offset - part.range.start);
        }
        let before = |at: usize| self.newlines.partition_point(|&n| n < at);
        let line = before(offset) - before(part.range.start) + 1;
        let line_start = match before(offset) {
            0 => 0,
            k => self.newlines[k - 1] + 1,
        }
        .max(part.range.start);
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        (line, self.text[line_start..end].chars().count() + 1)
    }
}

/// Whether `a` and `b` name one file (a file that does not exist is the same only by name).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn shifted(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

/// The documents of the files of a chain, the extending file first, as one document.
pub(super) fn merge<'i>(mut docs: Vec<Node<'i>>) -> Node<'i> {
    let mut merged = docs.pop().expect("at least the file itself");
    while let Some(over) = docs.pop() {
        merged = merge_value(merged, over, true);
    }
    if let DeValue::Table(t) = merged.get_mut() {
        t.remove("extends");
    }
    merged
}

/// A parsed file's document with its spans moved by `by`: where its text is in [`Files::text`].
pub(super) fn shift(v: &mut Node<'_>, by: usize) {
    if by == 0 {
        return;
    }
    match v.get_mut() {
        DeValue::Table(t) => {
            let old = std::mem::take(t);
            for (k, mut c) in old {
                shift(&mut c, by);
                t.insert(Spanned::new(shifted(k.span(), by), k.into_inner()), c);
            }
        }
        DeValue::Array(a) => a.iter_mut().for_each(|c| shift(c, by)),
        _ => {}
    }
    let span = shifted(v.span(), by);
    *v = Spanned::new(span, std::mem::replace(v.get_mut(), DeValue::Boolean(false)));
}

/// A base's document with the relative paths it holds (a step's `stdin_file`) made relative
/// to the extending file's folder instead of the base's, `dir` away.
pub(super) fn rebase_paths(doc: &mut Node<'_>, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let DeValue::Table(t) = doc.get_mut() else { return };
    let Some(DeValue::Array(steps)) = t.get_mut("step").map(Spanned::get_mut) else { return };
    for step in steps.iter_mut() {
        let DeValue::Table(s) = step.get_mut() else { continue };
        if let Some(DeValue::String(f)) = s.get_mut("stdin_file").map(Spanned::get_mut)
            && Path::new(f.as_ref()).is_relative()
        {
            *f = Cow::Owned(dir.join(f.as_ref()).to_string_lossy().into_owned());
        }
    }
}

/// `over` merged over `base` (see the module's rules); `top` for the document itself.
fn merge_value<'i>(base: Node<'i>, over: Node<'i>, top: bool) -> Node<'i> {
    let span = over.span();
    match (base.into_inner(), over.into_inner()) {
        (DeValue::Table(mut b), DeValue::Table(o)) => {
            for (k, v) in o {
                let keyed = top && BY_NAME.contains(&k.get_ref().as_ref());
                let merged = match b.remove(k.get_ref().as_ref()) {
                    Some(old) if keyed => merge_named(old, v),
                    Some(old) => merge_value(old, v, false),
                    None => v,
                };
                b.insert(k, merged);
            }
            Spanned::new(span, DeValue::Table(b))
        }
        (DeValue::Array(mut b), DeValue::Array(o)) if all_tables(&b) && all_tables(&o) => {
            for v in o {
                b.push(v);
            }
            Spanned::new(span, DeValue::Array(b))
        }
        (_, o) => Spanned::new(span, o),
    }
}

fn all_tables(a: &[Node<'_>]) -> bool {
    !a.is_empty() && a.iter().all(|v| v.get_ref().is_table())
}

/// `over`'s entries merged into `base`'s by `name`, the others appended.
fn merge_named<'i>(base: Node<'i>, over: Node<'i>) -> Node<'i> {
    let (base_span, span) = (base.span(), over.span());
    match (base.into_inner(), over.into_inner()) {
        (DeValue::Array(mut b), DeValue::Array(o)) => {
            for v in o {
                match name(&v).and_then(|n| b.iter().position(|e| name(e).as_ref() == Some(&n))) {
                    Some(i) => {
                        let slot = &mut b.as_mut()[i];
                        let old = std::mem::replace(slot, Spanned::new(0..0, DeValue::Boolean(false)));
                        *slot = merge_value(old, v, false);
                    }
                    None => b.push(v),
                }
            }
            Spanned::new(span, DeValue::Array(b))
        }
        (b, o) => merge_value(Spanned::new(base_span, b), Spanned::new(span, o), false),
    }
}

fn name<'i>(v: &Node<'i>) -> Option<Cow<'i, str>> {
    match v.get_ref() {
        DeValue::Table(t) => match t.get("name").map(Spanned::get_ref) {
            Some(DeValue::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node<'_> {
        let t = DeTable::parse(text).unwrap();
        Spanned::new(t.span(), DeValue::Table(t.into_inner()))
    }

    #[test]
    fn merge_follows_the_documented_rules() {
        let base = doc(
            "name = \"base\"\nbackends = [\"legacy\", \"nft\"]\n[[netns]]\nname = \"host\"\nsysctls = { a = \"1\" }\n[[netns]]\nname = \"c1\"\n[[veth]]\na = 1\n",
        );
        let over = doc(
            "extends = \"b.toml\"\nname = \"x\"\nbackends = [\"nft\"]\n[[netns]]\nname = \"host\"\niptables = \"r\"\nsysctls = { b = \"2\" }\n[[netns]]\nname = \"ext\"\n[[veth]]\na = 2\n",
        );
        let merged = merge(vec![over, base]);
        let DeValue::Table(t) = merged.get_ref() else { panic!() };
        assert!(t.get("extends").is_none());
        assert_eq!(t.get("name").unwrap().get_ref().as_str(), Some("x"));
        let backends = t.get("backends").unwrap().get_ref().as_array().unwrap();
        assert_eq!(backends.len(), 1);
        let netns = t.get("netns").unwrap().get_ref().as_array().unwrap();
        let names: Vec<_> = netns.iter().map(|n| name(n).unwrap().into_owned()).collect();
        assert_eq!(names, ["host", "c1", "ext"]);
        let DeValue::Table(host) = netns[0].get_ref() else { panic!() };
        assert_eq!(host.get("iptables").unwrap().get_ref().as_str(), Some("r"));
        let DeValue::Table(sysctls) = host.get("sysctls").unwrap().get_ref() else { panic!() };
        assert_eq!(sysctls.len(), 2, "tables merge key by key");
        assert_eq!(t.get("veth").unwrap().get_ref().as_array().unwrap().len(), 2, "other arrays of tables append");
    }

    /// A folder of its own under the temp dir with `files` written in it.
    fn folder(test: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netpath-extends-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const BASE: &str = "backends = [\"legacy\", \"nft\"]\n\n[[netns]]\nname = \"a\"\niptables = \"\"\"\n*filter\nCOMMIT\n\"\"\"\n\n[[netns]]\nname = \"b\"\n\n[[veth]]\na = { netns = \"a\", name = \"eth0\", addresses = [\"10.9.0.1/24\"] }\nb = { netns = \"b\", name = \"eth0\", addresses = [\"10.9.0.2/24\"] }\n\n[[step]]\nname = \"s\"\nnetns = \"a\"\nprogram = \"cat\"\nstdin_file = \"input.txt\"\n";
    const PROBE: &str = "[[probe]]\nname = \"ping\"\nkind = \"icmp\"\nfrom = \"a\"\nto = \"10.9.0.2\"\n";

    #[test]
    fn a_file_gets_its_bases_topology_rulesets_and_files() {
        let top = format!(
            "extends = \"base/lab.toml\"\nname = \"x\"\n\n[[netns]]\nname = \"b\"\nsysctls = {{ \"net.ipv4.ip_forward\" = \"1\" }}\n\n{PROBE}"
        );
        let dir = folder("ok", &[("x.toml", &top), ("base/lab.toml", BASE), ("base/input.txt", "in")]);
        let sc = super::super::Scenario::load(&dir.join("x.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sc.backends.len(), 2);
        assert_eq!(sc.netns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(sc.netns[1].sysctls.len(), 1);
        assert_eq!((sc.veth.len(), sc.probe.len()), (1, 1));
        // The base's ruleset is at its line in the base; its step's file is beside the base.
        assert_eq!(
            sc.source.at("a", "iptables", 1),
            format!("{}:6", dir.join("x.toml").parent().unwrap().join("base/lab.toml").display())
        );
        assert_eq!(sc.step[0].stdin_file, Some(dir.join("base/input.txt")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn errors_name_the_file_a_value_is_in_and_the_one_extending_it() {
        let broken = BASE.replace("netns = \"b\", name", "netns = \"c9\", name");
        let top = format!("extends = \"base/lab.toml\"\nname = \"x\"\n\n{PROBE}");
        let dir = folder("errors", &[("x.toml", &top), ("base/lab.toml", &broken), ("base/input.txt", "in")]);
        let x = dir.join("x.toml");
        let base = dir.join("base/lab.toml");
        let err = super::super::Scenario::load(&x).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:15:", base.display())), "{err}");
        assert!(err.contains("`c9`") && err.ends_with(&format!("(in the base of {})", x.display())), "{err}");

        let missing = folder("missing", &[("x.toml", "extends = \"nope.toml\"\nname = \"x\"\n")]);
        let err = super::super::Scenario::load(&missing.join("x.toml")).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:1:11: `extends = \"nope.toml\"`: cannot read the base file {}",
                missing.join("x.toml").display(),
                missing.join("nope.toml").display()
            )),
            "{err}"
        );

        let cycle = folder(
            "cycle",
            &[("x.toml", "extends = \"y.toml\"\nname = \"x\"\n"), ("y.toml", "extends = \"x.toml\"\n")],
        );
        let (x, y) = (cycle.join("x.toml"), cycle.join("y.toml"));
        let err = super::super::Scenario::load(&x).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:1:11: `extends = \"x.toml\"` makes a cycle: {} extends {} extends {} (in the base of {})",
                y.display(),
                x.display(),
                y.display(),
                x.display(),
                x.display()
            )
        );

        let err = super::super::Scenario::from_toml("extends = 3\nname = \"x\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:1:11: `extends` must be a string"), "{err}");
        for d in [dir, missing, cycle] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
