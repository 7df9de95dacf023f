//! High-water marks of the snowflake nodes: for each node, the last millisecond in which any
//! backend of this server may have issued IDs from it. A backend that claims a node starts after
//! its mark, so no ID repeats across takeovers, reconnects and restarts, whatever the clock did in
//! between; a clock still behind the mark is waited out or refused like any clock step.
//!
//! The marks live in one file in the data directory, mapped into every backend that issues IDs
//! (MAP_SHARED, so all of them see the same page-cache pages). A file is the one place that is
//! shared by the backends of a server without `shared_preload_libraries` (which the main shared
//! memory and, before PostgreSQL 17, every named shared memory needs) and that outlives the
//! server process. It has two parts:
//!
//! - **Marks**, one per node, stored in memory at the first ID of every millisecond (a plain
//!   atomic store, no system call). Only the node's holder writes its mark, and a new holder reads
//!   it after taking the node's lock, which orders the two. A stopped or crashed server leaves them
//!   in the page cache, where the next server finds them, but a crash of the machine may lose
//!   them: they count only while the machine has not rebooted since they were written (the file
//!   records the boot they belong to, from the kernel's boot ID).
//! - **Leases**, one per node, written to disk (pwrite and fdatasync) before the node issues IDs
//!   past its lease: each extends it `LEASE_MS` ahead, so a busy node writes to disk once every
//!   few seconds. After a reboot every mark is set from its lease, which is never below the last
//!   millisecond used. A lease is kept twice, in different disk sectors, and written to the older
//!   copy, so a write torn by a crash leaves the newer copy whole; a copy holds its value and the
//!   value's complement, so a torn one is recognised.
//!
//! Marks are only ever too high (costing a wait), never too low.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use memmap2::MmapMut;

use crate::data_file;
use crate::error::{SqlError, SqlState};
use crate::snowflake::layout::MAX_NODE;

/// How far ahead a lease reaches: the longest a node waits after a reboot that came back sooner
/// than this after its last ID, and how often a busy node writes to disk.
pub const LEASE_MS: i64 = 3_000;

const NODES: usize = MAX_NODE as usize + 1;
/// The first bytes of the file, with the version of its format.
const MAGIC: &[u8; 8] = b"SNOWLNK1";
/// The header: the magic, and at BOOT_OFFSET the boot the marks belong to.
const BOOT_OFFSET: usize = 8;
const HEADER_SIZE: usize = 4096;
/// One mark per cache line, so that backends storing their marks do not contend.
const MARK_STRIDE: usize = 64;
const MARKS_OFFSET: usize = HEADER_SIZE;
/// A lease copy: the millisecond, then its complement.
const LEASE_SIZE: usize = 16;
const LEASES_SIZE: usize = NODES * LEASE_SIZE;
/// The two copies of each lease, LEASES_SIZE (many sectors) apart.
const LEASE_COPY_OFFSETS: [usize; 2] = [
    MARKS_OFFSET + NODES * MARK_STRIDE,
    MARKS_OFFSET + NODES * MARK_STRIDE + LEASES_SIZE,
];
const FILE_SIZE: usize = LEASE_COPY_OFFSETS[1] + LEASES_SIZE;
/// The mark of a node whose two lease copies are both unreadable after a reboot.
const DAMAGED: i64 = i64::MAX;

/// The mark file of one server, mapped into this backend.
pub struct MarkFile {
    file: File,
    map: MmapMut,
    path: String,
    /// The lease this backend last read or wrote for a node it holds: (node, until).
    known_lease: Option<(i32, i64)>,
}

impl MarkFile {
    /// Opens the mark file at `path`, creating it when it does not exist yet. `boot` identifies
    /// the machine's current boot. A new file starts every node at `start_ms`: its IDs so far are
    /// unknown, and were made before now (give or take the clock tolerance).
    pub fn open(path: &Path, boot: u64, start_ms: i64) -> Result<MarkFile, SqlError> {
        let display = path.display().to_string();
        let io_error = |what: &str, error: std::io::Error| {
            SqlError::new(
                SqlState::IoError,
                format!("could not {what} snowflake high-water mark file \"{display}\": {error}"),
            )
        };
        let file = data_file::open_or_create(path).map_err(|e| io_error("open", e))?;
        if !is_ready(&file, boot).map_err(|e| io_error("read", e))? {
            // Creating the file and adopting a new boot happen once, under an exclusive lock on
            // the file; whoever comes second finds it done.
            file.lock().map_err(|e| io_error("lock", e))?;
            let prepared = prepare(&file, path, boot, start_ms);
            file.unlock().map_err(|e| io_error("unlock", e))?;
            prepared.map_err(|e| io_error("write", e))?;
        }
        // SAFETY: the file has its full size and is never truncated; other backends change it
        // only through atomic stores and pwrite of whole lease copies.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| io_error("map", e))?;
        Ok(MarkFile {
            file,
            map,
            path: display,
            known_lease: None,
        })
    }

