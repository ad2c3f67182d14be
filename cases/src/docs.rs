//! The repository's documentation (README.md and the chapters in docs/) as the tests read it.
//! An example a page shows must be what netpath does: each test finds its example by the marker
//! on the block's first line, and fails naming the file when the example is gone.

use std::path::{Path, PathBuf};

/// A fenced code block of a documentation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The file, relative to the repository (`docs/expectations.md`).
    pub file: String,
    /// The 1-based line of the block's first line of text (the one after the opening fence).
    pub line: usize,
    /// What follows the opening fence (`toml`, `rust,no_run`, or empty).
    pub lang: String,
    /// The lines between the fences, each ending in a newline.
    pub text: String,
}

impl Block {
    /// The block's text preceded by blank lines, so that a loader's line numbers are the
    /// documentation file's (`docs/x.md:42:5` points into the page).
    pub fn text_at_its_lines(&self) -> String {
        format!("{}{}", "\n".repeat(self.line - 1), self.text)
    }

    /// Where the block starts, as `FILE:LINE`.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The root of the repository.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A documentation file's text, by its path relative to the repository (`README.md`,
/// `docs/scenarios.md`).
pub fn doc_text(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e} (the docs moved?)"))
}

/// README.md and every chapter of docs/, relative to the repository, in name order.
pub fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let dir = repo().join("docs");
    let mut chapters: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

/// The fenced blocks of `text` (the file `file`), in order. A fence is three backticks at the
/// start of a line; what follows the opening one is the block's language.
pub fn fenced_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut blocks = vec![];
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                let lang = lang.trim().to_string();
                open = Some(Block { file: file.to_string(), line: i + 2, lang, text: String::new() });
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is never closed: {open:?}");
    blocks
}

/// The fenced block of the documentation file `rel` whose first line starts with `marker`
/// (`# example: answer kinds`); the test fails naming the file when there is none or two.
pub fn example(rel: &str, marker: &str) -> Block {
    let blocks: Vec<Block> =
        fenced_blocks(rel, &doc_text(rel)).into_iter().filter(|b| b.text.starts_with(marker)).collect();
    match <[Block; 1]>::try_from(blocks) {
        Ok([b]) => b,
        Err(found) => panic!("{rel} has {} blocks whose first line starts with `{marker}`, not one", found.len()),
    }
}

/// The text of `rel` from `marker` on: where a test finds the example that follows a phrase.
pub fn after(rel: &str, marker: &str) -> String {
    let text = doc_text(rel);
    let start = text.find(marker).unwrap_or_else(|| panic!("{rel} no longer says `{marker}`"));
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_their_language_and_first_line() {
        let text = "intro\n```toml\nname = \"x\"\n```\n\n```\nplain\n```\n";
        let blocks = fenced_blocks("t.md", text);
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].line, blocks[0].lang.as_str(), blocks[0].text.as_str()), (3, "toml", "name = \"x\"\n"));
        assert_eq!((blocks[1].line, blocks[1].lang.as_str(), blocks[1].text.as_str()), (7, "", "plain\n"));
        assert_eq!(blocks[0].text_at_its_lines().lines().count(), 3);
        assert_eq!(blocks[0].place(), "t.md:3");
    }

    #[test]
    #[should_panic(expected = "never closed")]
    fn an_unclosed_block_is_named() {
        fenced_blocks("t.md", "```toml\nname = 1\n");
    }
}
