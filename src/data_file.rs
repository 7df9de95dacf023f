//! Files that the extension keeps in the data directory (the snowflake high-water marks, the
//! visit rings), and the boot of the machine, which tells how long what is in memory counts.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{SqlError, SqlState};

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

/// The kernel's ID of the current boot (a random UUID per boot), reduced to 64 bits.
pub fn current_boot() -> Result<u64, SqlError> {
    const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
    let text = std::fs::read_to_string(BOOT_ID).map_err(|error| {
        SqlError::new(
            SqlState::IoError,
            format!("could not read the boot ID from \"{BOOT_ID}\": {error}"),
        )
    })?;
    let hex: String = text
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    u64::from_str_radix(&hex, 16).map_err(|_| {
        SqlError::new(
            SqlState::IoError,
            format!("\"{BOOT_ID}\" does not hold a boot ID: {text:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_id_is_read() {
        assert_eq!(current_boot().unwrap(), current_boot().unwrap());
    }
}