    /// The last millisecond in which an earlier holder of `node` may have issued IDs. Read it
    /// after claiming the node.
    pub fn last_used(&mut self, node: i32) -> Result<i64, SqlError> {
        // Another backend may have held the node since this one last did.
        self.known_lease = None;
        let mark = self.mark(node).load(Ordering::Acquire);
        if mark == DAMAGED {
            return Err(SqlError::new(
                SqlState::DataCorrupted,
                format!(
                    "the high-water mark of snowflake node {node} in \"{}\" is damaged",
                    self.path
                ),
            )
            .with_detail("Both copies of its lease on disk were unreadable after a reboot.")
            .with_hint(
                "Leave the node out of snowlink.node_min and snowlink.node_max, or see the README on high-water marks.",
            ));
        }
        Ok(mark)
    }

    /// Records, before the first ID of millisecond `ms`, that `node` issues IDs in it: the mark in
    /// memory and, when `ms` is past the node's lease, a new lease on disk first.
    pub fn record_use(&mut self, node: i32, ms: i64) -> Result<(), SqlError> {
        let lease = match self.known_lease {
            Some((known, until)) if known == node => until,
            _ => read_lease(&self.map, node).unwrap_or(i64::MIN),
        };
        if ms > lease {
            let until = ms + LEASE_MS;
            self.write_lease(node, until).map_err(|error| {
                SqlError::new(
                    SqlState::IoError,
                    format!(
                        "could not write the high-water mark of snowflake node {node} to \"{}\": {error}",
                        self.path
                    ),
                )
            })?;
            self.known_lease = Some((node, until));
        } else {
            self.known_lease = Some((node, lease));
        }
        self.mark(node).fetch_max(ms, Ordering::Release);
        Ok(())
    }

    fn mark(&self, node: i32) -> &AtomicI64 {
        atomic_i64(&self.map, MARKS_OFFSET + node as usize * MARK_STRIDE)
    }

    /// Writes `until` over the older (or unreadable) copy of the node's lease and waits until it
    /// is on disk.
    fn write_lease(&self, node: i32, until: i64) -> std::io::Result<()> {
        // Over an unreadable copy, else the older one: if this write tears, the other is whole.
        let target = match LEASE_COPY_OFFSETS.map(|offset| read_lease_copy(&self.map, offset, node))
        {
            [None, _] => 0,
            [_, None] => 1,
            [Some(first), Some(second)] => usize::from(second < first),
        };
        let mut record = [0u8; LEASE_SIZE];
        record[..8].copy_from_slice(&until.to_ne_bytes());
        record[8..].copy_from_slice(&(!until).to_ne_bytes());
        let offset = LEASE_COPY_OFFSETS[target] + node as usize * LEASE_SIZE;
        self.file.write_all_at(&record, offset as u64)?;
        self.file.sync_data()
    }
}

/// Whether the file is complete and its marks belong to this boot.
fn is_ready(file: &File, boot: u64) -> std::io::Result<bool> {
    if file.metadata()?.len() != FILE_SIZE as u64 {
        return Ok(false);
    }
    let mut header = [0u8; BOOT_OFFSET + 8];
    file.read_exact_at(&mut header, 0)?;
    Ok(&header[..8] == MAGIC
        && u64::from_ne_bytes(header[BOOT_OFFSET..].try_into().unwrap()) == boot)
}

