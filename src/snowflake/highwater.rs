//! High-water marks of the snowflake nodes: for each node, the last millisecond in which any
//! backend of this server may have issued IDs from it. A backend that claims a node starts after
//! its mark, so no ID repeats across takeovers, reconnects and restarts, whatever the clock did in
//! between; a clock still behind the mark is waited out or refused like any clock step.
//!
//! Without `shared_preload_libraries` the backends of a server share no memory of PostgreSQL's
//! that outlives them, so the marks live in two places of their own:
//!
//! - **Marks**, one per node, in a POSIX shared memory object named after the data directory (in
//!   /dev/shm, where PostgreSQL keeps its own dynamic shared memory), stored at the first ID of
//!   every millisecond: a plain atomic store, no system call. Only the node's holder stores its
//!   mark, and a new holder reads it after taking the node's lock, which orders the two. The
//!   object outlives the server, and is gone after a reboot (or if something removes it).
//! - **Leases**, one per node, in the file `snowlink_highwater` in the data directory, written to
//!   disk (pwrite and fdatasync) before the node issues IDs past its lease: each extends it
//!   `LEASE_MS` ahead, so a busy node writes to disk once every few seconds. A lease is never
//!   below the last millisecond used, so marks made anew from the leases (after a reboot) are
//!   safe. A lease is kept twice, in different disk sectors, written to the older copy, so a write
//!   torn by a crash leaves the newer copy whole; a copy holds its value and the value's
//!   complement, so a torn or damaged one is recognised. The file is read and written only with
//!   pread and pwrite, never mapped: nothing done to it can end a process with SIGBUS.
//!
//! Each half repairs the other. A new holder takes the lease when it is ahead of the mark by more
//! than a lease (the marks were made anew while an old holder went on using a node), and the lease
//! when the mark is damaged. The file is made anew from the marks when it is missing, damaged,
//! replaced by another file (each backend notices at its next lease write, and any backend at its
//! first claim), or copied from another data directory (a pg_basebackup standby, `cp -a`, a
//! restore), which is logged. Each lease write also checks a few other nodes' leases against their
//! marks and raises any that fell behind (a stale file copied over this one).
//!
//! Marks are only ever too high (costing a wait), never too low.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;
use siphasher::sip::SipHasher13;

use crate::error::{SqlError, SqlState};
use crate::snowflake::layout::MAX_NODE;

/// How far ahead a lease reaches: the longest a node waits after a reboot that came back sooner
/// than this after its last ID, and how often a busy node writes to disk.
pub const LEASE_MS: i64 = 3_000;

const NODES: usize = MAX_NODE as usize + 1;

/// What tells one data directory from another, copies included: the server's system identifier,
/// and the device and inode of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDirectory {
    pub system: u64,
    pub device: u64,
    pub inode: u64,
}

/// The marks of the server, and the lease file of its data directory, as this backend sees them.
pub struct Marks {
    segment: Segment,
    leases: LeaseFile,
    directory: DataDirectory,
    /// Where a lease file made anew starts every node without a mark: IDs made before it are
    /// unknown, and were made before now (give or take the clock tolerance).
    start_ms: i64,
    /// The lease this backend last read or wrote for a node it holds: (node, until).
    known_lease: Option<(i32, i64)>,
    /// Where the next check of other nodes' leases starts.
    next_check: usize,
    /// What happened that the server log should say.
    notes: Vec<String>,
}

impl Marks {
    /// Opens the marks of the data directory `directory`: the shared memory object `segment` and
    /// the lease file at `path`, making or repairing what is missing or damaged.
    pub fn open(
        path: &Path,
        segment: &CStr,
        directory: DataDirectory,
        start_ms: i64,
    ) -> Result<Marks, SqlError> {
        let segment = Segment::open(segment).map_err(|error| {
            SqlError::new(
                SqlState::IoError,
                format!(
                    "could not open the shared memory of the snowflake high-water marks \"{}\": {error}",
                    segment.to_string_lossy()
                ),
            )
        })?;
        let mut notes = Vec::new();
        let leases = open_leases(&segment, path, directory, start_ms, &mut notes)
            .map_err(|error| file_error(path, "open", error))?;
        Ok(Marks {
            segment,
            leases,
            directory,
            start_ms,
            known_lease: None,
            next_check: 0,
            notes,
        })
    }

    /// What the server log should say about the marks since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The last millisecond in which an earlier holder of `node` may have issued IDs. Read it
    /// after claiming the node.
    pub fn last_used(&mut self, node: i32) -> Result<i64, SqlError> {
        // Another backend may have held the node since this one last did.
        self.known_lease = None;
        let lease = self
            .leases
            .read_lease(node)
            .map_err(|error| file_error(&self.leases.path, "read", error))?;
        match high_water(self.segment.mark(node), lease) {
            Some(ms) => Ok(ms),
            None => Err(SqlError::new(
                SqlState::DataCorrupted,
                format!(
                    "the high-water mark of snowflake node {node} in \"{}\" is damaged",
                    self.leases.path.display()
                ),
            )
            .with_detail("Its mark in memory is gone (after a reboot) and both copies of its lease on disk are unreadable.")
            .with_hint(
                "Leave the node out of snowlink.node_min and snowlink.node_max, or see \"High-water marks\" in docs/design.md.",
            )),
        }
    }

