//! The files a scenario reads: the scenario file itself, the bases it `extends` and its steps'
//! `stdin_file`s. A scenario file comes from a pull request and netpath runs as root, so each
//! read is bounded and typed before it happens:
//!
//! - only regular files: a device (`/dev/zero` never ends), a FIFO (blocks forever), a socket
//!   or a folder is refused from its metadata, before it is opened; the open itself does not
//!   block (`O_NONBLOCK`) and the opened file's type is checked again, so a FIFO swapped in
//!   between the two cannot hang a run;
//! - at most [`MAX_FILE_BYTES`] of it;
//! - the bases and `stdin_file`s only from the folder tree of the scenario file netpath was
//!   given ([`confine`]): `../../etc/shadow`, `/etc/shadow` or a symlink leading out of the
//!   tree are refused, whatever reads them;
//! - text is UTF-8, and where it is not, the error names the line and column of the first byte
//!   that is not.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::line_col;

/// The most bytes netpath reads of any file a scenario names (the scenario file, a base it
/// `extends`, a step's `stdin_file`): 1 MiB. The bundled scenarios are below 40 KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It could not be read, or is not a file netpath reads: the reason.
    Refused(String),
    /// It is not UTF-8: the line and column of the first byte that is not.
    NotUtf8 {
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        /// The reason, with the byte.
        message: String,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Refused(m) => f.write_str(m),
            ReadError::NotUtf8 { line, column, message } => write!(f, "{line}:{column}: {message}"),
        }
    }
}

/// What kind of file `meta` describes, if it is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a folder")
    } else if t.is_fifo() {
        Some("a FIFO (reading it would wait for a writer)")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("something else")
    }
}

/// Why `path` is not a file netpath reads for a scenario (`None` when it is one): it is missing,
/// is not a regular file, or is larger than [`MAX_FILE_BYTES`]. Looks at its metadata only. The
/// reason follows the path in a message: `PATH: REASON`.
pub fn file_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(e.to_string()),
        Ok(meta) => kind_problem(&meta),
    }
}

fn kind_problem(meta: &Metadata) -> Option<String> {
    if let Some(kind) = not_regular(meta) {
        return Some(format!("not a regular file but {kind}: netpath reads only regular files"));
    }
    (meta.len() > MAX_FILE_BYTES).then(|| too_big(meta.len()))
}

fn too_big(len: u64) -> String {
    format!("{len} bytes, more than the {} KiB netpath reads of a file a scenario names", MAX_FILE_BYTES / 1024)
}

/// The bytes of `path`, a regular file of at most [`MAX_FILE_BYTES`]: refused from its metadata
/// before it is opened, opened without blocking (and without following a final symlink when
/// `no_follow`: a path already made canonical), checked again once open. `Err` is the reason,
/// to follow the path in a message.
pub fn read_bytes(path: &Path, no_follow: bool) -> Result<Vec<u8>, String> {
    if let Some(problem) = file_problem(path) {
        return Err(problem);
    }
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file: File = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| e.to_string())?;
    // What was checked may not be what was opened: check the open file itself.
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if let Some(problem) = kind_problem(&meta) {
        return Err(problem);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// `bytes` as text, or where the first byte that is not UTF-8 is.
pub fn utf8(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let (line, column) = line_col(valid, at);
        ReadError::NotUtf8 {
            line,
            column,
            message: format!("byte 0x{:02x} is not UTF-8: a scenario file is UTF-8 text", bytes[at]),
        }
    })
}

/// The text of `path`, read as [`read_bytes`] reads it.
pub fn read_text(path: &Path, no_follow: bool) -> Result<String, ReadError> {
    utf8(read_bytes(path, no_follow).map_err(ReadError::Refused)?)
}

/// The folder tree a scenario file may read from: the folder of `origin`, the file netpath was
/// given (the current folder for a bare file name), symlinks resolved.
pub fn root_of(origin: &Path) -> Result<PathBuf, String> {
    let dir = match origin.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    dir.canonicalize().map_err(|e| format!("cannot resolve the folder {} of the scenario file: {e}", dir.display()))
}

