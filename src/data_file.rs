//! Files that the extension keeps in the data directory, shared by the server's backends through
//! memory maps (the snowflake high-water marks, the visit rings).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the file at `path` for reading and writing, creating it empty when it does not exist.
pub fn open_or_create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // The server's umask makes this 0600, or 0640 where the data directory allows group
        // access, as for PostgreSQL's own files.
        .mode(0o640)
        .open(path)
}