    /// The high-water mark and the lease of each node in `nodes`, as a new holder would read
    /// them, for snowflake_node_status.
    pub fn high_waters(
        &self,
        nodes: std::ops::RangeInclusive<i32>,
    ) -> Result<Vec<HighWater>, SqlError> {
        let first = usize::try_from(*nodes.start()).unwrap_or(0);
        let end = usize::try_from(*nodes.end()).map_or(first, |last| last + 1);
        let leases = self
            .leases
            .read_leases_of(first..end)
            .map_err(|error| file_error(&self.leases.path, "read", error))?;
        Ok(nodes
            .zip(leases)
            .map(|(node, lease)| HighWater {
                last_used_ms: high_water(self.segment.mark(node), lease),
                lease_ms: lease,
            })
            .collect())
    }

    /// Records, before the first ID of millisecond `ms`, that `node` issues IDs in it: the mark in
    /// memory and, when `ms` is past the node's lease, a new lease on disk first.
    pub fn record_use(&mut self, node: i32, ms: i64) -> Result<(), SqlError> {
        let lease = match self.known_lease {
            Some((known, until)) if known == node => until,
            _ => self
                .leases
                .read_lease(node)
                .map_err(|error| file_error(&self.leases.path, "read", error))?
                .unwrap_or(i64::MIN),
        };
        if ms > lease {
            let until = ms + LEASE_MS;
            self.write_lease(node, until).map_err(|error| {
                SqlError::new(
                    SqlState::IoError,
                    format!(
                        "could not write the high-water mark of snowflake node {node} to \"{}\": {error}",
                        self.leases.path.display()
                    ),
                )
            })?;
            self.known_lease = Some((node, until));
        } else {
            self.known_lease = Some((node, lease));
        }
        self.segment.set_mark(node, ms);
        Ok(())
    }

    /// Writes `until` as the lease of `node` to disk, in the file at the lease file's path: when
    /// the file this backend has open was removed or replaced meanwhile, in the one there now.
    fn write_lease(&mut self, node: i32, until: i64) -> std::io::Result<()> {
        self.leases
            .write_lease(node, until, &self.segment, &mut self.next_check)?;
        if !self.leases.is_at_path()? {
            self.notes.push(format!(
                "snowlink: the snowflake high-water mark file \"{}\" was removed or replaced while in use; the marks in memory were written to the file there now",
                self.leases.path.display()
            ));
            self.leases = open_leases(
                &self.segment,
                &self.leases.path,
                self.directory,
                self.start_ms,
                &mut self.notes,
            )?;
            self.leases
                .write_lease(node, until, &self.segment, &mut self.next_check)?;
        }
        Ok(())
    }
}

/// A node's high-water mark as snowflake_node_status shows it, in Unix milliseconds.
pub struct HighWater {
    /// The last millisecond in which the node may have issued IDs; None: damaged.
    pub last_used_ms: Option<i64>,
    /// Until when its lease on disk reaches; None: no readable lease.
    pub lease_ms: Option<i64>,
}

/// The last millisecond a node may have issued IDs in, from its mark in memory and its lease on
/// disk; None when both are gone or damaged.
fn high_water(mark: Option<i64>, lease: Option<i64>) -> Option<i64> {
    match (mark, lease) {
        // The marks were made anew while an earlier holder went on: its lease knows more.
        (Some(mark), Some(lease)) if lease > mark + LEASE_MS => Some(lease),
        (Some(mark), _) => Some(mark),
        (None, lease) => lease,
    }
}

fn file_error(path: &Path, what: &str, error: std::io::Error) -> SqlError {
    SqlError::new(
        SqlState::IoError,
        format!(
            "could not {what} snowflake high-water mark file \"{}\": {error}",
            path.display()
        ),
    )
}

/// The lease file at `path`, after making the marks from it (when they are not made yet) or it
/// from the marks (when it is missing, damaged, replaced or copied). All that is done under the
/// segment's lock, once; a backend that finds both as they should be takes no lock.
fn open_leases(
    segment: &Segment,
    path: &Path,
    directory: DataDirectory,
    start_ms: i64,
    notes: &mut Vec<String>,
) -> std::io::Result<LeaseFile> {
    if segment.is_ready() {
        if let Some(file) = LeaseFile::open(path)? {
            if file.header()? == Some(directory) && segment.file_id() == Some(file.id()?) {
                return Ok(file);
            }
        }
    }
    segment.file.lock()?;
    let prepared = prepare(segment, path, directory, start_ms, notes);
    segment.file.unlock()?;
    prepared
}