/// Why [`confine`] refused a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    /// It cannot be resolved (it does not exist): the OS's reason.
    Unresolved(String),
    /// It resolves outside the scenario's folder tree.
    Outside {
        /// Where it leads, symlinks resolved.
        real: PathBuf,
        /// The folder tree it had to stay in.
        root: PathBuf,
    },
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Escape::Unresolved(why) => f.write_str(why),
            Escape::Outside { real, root } => write!(
                f,
                "leads to {}, outside {}: a scenario reads files only from the folder tree of the scenario file",
                real.display(),
                root.display()
            ),
        }
    }
}

/// `path` made canonical (symlinks resolved), if it is inside `root` (canonical itself).
pub fn confine(root: &Path, path: &Path) -> Result<PathBuf, Escape> {
    let real = path.canonicalize().map_err(|e| Escape::Unresolved(e.to_string()))?;
    if real.starts_with(root) {
        return Ok(real);
    }
    Err(Escape::Outside { real, root: root.to_path_buf() })
}

/// Each step's `stdin_file` made canonical, if it is inside the folder tree of `origin`; a
/// problem at `step[N].stdin_file` for each that leads outside it. One that does not exist is
/// left as it is, for [`Scenario::problems`](super::Scenario::problems) to report.
pub(super) fn confine_steps(sc: &mut super::Scenario, origin: &Path) -> Vec<super::Problem> {
    let mut out = vec![];
    let root = root_of(origin);
    for (i, s) in sc.step.iter_mut().enumerate() {
        let Some(f) = &s.stdin_file else { continue };
        let item = format!("step[{i}].stdin_file");
        match root.as_ref().map_err(|why| Escape::Unresolved(why.clone())).and_then(|root| confine(root, f)) {
            Ok(real) => s.stdin_file = Some(real),
            Err(Escape::Unresolved(_)) if f.symlink_metadata().is_err() => {}
            Err(Escape::Unresolved(why)) => {
                out.push(super::Problem { item, message: format!("{}: {why}", f.display()) })
            }
            Err(outside) => out.push(super::Problem { item, message: format!("`{}` {outside}", f.display()) }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netpath-input-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        dir.canonicalize().unwrap()
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = scratch("kinds");
        let ok = dir.join("ok.txt");
        std::fs::write(&ok, "hi").unwrap();
        assert_eq!(read_text(&ok, true).unwrap(), "hi");
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_text(&big, true).unwrap_err().to_string().starts_with("1048577 bytes, more than the 1024 KiB"));
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        assert!(read_text(&fifo, true).unwrap_err().to_string().contains("not a regular file but a FIFO"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(read_text(Path::new("/dev/zero"), false).unwrap_err().to_string().contains("but a device"));
        assert!(read_text(&dir, false).unwrap_err().to_string().contains("but a folder"));
        // A symlink to a device is refused from what it leads to.
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        assert!(read_text(&dir.join("zero"), false).unwrap_err().to_string().contains("but a device"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn invalid_utf8_is_located() {
        let err = utf8(b"name = \"x\"\n# caf\xc3\xa9 \xff\n".to_vec()).unwrap_err();
        assert_eq!(
            err,
            ReadError::NotUtf8 {
                line: 2,
                column: 8,
                message: "byte 0xff is not UTF-8: a scenario file is UTF-8 text".into()
            }
        );
    }

    #[test]
    fn reads_stay_in_the_scenario_folder_tree() {
        let dir = scratch("confine");
        std::fs::write(dir.join("sub/base.toml"), "").unwrap();
        let inside = confine(&dir, &dir.join("sub/../sub/base.toml")).unwrap();
        assert_eq!(inside, dir.join("sub/base.toml"));
        let outside = confine(&dir.join("sub"), &dir.join("sub/../sub/.."));
        assert_eq!(outside, Err(Escape::Outside { real: dir.clone(), root: dir.join("sub") }));
        assert!(matches!(confine(&dir, Path::new("/etc/passwd")), Err(Escape::Outside { .. })));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("sub/link")).unwrap();
        let err = confine(&dir, &dir.join("sub/link")).unwrap_err().to_string();
        // The scratch folder is under $TMPDIR, which a guest puts in its output folder.
        let root = dir.canonicalize().unwrap();
        assert!(err.starts_with(&format!("leads to /etc/passwd, outside {}", root.display())), "{err}");
        assert!(matches!(confine(&dir, &dir.join("nope")), Err(Escape::Unresolved(_))));
        assert_eq!(root_of(Path::new("x.toml")).unwrap(), std::env::current_dir().unwrap().canonicalize().unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
