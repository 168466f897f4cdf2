//! `log.dir`: the agent's lines go to `<dir>/patroni.log`, rotated as Python's
//! `RotatingFileHandler` rotates it (Patroni's): when a line would take the file past
//! `file_size`, `patroni.log.N-1` becomes `.N`, ..., the file becomes `.1`, and a new one is
//! started; `file_num` rotated files are kept (none: the file is emptied instead). Files get
//! `mode` (else 0666 less the umask). Written through a non-blocking writer
//! (`tracing_appender`): a stalled log disk drops lines rather than hold the lease keeper.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "patroni.log";

pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    mode: Option<u32>,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (appends to) `<dir>/patroni.log`; `Err` names the file.
    pub fn open(dir: &Path, max_size: u64, keep: u32, mode: Option<u32>) -> Result<Self, String> {
        let path = dir.join(FILE_NAME);
        let file = open(&path, mode).map_err(|e| format!("log.dir: {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path,
            max_size,
            keep,
            mode,
            file,
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep > 0 {
            let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = open(&self.path, self.mode)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open(path: &Path, mode: Option<u32>) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    if let Some(m) = mode {
        o.mode(m);
    }
    let f = o.open(path)?;
    // An existing file keeps its mode unless one is configured (Patroni chmods it).
    if let Some(m) = mode {
        f.set_permissions(std::fs::Permissions::from_mode(m))?;
    }
    Ok(f)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Python rolls over before a record that would exceed the size (a first record
        // larger than the limit still goes into a fresh file).
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            if let Err(e) = self.rotate() {
                // Keep logging into the current file rather than lose lines.
                eprintln!("pgkeel: rotating {}: {e}", self.path.display());
            }
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_as_python_does_and_keeps_file_num_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), 20, 2, Some(0o640)).unwrap();
        for i in 0..5 {
            f.write_all(format!("line {i} -----\n").as_bytes()).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("patroni.log"), "line 4 -----\n");
        assert_eq!(read("patroni.log.1"), "line 3 -----\n");
        assert_eq!(read("patroni.log.2"), "line 2 -----\n");
        assert!(!dir.path().join("patroni.log.3").exists());
        let mode = std::fs::metadata(dir.path().join("patroni.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Appends to what is there at the next start.
        let mut f = RotatingFile::open(dir.path(), 100, 2, None).unwrap();
        f.write_all(b"again\n").unwrap();
        assert_eq!(read("patroni.log"), "line 4 -----\nagain\n");
    }

    #[test]
    fn with_no_rotated_files_the_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), 10, 0, None).unwrap();
        f.write_all(b"12345678\n").unwrap();
        f.write_all(b"abcdefgh\n").unwrap();
        let text = std::fs::read_to_string(dir.path().join("patroni.log")).unwrap();
        assert_eq!(text, "abcdefgh\n");
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_named() {
        let e = RotatingFile::open(Path::new("/nonexistent/dir"), 10, 1, None)
            .err()
            .unwrap();
        assert!(e.contains("log.dir: /nonexistent/dir/patroni.log"), "{e}");
    }
}