/// Under the segment's lock: see open_leases().
fn prepare(
    segment: &Segment,
    path: &Path,
    directory: DataDirectory,
    start_ms: i64,
    notes: &mut Vec<String>,
) -> std::io::Result<LeaseFile> {
    let file = LeaseFile::open(path)?;
    let header = match &file {
        Some(file) => file.header()?,
        None => None,
    };
    let on_disk = match &file {
        Some(file) => file.read_leases()?,
        None => vec![None; NODES],
    };
    let shown = |path: &Path| path.display().to_string();
    let marks_were_made = segment.is_ready();
    if !marks_were_made {
        // After a reboot, or the first use: the marks come from the leases; a node whose lease
        // is unreadable has no mark, and cannot be claimed.
        for (node, lease) in on_disk.iter().enumerate() {
            let mark = match (file.is_some(), lease) {
                (_, Some(lease)) => Some(*lease),
                (false, None) => Some(start_ms),
                (true, None) => None,
            };
            segment.store(node as i32, mark);
        }
    }
    let problem = match (&file, header) {
        (None, _) if marks_were_made => Some(format!(
            "snowlink: the snowflake high-water mark file \"{}\" was removed; it was written again from the marks in memory",
            shown(path)
        )),
        (None, _) => Some(format!(
            "snowlink: made the snowflake high-water mark file \"{}\"; IDs made before it, if any, are taken to be older than now",
            shown(path)
        )),
        (Some(_), None) => Some(format!(
            "snowlink: the snowflake high-water mark file \"{}\" was damaged; it was written again from the marks in memory and the leases that could be read",
            shown(path)
        )),
        (Some(_), Some(found)) if found != directory => Some(format!(
            "snowlink: the snowflake high-water mark file \"{}\" comes from another data directory (a copy made by pg_basebackup, cp or a restore); this server starts after every ID it knows of, but if the server it was copied from also makes IDs, each must have a node range of its own (snowlink.node_min and snowlink.node_max)",
            shown(path)
        )),
        (Some(file), Some(_)) if marks_were_made && segment.file_id() != Some(file.id()?) => {
            Some(format!(
                "snowlink: the snowflake high-water mark file \"{}\" was replaced; the marks in memory were written to it",
                shown(path)
            ))
        }
        (Some(_), Some(_)) => None,
    };
    if let (Some(file), None) = (&file, &problem) {
        segment.set_ready(file.id()?);
        return LeaseFile::open(path)?.ok_or_else(|| std::io::ErrorKind::NotFound.into());
    }
    notes.extend(problem);
    // Every lease at least what the file says, and at least its mark; a lease past the mark where
    // the marks were in use, since a holder may issue IDs up to a lease it wrote to a file that
    // is gone.
    let ahead = if marks_were_made { LEASE_MS } else { 0 };
    let leases: Vec<Option<i64>> = on_disk
        .iter()
        .enumerate()
        .map(|(node, lease)| {
            let from_mark = segment.mark(node as i32).map(|mark| mark + ahead);
            match (lease, from_mark) {
                (Some(lease), Some(from_mark)) => Some((*lease).max(from_mark)),
                (lease, from_mark) => lease.or(from_mark),
            }
        })
        .collect();
    LeaseFile::write_new(path, directory, &leases)?;
    let file = LeaseFile::open(path)?.ok_or(std::io::ErrorKind::NotFound)?;
    segment.set_ready(file.id()?);
    Ok(file)
}

// ---- The lease file.

/// The first bytes of the file, with the version of its format.
const FILE_MAGIC: &[u8; 8] = b"SNOWLNK2";
/// The header: the magic, the data directory's identity, and a checksum of the two.
const HEADER_FIELDS: usize = 32;
const HEADER_SIZE: usize = 4096;
/// A lease copy: the millisecond, then its complement.
const LEASE_SIZE: usize = 16;
const LEASES_SIZE: usize = NODES * LEASE_SIZE;
/// The two copies of each lease, LEASES_SIZE (many sectors) apart.
const LEASE_COPY_OFFSETS: [usize; 2] = [HEADER_SIZE, HEADER_SIZE + LEASES_SIZE];
const FILE_SIZE: usize = HEADER_SIZE + 2 * LEASES_SIZE;
/// How many other nodes' leases each lease write checks.
const CHECKED_PER_WRITE: usize = 64;

struct LeaseFile {
    file: File,
    path: PathBuf,
}

impl LeaseFile {
    /// The file at `path`, or None when there is none.
    fn open(path: &Path) -> std::io::Result<Option<LeaseFile>> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Ok(Some(LeaseFile {
                file,
                path: path.to_path_buf(),
            })),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The file's device and inode, which tell it from a file that takes its place.
    fn id(&self) -> std::io::Result<(u64, u64)> {
        let metadata = self.file.metadata()?;
        Ok((metadata.dev(), metadata.ino()))
    }

