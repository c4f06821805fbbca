//! Reading an input (an msen trace or a perf.data) into memory, from a path,
//! a FIFO, a character device or stdin (`-`).
//!
//! Inputs are read, not memory-mapped: a mapped file that another process
//! truncates while msen reads it kills msen with SIGBUS, and a FIFO cannot be
//! mapped at all. Reading a file that is already in the page cache costs a
//! copy at memory speed (about 0.1 s per GB here); the resident size is the
//! same as a populated map's.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an input could not be read. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path} does not exist; record one with `msen record -- COMMAND`, or name a trace or perf.data with -i FILE")]
    NotFound { path: PathBuf },
    #[error("{path} is a directory; name a trace file (msen record's -o) or a perf.data inside it")]
    Directory { path: PathBuf },
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
}

/// The path that means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Read all of `path` (`-` is stdin). A regular file is read at the size it
/// has when opened; a stream is read to its end.
pub fn read_all(path: &Path) -> Result<Vec<u8>, SourceError> {
    let read_err = |err| SourceError::Read { path: path.to_path_buf(), err };
    if is_stdin(path) {
        let mut v = Vec::new();
        std::io::stdin().lock().read_to_end(&mut v).map_err(read_err)?;
        return Ok(v);
    }
    let mut f = std::fs::File::open(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound { path: path.to_path_buf() },
        _ => read_err(err),
    })?;
    let md = f.metadata().map_err(read_err)?;
    if md.is_dir() {
        return Err(SourceError::Directory { path: path.to_path_buf() });
    }
    let mut v = Vec::new();
    if md.is_file() {
        // Exactly the length seen now: a file still growing (a live capture)
        // is read as it was, and one cut meanwhile reads short, which the
        // readers treat as a truncated file.
        v.reserve_exact(md.len() as usize);
        f.take(md.len()).read_to_end(&mut v).map_err(read_err)?;
    } else {
        f.read_to_end(&mut v).map_err(read_err)?;
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_directory_are_typed() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(read_all(&d.path().join("nope")), Err(SourceError::NotFound { .. })));
        assert!(matches!(read_all(d.path()), Err(SourceError::Directory { .. })));
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_all(&p).unwrap(), b"abc");
    }
}
