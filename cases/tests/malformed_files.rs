//! Every file in `tests/malformed/` fails to load with a clear error at the right place, and
//! nothing panics. Each file says what it expects on its first lines, one problem a line:
//! `# expect: LINE:COL phrase`; the loader must report exactly those problems, in file order,
//! each as `PATH:LINE:COL: ...phrase...`.

use std::path::{Path, PathBuf};

use rstest::rstest;

struct Expect {
    line: usize,
    col: usize,
    phrase: String,
}

/// The `# expect: LINE:COL phrase` lines the file starts with.
fn expectations(path: &Path, text: &str) -> Vec<Expect> {
    text.lines()
        .map_while(|l| l.strip_prefix("# expect:"))
        .map(|l| {
            let parsed = l.trim().split_once(' ').and_then(|(at, phrase)| {
                let (line, col) = at.split_once(':')?;
                Some(Expect { line: line.parse().ok()?, col: col.parse().ok()?, phrase: phrase.trim().to_string() })
            });
            parsed.unwrap_or_else(|| panic!("{}: want `# expect: LINE:COL phrase`, got `# expect:{l}`", path.display()))
        })
        .collect()
}

fn malformed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

#[rstest]
fn malformed_file(#[files("tests/malformed/*.toml")] path: PathBuf) {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want = expectations(&path, &text);
    assert!(!want.is_empty(), "{}: the first line must be `# expect: LINE:COL phrase`", path.display());

    let loaded = std::panic::catch_unwind(|| netpath::Scenario::load(&path))
        .unwrap_or_else(|_| panic!("{}: loading it panicked", path.display()));
    let err = match loaded {
        Ok(_) => panic!("{} loaded, but it is malformed", path.display()),
        Err(e) => e.to_string(),
    };
    let got: Vec<&str> = err.lines().collect();
    assert_eq!(got.len(), want.len(), "{}: want {} problem(s), got:\n{err}", path.display(), want.len());
    for (line, w) in got.iter().zip(&want) {
        let at = format!("{}:{}:{}: ", path.display(), w.line, w.col);
        assert!(line.starts_with(&at), "want a line starting `{at}`, got:\n{err}");
        assert!(line.contains(&w.phrase), "want `{}` in:\n{line}", w.phrase);
    }
}

#[test]
fn there_are_enough_malformed_files() {
    let files = std::fs::read_dir(malformed_dir())
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml")))
        .count();
    assert!(files >= 12, "tests/malformed has {files} files, want at least 12");
}