    /// Whether the file is still the one at its path.
    fn is_at_path(&self) -> std::io::Result<bool> {
        match std::fs::metadata(&self.path) {
            Ok(named) => Ok((named.dev(), named.ino()) == self.id()?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The data directory the file was written for, or None when its header is damaged.
    fn header(&self) -> std::io::Result<Option<DataDirectory>> {
        let mut header = [0u8; HEADER_FIELDS + 8];
        if read_at_most(&self.file, &mut header, 0)? < header.len() {
            return Ok(None);
        }
        let field = |at: usize| u64::from_ne_bytes(header[at..at + 8].try_into().unwrap());
        let intact = &header[..8] == FILE_MAGIC
            && field(HEADER_FIELDS) == checksum(&header[..HEADER_FIELDS]);
        Ok(intact.then(|| DataDirectory {
            system: field(8),
            device: field(16),
            inode: field(24),
        }))
    }

    /// Every node's lease: the newer of its readable copies.
    fn read_leases(&self) -> std::io::Result<Vec<Option<i64>>> {
        self.read_leases_of(0..NODES)
    }

    /// The leases of the nodes in `nodes`, with two reads: one of each copy.
    fn read_leases_of(&self, nodes: std::ops::Range<usize>) -> std::io::Result<Vec<Option<i64>>> {
        let mut copies = Vec::new();
        for copy in LEASE_COPY_OFFSETS {
            let mut records = vec![0u8; nodes.len() * LEASE_SIZE];
            let offset = copy + nodes.start * LEASE_SIZE;
            let read = read_at_most(&self.file, &mut records, offset as u64)?;
            records.truncate(read);
            copies.push(records);
        }
        Ok((0..nodes.len())
            .map(|index| {
                let record = index * LEASE_SIZE..(index + 1) * LEASE_SIZE;
                copies
                    .iter()
                    .filter_map(|records| records.get(record.clone()).and_then(decode_lease))
                    .max()
            })
            .collect())
    }

    /// The node's lease: the newer of its readable copies.
    fn read_lease(&self, node: i32) -> std::io::Result<Option<i64>> {
        let copies: Vec<Option<i64>> = LEASE_COPY_OFFSETS
            .iter()
            .map(|copy| self.read_copy(*copy, node))
            .collect::<std::io::Result<_>>()?;
        Ok(copies.into_iter().flatten().max())
    }

    fn read_copy(&self, copy: usize, node: i32) -> std::io::Result<Option<i64>> {
        let mut record = [0u8; LEASE_SIZE];
        let offset = copy + node as usize * LEASE_SIZE;
        if read_at_most(&self.file, &mut record, offset as u64)? < LEASE_SIZE {
            return Ok(None);
        }
        Ok(decode_lease(&record))
    }

    /// Writes `until` over the older (or unreadable) copy of the node's lease and waits until it
    /// is on disk; then raises the leases of a few other nodes that fell behind their marks. Under
    /// the file's lock, so that no two backends write copies of one lease at once.
    fn write_lease(
        &self,
        node: i32,
        until: i64,
        segment: &Segment,
        next_check: &mut usize,
    ) -> std::io::Result<()> {
        self.file.lock()?;
        let written = (|| {
            self.write_copy(node, until)?;
            let first = *next_check % NODES;
            *next_check = first + CHECKED_PER_WRITE;
            let checked = first..(first + CHECKED_PER_WRITE).min(NODES);
            for (other, lease) in checked.clone().zip(self.read_leases_of(checked)?) {
                let other = other as i32;
                if other == node {
                    continue;
                }
                if let Some(mark) = segment.mark(other) {
                    if lease.is_none_or(|lease| lease < mark) {
                        self.write_copy(other, mark + LEASE_MS)?;
                    }
                }
            }
            self.file.sync_data()
        })();
        self.file.unlock()?;
        written
    }

    fn write_copy(&self, node: i32, until: i64) -> std::io::Result<()> {
        // Over an unreadable copy, else the older one: if this write tears, the other is whole.
        let target = match [
            self.read_copy(LEASE_COPY_OFFSETS[0], node)?,
            self.read_copy(LEASE_COPY_OFFSETS[1], node)?,
        ] {
            [None, _] => 0,
            [_, None] => 1,
            [Some(first), Some(second)] => usize::from(second < first),
        };
        let offset = LEASE_COPY_OFFSETS[target] + node as usize * LEASE_SIZE;
        self.file
            .write_all_at(&encode_lease(Some(until)), offset as u64)
    }

    /// Writes a whole new file at `path` for `directory` with `leases` (None: unreadable), in
    /// place of whatever is there: all of it, on disk, before it takes the path.
    fn write_new(
        path: &Path,
        directory: DataDirectory,
        leases: &[Option<i64>],
    ) -> std::io::Result<()> {
        let mut contents = vec![0u8; FILE_SIZE];
        contents[..8].copy_from_slice(FILE_MAGIC);
        for (at, value) in [
            (8, directory.system),
            (16, directory.device),
            (24, directory.inode),
        ] {
            contents[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        }
        let sum = checksum(&contents[..HEADER_FIELDS]);
        contents[HEADER_FIELDS..HEADER_FIELDS + 8].copy_from_slice(&sum.to_ne_bytes());
        for (node, lease) in leases.iter().enumerate() {
            let offset = LEASE_COPY_OFFSETS[0] + node * LEASE_SIZE;
            contents[offset..offset + LEASE_SIZE].copy_from_slice(&encode_lease(*lease));
        }
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // The server's umask makes this 0600, or 0640 where the data directory allows group
            // access, as for PostgreSQL's own files.
            .mode(0o640)
            .open(&temporary)?;
        file.write_all_at(&contents, 0)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(directory) = path.parent() {
            File::open(directory)?.sync_all()?;
        }
        Ok(())
    }
}

/// Reads into `buffer` from `offset` up to its end or the end of the file; how much was read.
fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buffer.len() {
        match file.read_at(&mut buffer[read..], offset + read as u64)? {
            0 => break,
            count => read += count,
        }
    }
    Ok(read)
}

fn checksum(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = SipHasher13::new();
    hasher.write(bytes);
    hasher.finish()
}

fn encode_lease(lease: Option<i64>) -> [u8; LEASE_SIZE] {
    let mut record = [0u8; LEASE_SIZE];
    if let Some(until) = lease {
        record[..8].copy_from_slice(&until.to_ne_bytes());
        record[8..].copy_from_slice(&(!until).to_ne_bytes());
    }
    record
}

fn decode_lease(record: &[u8]) -> Option<i64> {
    let value = i64::from_ne_bytes(record[..8].try_into().unwrap());
    let check = i64::from_ne_bytes(record[8..16].try_into().unwrap());
    (check == !value).then_some(value)
}

// ---- The marks in shared memory.

/// The header: the magic, whether the marks are made, and the lease file they were last written
/// to (its device and inode); then one mark per cache line, so that backends storing their marks
/// do not contend.
const SEGMENT_MAGIC: u64 = u64::from_ne_bytes(*b"SNLMARK1");
const READY_OFFSET: usize = 8;
const FILE_DEVICE_OFFSET: usize = 16;
const FILE_INODE_OFFSET: usize = 24;
const MARK_STRIDE: usize = 64;
const MARKS_OFFSET: usize = 64;
const SEGMENT_SIZE: usize = MARKS_OFFSET + NODES * MARK_STRIDE;

/// A mark is a millisecond since the Unix epoch (43 bits: until the year 2248) with a check of
/// 20 bits, in one word that is stored at once; the top bit set, so that zeros are no mark.
/// Anything else that finds its way there is taken for no mark (the lease counts instead).
const MARK_MS_BITS: u32 = 43;
const MARK_CHECK_BITS: u32 = 20;

fn mark_check(node: i32, ms: u64) -> u64 {
    checksum(&[ms.to_ne_bytes(), u64::from(node as u32).to_ne_bytes()].concat())
        & ((1 << MARK_CHECK_BITS) - 1)
}

fn encode_mark(node: i32, ms: i64) -> u64 {
    let ms = (ms.max(0) as u64) & ((1 << MARK_MS_BITS) - 1);
    1 << 63 | ms << MARK_CHECK_BITS | mark_check(node, ms)
}

fn decode_mark(node: i32, word: u64) -> Option<i64> {
    let ms = (word >> MARK_CHECK_BITS) & ((1 << MARK_MS_BITS) - 1);
    (word >> 63 == 1 && word & ((1 << MARK_CHECK_BITS) - 1) == mark_check(node, ms))
        .then_some(ms as i64)
}

struct Segment {
    /// Its descriptor, whose lock (flock) guards the making of the marks.
    file: File,
    map: MmapMut,
}

impl Segment {
    /// Opens the POSIX shared memory object `name`, making it when it does not exist; its memory
    /// is allocated at once, so that a full /dev/shm is an error here rather than SIGBUS later.
    fn open(name: &CStr) -> std::io::Result<Segment> {
        // SAFETY: a valid name; the descriptor returned is ours to own.
        let file = unsafe {
            let fd = libc::shm_open(name.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            File::from(OwnedFd::from_raw_fd(fd))
        };
        if file.metadata()?.len() < SEGMENT_SIZE as u64 {
            file.lock()?;
            let allocated = allocate(&file);
            file.unlock()?;
            allocated?;
        }
        // SAFETY: the object has its full size, allocated; nothing of the extension shrinks it.
        let map = unsafe { MmapMut::map_mut(&file) }?;
        if map.len() < SEGMENT_SIZE {
            return Err(std::io::Error::other("the shared memory is too small"));
        }
        Ok(Segment { file, map })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: in bounds and aligned (the mapping is page-aligned); shared memory that is only
        // ever accessed atomically.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn is_ready(&self) -> bool {
        self.word(0).load(Ordering::Acquire) == SEGMENT_MAGIC
            && self.word(READY_OFFSET).load(Ordering::Acquire) == 1
    }

    /// Notes that the marks are made, and written to the lease file `file` (device, inode).
    fn set_ready(&self, (device, inode): (u64, u64)) {
        self.word(FILE_DEVICE_OFFSET)
            .store(device, Ordering::Relaxed);
        self.word(FILE_INODE_OFFSET).store(inode, Ordering::Relaxed);
        self.word(0).store(SEGMENT_MAGIC, Ordering::Relaxed);
        self.word(READY_OFFSET).store(1, Ordering::Release);
    }

    fn file_id(&self) -> Option<(u64, u64)> {
        self.is_ready().then(|| {
            (
                self.word(FILE_DEVICE_OFFSET).load(Ordering::Relaxed),
                self.word(FILE_INODE_OFFSET).load(Ordering::Relaxed),
            )
        })
    }

    fn mark_word(&self, node: i32) -> &AtomicU64 {
        self.word(MARKS_OFFSET + node as usize * MARK_STRIDE)
    }

    /// The node's mark, None when there is none that can be read.
    fn mark(&self, node: i32) -> Option<i64> {
        decode_mark(node, self.mark_word(node).load(Ordering::Acquire))
    }

    /// Stores the mark of a node whose lock the caller holds.
    fn set_mark(&self, node: i32, ms: i64) {
        self.mark_word(node)
            .store(encode_mark(node, ms), Ordering::Release);
    }

    /// Stores a mark while the marks are being made (None: no mark).
    fn store(&self, node: i32, mark: Option<i64>) {
        let word = mark.map_or(0, |ms| encode_mark(node, ms));
        self.mark_word(node).store(word, Ordering::Relaxed);
    }
}

fn allocate(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; posix_fallocate returns the error rather than setting errno.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, SEGMENT_SIZE as libc::off_t) } {
        0 => Ok(()),
        error => Err(std::io::Error::from_raw_os_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::sync::atomic::AtomicUsize;

    const START: i64 = 1_000_000;
    const HERE: DataDirectory = DataDirectory {
        system: 1,
        device: 2,
        inode: 3,
    };

    /// A data directory and the name of its shared memory, removed when the test ends.
    struct Server {
        dir: tempfile::TempDir,
        segment: CString,
    }

    impl Server {
        fn new() -> Server {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let segment = CString::new(format!(
                "/snowlink-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ))
            .unwrap();
            Server {
                dir: tempfile::tempdir().unwrap(),
                segment,
            }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("snowlink_highwater")
        }

        fn marks(&self) -> Marks {
            self.marks_of(HERE)
        }

        fn marks_of(&self, directory: DataDirectory) -> Marks {
            Marks::open(&self.path(), &self.segment, directory, START).unwrap()
        }

        /// What a reboot does to the marks in memory.
        fn reboot(&self) {
            // SAFETY: a valid name.
            unsafe { libc::shm_unlink(self.segment.as_ptr()) };
        }

        fn leases(&self, node: i32) -> [Option<i64>; 2] {
            let bytes = std::fs::read(self.path()).unwrap();
            LEASE_COPY_OFFSETS.map(|copy| {
                let offset = copy + node as usize * LEASE_SIZE;
                decode_lease(&bytes[offset..offset + LEASE_SIZE])
            })
        }

        /// Writes `bytes` over the file at `offset`, as a stray write or a bad disk would.
        fn scribble(&self, offset: usize, bytes: &[u8]) {
            let file = OpenOptions::new().write(true).open(self.path()).unwrap();
            file.write_all_at(bytes, offset as u64).unwrap();
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.reboot();
        }
    }

    #[test]
    fn the_high_water_is_the_mark_unless_the_lease_knows_more() {
        assert_eq!(high_water(Some(1_000), Some(1_000 + LEASE_MS)), Some(1_000));
        assert_eq!(
            high_water(Some(1_000), Some(1_001 + LEASE_MS)),
            Some(1_001 + LEASE_MS)
        );
        assert_eq!(high_water(None, Some(5_000)), Some(5_000));
        assert_eq!(high_water(Some(7_000), None), Some(7_000));
        assert_eq!(high_water(None, None), None);
    }

    #[test]
    fn a_new_server_starts_every_node_at_the_start_time() {
        let server = Server::new();
        let mut marks = server.marks();
        assert_eq!(marks.last_used(0), Ok(START));
        assert_eq!(marks.last_used(MAX_NODE), Ok(START));
        assert_eq!(server.leases(MAX_NODE), [Some(START), None]);
        assert_eq!(
            std::fs::metadata(server.path()).unwrap().len(),
            FILE_SIZE as u64
        );
        assert!(marks.take_notes()[0].contains("made the snowflake high-water mark file"));
        assert!(server.marks().take_notes().is_empty(), "made once");
    }

    #[test]
    fn marks_are_shared_by_every_backend_and_kept_while_the_machine_runs() {
        let server = Server::new();
        let mut holder = server.marks();
        let mut other_backend = server.marks();
        holder.record_use(7, START + 5_000).unwrap();
        assert_eq!(other_backend.last_used(7), Ok(START + 5_000));
        assert_eq!(other_backend.last_used(8), Ok(START));
        holder.record_use(7, START + 5_001).unwrap();
        assert_eq!(other_backend.last_used(7), Ok(START + 5_001));
        // A restarted server reads the marks, not the leases.
        drop((holder, other_backend));
        assert_eq!(server.marks().last_used(7), Ok(START + 5_001));
    }

    #[test]
    fn a_busy_node_writes_its_lease_once_per_lease_period_alternating_copies() {
        let server = Server::new();
        let mut marks = server.marks();
        let at = START + 5_000;
        marks.record_use(7, at).unwrap();
        assert_eq!(server.leases(7), [Some(START), Some(at + LEASE_MS)]);
        marks.record_use(7, at + LEASE_MS).unwrap();
        assert_eq!(server.leases(7), [Some(START), Some(at + LEASE_MS)]);
        marks.record_use(7, at + 1 + LEASE_MS).unwrap();
        let newest = at + 1 + 2 * LEASE_MS;
        assert_eq!(server.leases(7), [Some(newest), Some(at + LEASE_MS)]);
        // A holder that lost the node and claims it again reads the lease afresh.
        let mut other_backend = server.marks();
        other_backend.last_used(7).unwrap();
        other_backend.record_use(7, newest).unwrap();
        assert_eq!(server.leases(7), [Some(newest), Some(at + LEASE_MS)]);
    }

    #[test]
    fn after_a_reboot_every_mark_comes_from_its_lease_on_disk() {
        let server = Server::new();
        let mut marks = server.marks();
        marks.record_use(7, START + 5_000).unwrap();
        marks.record_use(7, START + 5_500).unwrap();
        drop(marks);
        server.reboot();
        let mut rebooted = server.marks();
        assert_eq!(rebooted.last_used(7), Ok(START + 5_000 + LEASE_MS));
        assert_eq!(rebooted.last_used(8), Ok(START));
        rebooted.record_use(8, START + 9_000).unwrap();
        assert_eq!(server.marks().last_used(8), Ok(START + 9_000));
    }

    #[test]
    fn a_torn_lease_copy_leaves_the_other() {
        let server = Server::new();
        let mut marks = server.marks();
        marks.record_use(7, START + 5_000).unwrap();
        drop(marks);
        // The machine crashed while writing the next lease, before any ID needed it.
        server.scribble(LEASE_COPY_OFFSETS[0] + 7 * LEASE_SIZE, &[0xA5]);
        server.reboot();
        assert_eq!(server.marks().last_used(7), Ok(START + 5_000 + LEASE_MS));
        // Both copies torn, and no mark in memory: an error, never a guess.
        server.scribble(LEASE_COPY_OFFSETS[1] + 7 * LEASE_SIZE, &[0xA5]);
        server.reboot();
        let error = server.marks().last_used(7).unwrap_err();
        assert_eq!(error.state, SqlState::DataCorrupted);
        assert_eq!(server.marks().last_used(8), Ok(START));
    }

    #[test]
    fn a_file_removed_while_in_use_is_written_again_from_the_marks() {
        let server = Server::new();
        let mut holder = server.marks();
        holder.record_use(7, START + 5_000).unwrap();
        std::fs::remove_file(server.path()).unwrap();
        // A new backend makes the file from the marks in memory, and says so.
        let mut newcomer = server.marks();
        assert!(newcomer.take_notes()[0].contains("was removed"));
        assert_eq!(
            server.leases(7).into_iter().flatten().max(),
            Some(START + 5_000 + LEASE_MS)
        );
        // The holder, still writing to the removed file, notices at its next lease write.
        std::fs::remove_file(server.path()).unwrap();
        holder.record_use(7, START + 9_000).unwrap();
        let notes = holder.take_notes();
        assert!(notes
            .iter()
            .any(|note| note.contains("removed or replaced while in use")));
        assert_eq!(
            server.leases(7).into_iter().flatten().max(),
            Some(START + 9_000 + LEASE_MS)
        );
        // After a reboot, nothing is lower than what was used.
        drop((holder, newcomer));
        server.reboot();
        assert_eq!(server.marks().last_used(7), Ok(START + 9_000 + LEASE_MS));
    }

    #[test]
    fn a_file_replaced_by_an_older_copy_is_raised_to_the_marks() {
        let server = Server::new();
        let mut holder = server.marks();
        holder.record_use(7, START + 1_000).unwrap();
        let older = std::fs::read(server.path()).unwrap();
        holder.record_use(7, START + 60_000).unwrap();
        drop(holder);
        // Moved into place: another file. A new backend notices it at once.
        let copy = server.dir.path().join("older");
        std::fs::write(&copy, &older).unwrap();
        std::fs::rename(&copy, server.path()).unwrap();
        let mut newcomer = server.marks();
        assert!(newcomer.take_notes()[0].contains("was replaced"));
        assert_eq!(
            server.leases(7).into_iter().flatten().max(),
            Some(START + 60_000 + LEASE_MS)
        );
        // Copied over it: the same file. Lease writes check other nodes as they go.
        std::fs::write(server.path(), &older).unwrap();
        newcomer.last_used(8).unwrap();
        newcomer.record_use(8, START + 70_000).unwrap();
        assert_eq!(
            server.leases(7).into_iter().flatten().max(),
            Some(START + 60_000 + LEASE_MS)
        );
        server.reboot();
        assert_eq!(server.marks().last_used(7), Ok(START + 60_000 + LEASE_MS));
    }

    #[test]
    fn a_damaged_file_is_written_again_from_the_marks() {
        for damage in [0, 4_000] {
            let server = Server::new();
            let mut holder = server.marks();
            holder.record_use(7, START + 5_000).unwrap();
            server.scribble(damage, &[0x5A; 200]);
            let mut newcomer = server.marks();
            if damage == 0 {
                assert!(newcomer.take_notes()[0].contains("was damaged"));
            }
            assert_eq!(newcomer.last_used(7), Ok(START + 5_000));
            drop((holder, newcomer));
            server.reboot();
            assert_eq!(server.marks().last_used(7), Ok(START + 5_000 + LEASE_MS));
        }
        // Cut short, as by a copy that was interrupted.
        let server = Server::new();
        server.marks().record_use(9, START + 7_000).unwrap();
        std::fs::write(server.path(), b"SNOWLNK2").unwrap();
        let mut newcomer = server.marks();
        assert!(newcomer.take_notes()[0].contains("was damaged"));
        server.reboot();
        assert_eq!(server.marks().last_used(9), Ok(START + 7_000 + LEASE_MS));
    }

    #[test]
    fn damaged_marks_give_way_to_the_lease() {
        let server = Server::new();
        let mut marks = server.marks();
        marks.record_use(7, START + 5_000).unwrap();
        for garbage in [0, u64::MAX, 0x5A5A_5A5A_5A5A_5A5A] {
            marks.segment.mark_word(7).store(garbage, Ordering::Relaxed);
            assert_eq!(marks.last_used(7), Ok(START + 5_000 + LEASE_MS));
        }
    }

    #[test]
    fn marks_made_anew_while_a_holder_went_on_give_way_to_its_lease() {
        let server = Server::new();
        let mut holder = server.marks();
        holder.record_use(7, START + 5_000).unwrap();
        // The shared memory is removed; new backends make it anew from the leases, while the
        // holder goes on with the old one and a later lease.
        server.reboot();
        let mut newcomer = server.marks();
        holder.record_use(7, START + 20_000).unwrap();
        assert_eq!(newcomer.last_used(7), Ok(START + 20_000 + LEASE_MS));
    }

    #[test]
    fn a_copied_data_directory_is_told_apart_and_said() {
        let server = Server::new();
        server.marks().record_use(7, START + 5_000).unwrap();
        let copy = DataDirectory { inode: 4, ..HERE };
        let mut marks = server.marks_of(copy);
        assert!(marks.take_notes()[0].contains("comes from another data directory"));
        assert_eq!(marks.last_used(7), Ok(START + 5_000));
        assert!(server.marks_of(copy).take_notes().is_empty(), "said once");
    }

    #[test]
    fn marks_hold_their_check() {
        for (node, ms) in [(0, 0), (7, START), (MAX_NODE, (1 << MARK_MS_BITS) - 1)] {
            assert_eq!(decode_mark(node, encode_mark(node, ms)), Some(ms));
            assert_eq!(decode_mark(node + 1, encode_mark(node, ms)), None);
        }
        assert_eq!(decode_mark(0, 0), None);
    }

    #[test]
    fn a_directory_that_cannot_hold_the_file_is_an_error() {
        let server = Server::new();
        let error = Marks::open(
            &server.dir.path().join("missing").join("marks"),
            &server.segment,
            HERE,
            START,
        )
        .err()
        .unwrap();
        assert_eq!(error.state, SqlState::IoError);
        assert!(error
            .message
            .starts_with("could not open snowflake high-water mark file"));
    }
}