/// Under the file's lock: creates the file if it is not complete, or sets every mark from its
/// lease if the marks belong to an earlier boot; then records this boot.
fn prepare(file: &File, path: &Path, boot: u64, start_ms: i64) -> std::io::Result<()> {
    if is_ready(file, boot)? {
        return Ok(());
    }
    let complete = file.metadata()?.len() == FILE_SIZE as u64 && {
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)?;
        &magic == MAGIC
    };
    if !complete {
        // No ID was ever made under an incomplete file. The magic goes last, once the rest is
        // on disk; the directory entry is made durable too.
        let mut contents = vec![0u8; FILE_SIZE];
        for node in 0..NODES {
            let mark = MARKS_OFFSET + node * MARK_STRIDE;
            contents[mark..mark + 8].copy_from_slice(&start_ms.to_ne_bytes());
            let lease = LEASE_COPY_OFFSETS[0] + node * LEASE_SIZE;
            contents[lease..lease + 8].copy_from_slice(&start_ms.to_ne_bytes());
            contents[lease + 8..lease + 16].copy_from_slice(&(!start_ms).to_ne_bytes());
        }
        contents[BOOT_OFFSET..BOOT_OFFSET + 8].copy_from_slice(&boot.to_ne_bytes());
        file.set_len(FILE_SIZE as u64)?;
        file.write_all_at(&contents, 0)?;
        file.sync_data()?;
        file.write_all_at(MAGIC, 0)?;
        file.sync_data()?;
        if let Some(directory) = path.parent() {
            File::open(directory)?.sync_all()?;
        }
        return Ok(());
    }
    // SAFETY: as in MarkFile::open; under the lock no other backend of this boot uses the file.
    let map = unsafe { MmapMut::map_mut(file) }?;
    for node in 0..NODES as i32 {
        let mark = read_lease(&map, node).unwrap_or(DAMAGED);
        atomic_i64(&map, MARKS_OFFSET + node as usize * MARK_STRIDE).store(mark, Ordering::Relaxed);
    }
    // The same bits as the header's u64.
    atomic_i64(&map, BOOT_OFFSET).store(boot as i64, Ordering::Release);
    Ok(())
}

/// The node's lease: the newer of its readable copies.
fn read_lease(map: &MmapMut, node: i32) -> Option<i64> {
    LEASE_COPY_OFFSETS
        .iter()
        .filter_map(|&offset| read_lease_copy(map, offset, node))
        .max()
}

fn read_lease_copy(map: &MmapMut, copy_offset: usize, node: i32) -> Option<i64> {
    let offset = copy_offset + node as usize * LEASE_SIZE;
    let value = atomic_i64(map, offset).load(Ordering::Relaxed);
    let check = atomic_i64(map, offset + 8).load(Ordering::Relaxed);
    (check == !value).then_some(value)
}

