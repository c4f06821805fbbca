//! An output file that replaces its destination only once it is complete.
//!
//! `msen import x.data -o x.data` or `msen export t.msen --perf-data t.msen`
//! used to truncate the input before reading it. Writing to a temporary file
//! in the destination's directory and renaming it over the destination at
//! the end means the destination holds either its old content or the whole
//! new one, whatever fails in between (and an input that is also the output
//! stays readable until the rename, as an open file keeps its inode).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct OutFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    committed: bool,
}

impl OutFile {
    /// Create a temporary file (mode 0600) beside `dest`.
    pub fn create(dest: &Path) -> io::Result<OutFile> {
        if dest.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is a directory; name a file to write"));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let mut n = 0u32;
        loop {
            let tmp = dir.join(format!(".{name}.msen-tmp.{}.{n}", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
                Ok(file) => return Ok(OutFile { dest: dest.to_path_buf(), tmp, file, committed: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The temporary file to write to.
    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Make the content durable and move it over the destination.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn destination_changes_only_on_commit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out");
        std::fs::write(&p, b"old").unwrap();
        {
            let o = OutFile::create(&p).unwrap();
            o.file().unwrap().write_all(b"half").unwrap();
            // dropped without commit: the old content stays, no temp left
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let o = OutFile::create(&p).unwrap();
        o.file().unwrap().write_all(b"new").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert!(OutFile::create(d.path()).is_err());
    }
}