/// The 8-byte atomic at `offset` in the mapping.
fn atomic_i64(map: &MmapMut, offset: usize) -> &AtomicI64 {
    assert!(offset.is_multiple_of(8) && offset + 8 <= map.len());
    // SAFETY: in bounds and aligned (the mapping is page-aligned); the file is shared memory that
    // is only ever accessed atomically or by whole-copy pwrite.
    unsafe { &*(map.as_ptr().add(offset) as *const AtomicI64) }
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
    use std::fs::OpenOptions;

    const START: i64 = 1_000;
    const BOOT: u64 = 1;
    const NEXT_BOOT: u64 = 2;

    fn mark_file(dir: &tempfile::TempDir, boot: u64) -> MarkFile {
        MarkFile::open(&dir.path().join("marks"), boot, START).unwrap()
    }

    fn lease_copies(dir: &tempfile::TempDir, node: i32) -> [Option<i64>; 2] {
        let bytes = std::fs::read(dir.path().join("marks")).unwrap();
        LEASE_COPY_OFFSETS.map(|copy| {
            let offset = copy + node as usize * LEASE_SIZE;
            let value = i64::from_ne_bytes(bytes[offset..offset + 8].try_into().unwrap());
            let check = i64::from_ne_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
            (check == !value).then_some(value)
        })
    }

    /// Overwrites the first byte of a lease copy, as a write torn by a crash might leave it.
    fn tear(dir: &tempfile::TempDir, copy: usize, node: i32) {
        let offset = LEASE_COPY_OFFSETS[copy] + node as usize * LEASE_SIZE;
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join("marks"))
            .unwrap();
        file.write_all_at(&[0xA5], offset as u64).unwrap();
    }

    #[test]
    fn a_new_file_starts_every_node_at_the_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut marks = mark_file(&dir, BOOT);
        assert_eq!(marks.last_used(0), Ok(START));
        assert_eq!(marks.last_used(MAX_NODE), Ok(START));
        assert_eq!(lease_copies(&dir, MAX_NODE), [Some(START), None]);
        let size = std::fs::metadata(dir.path().join("marks")).unwrap().len();
        assert_eq!(size, FILE_SIZE as u64);
    }

    #[test]
    fn marks_are_shared_by_every_mapping_and_kept_while_the_machine_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = mark_file(&dir, BOOT);
        let mut other_backend = mark_file(&dir, BOOT);
        holder.record_use(7, 5_000).unwrap();
        assert_eq!(other_backend.last_used(7), Ok(5_000));
        assert_eq!(other_backend.last_used(8), Ok(START));
        holder.record_use(7, 5_001).unwrap();
        assert_eq!(other_backend.last_used(7), Ok(5_001));
        // A restarted server in the same boot reads the marks, not the leases.
        drop((holder, other_backend));
        assert_eq!(mark_file(&dir, BOOT).last_used(7), Ok(5_001));
    }

    #[test]
    fn a_busy_node_writes_its_lease_once_per_lease_period_alternating_copies() {
        let dir = tempfile::tempdir().unwrap();
        let mut marks = mark_file(&dir, BOOT);
        marks.record_use(7, 5_000).unwrap();
        assert_eq!(lease_copies(&dir, 7), [Some(START), Some(5_000 + LEASE_MS)]);
        marks.record_use(7, 5_000 + LEASE_MS).unwrap();
        assert_eq!(lease_copies(&dir, 7), [Some(START), Some(5_000 + LEASE_MS)]);
        marks.record_use(7, 5_001 + LEASE_MS).unwrap();
        let newest = 5_001 + 2 * LEASE_MS;
        assert_eq!(
            lease_copies(&dir, 7),
            [Some(newest), Some(5_000 + LEASE_MS)]
        );
        // A holder that lost the node and claims it again reads the lease afresh.
        let mut other_backend = mark_file(&dir, BOOT);
        other_backend.last_used(7).unwrap();
        other_backend.record_use(7, newest).unwrap();
        assert_eq!(
            lease_copies(&dir, 7),
            [Some(newest), Some(5_000 + LEASE_MS)]
        );
    }

    #[test]
    fn after_a_reboot_every_mark_comes_from_its_lease_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut marks = mark_file(&dir, BOOT);
        marks.record_use(7, 5_000).unwrap();
        marks.record_use(7, 5_500).unwrap();
        drop(marks);
        let mut rebooted = mark_file(&dir, NEXT_BOOT);
        assert_eq!(rebooted.last_used(7), Ok(5_000 + LEASE_MS));
        assert_eq!(rebooted.last_used(8), Ok(START));
        // Adopted once: in the new boot the marks count again.
        rebooted.record_use(8, 9_000).unwrap();
        assert_eq!(mark_file(&dir, NEXT_BOOT).last_used(8), Ok(9_000));
    }

    #[test]
    fn a_torn_lease_copy_leaves_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut marks = mark_file(&dir, BOOT);
        marks.record_use(7, 5_000).unwrap();
        // The machine crashed while writing the next lease, before any ID needed it.
        tear(&dir, 0, 7);
        drop(marks);
        assert_eq!(
            mark_file(&dir, NEXT_BOOT).last_used(7),
            Ok(5_000 + LEASE_MS)
        );

        tear(&dir, 1, 7);
        drop(mark_file(&dir, BOOT));
        let error = mark_file(&dir, BOOT).last_used(7).unwrap_err();
        assert_eq!(error.state, SqlState::DataCorrupted);
        assert_eq!(mark_file(&dir, BOOT).last_used(8), Ok(START));
    }

    #[test]
    fn an_incomplete_file_is_made_anew() {
        for contents in [vec![0xA5; 100], vec![0; FILE_SIZE]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("marks"), contents).unwrap();
            assert_eq!(mark_file(&dir, BOOT).last_used(3), Ok(START));
        }
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = MarkFile::open(&dir.path().join("missing").join("marks"), BOOT, START)
            .err()
            .unwrap();
        assert_eq!(error.state, SqlState::IoError);
        assert!(error
            .message
            .starts_with("could not open snowflake high-water mark file"));
    }

    #[test]
    fn the_boot_id_is_read() {
        assert_eq!(current_boot().unwrap(), current_boot().unwrap());
    }
}
