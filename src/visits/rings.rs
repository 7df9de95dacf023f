//! The visit rings of one database: a file in the data directory, mapped by every backend of the
//! database that counts visits and by its visit writer (writer.rs). A file is the one place that
//! the backends of a server share without `shared_preload_libraries`, as for the snowflake
//! high-water marks; it also keeps counted visits through a crash of any process, since the page
//! cache outlives them.
//!
//! Each backend owns one ring, by its slot in PostgreSQL's process array (no two live processes
//! share one), and appends a record per visit: the link and the time. The writer alone takes
//! records out. So every ring has one producer and one consumer, and needs no lock: the producer
//! publishes a record by advancing the ring's head after writing it, the consumer frees it by
//! advancing the tail. A process that dies mid-append never advanced the head, and the next owner
//! of its slot writes over the half-written record.
//!
//! The writer frees records only once the transaction that wrote their visits has committed, so
//! a crash loses none: a new writer reads them again. Between that commit and the freeing, a crash
//! would count them twice; so before committing, the writer notes in the file its transaction ID
//! and the tails it is about to set, and a new writer that finds such a note sets those tails
//! if, and only if, that transaction committed.
//!
//! A crash of the machine can leave any mix of old and new pages of the file on disk, so records
//! count only while the machine has not rebooted since they were written: the file records the
//! boot it belongs to (the kernel's boot ID), and a file of an earlier boot is made anew.
//!
//! Every process that has the file open holds a shared lock (flock) on it, and a file is removed
//! only under an exclusive one (remove_unused()): never while a process may still put visits in it.
//!
//! The header also tells backends whether a writer is running (it notes the time at every pass)
//! and lets one of them, not all, ask for a new writer when none is.
//!
//! Beside its ring, each backend has a request block, through which it asks the writer to count a
//! visit of a link with max_visits in a transaction of the writer's own, and waits for the answer
//! (src/visits/limited.rs). The backend writes the request and then its number; the writer
//! answers with the number it answers, so that a late answer to an abandoned request is never
//! taken for the answer to a new one.
//!
//! The file is sparse: a ring takes disk space only once a backend in its slot counts visits.
//! Nothing is ever written through the map where the file system has no block yet, since on a full
//! disk that write would kill the process with SIGBUS: the header and control blocks are written
//! out when the file is made, and each ring's records by its owner (reserve()) before its first
//! visit. A full disk then shows as an error of reserve(), and the backend writes its visits
//! itself. (A copy-on-write file system, such as btrfs or ZFS, needs new blocks for every write;
//! there a full disk can still end a process.)

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use memmap2::MmapMut;

use crate::data_file;

/// The first bytes of the file, with the version of its format.
const MAGIC: &[u8; 8] = b"SNLVIS02";
/// Header: the magic, the number of rings at RINGS_OFFSET, the boot at BOOT_OFFSET, four times
/// (milliseconds since 2000-01-01, PostgreSQL's epoch) on cache lines of their own, and the writer's note: the
/// transaction whose commit sets the pending tails (0: none).
const RINGS_OFFSET: usize = 8;
const BOOT_OFFSET: usize = 16;
const WRITER_SEEN_OFFSET: usize = 64;
const WRITER_REQUESTED_OFFSET: usize = 128;
const NOTED_TRANSACTION_OFFSET: usize = 192;
const WRITER_FAILED_OFFSET: usize = 256;
/// The writer's slot in PostgreSQL's process array, plus one (0: no writer), for its latch.
const WRITER_PROCESS_OFFSET: usize = 320;
const WRITER_STARTED_OFFSET: usize = 384;
/// For snowlink_visit_writers: visits the writers of this file wrote, visits backends dropped, and
/// when a writer last wrote (ms since 2000-01-01), since the file was made. Files made before
/// these existed have zeros there.
const WRITTEN_OFFSET: usize = 448;
const DROPPED_OFFSET: usize = 512;
const WRITER_WROTE_OFFSET: usize = 576;
const HEADER_SIZE: usize = 4096;
/// Per ring, the head and whether its records have disk space (written by its backend), the tail
/// and pending tail (written by the writer), the backend's request and the writer's answer, on
/// separate cache lines so that neither side slows the other.
const CONTROL_SIZE: usize = 512;
const RESERVED_OFFSET: usize = 8;
const TAIL_OFFSET: usize = 64;
const PENDING_TAIL_OFFSET: usize = 72;
/// The request: its number, the link, the code's length (u64::MAX: no code) and the code.
const REQUEST_OFFSET: usize = 128;
const REQUEST_LINK_OFFSET: usize = REQUEST_OFFSET + 8;
const REQUEST_CODE_LENGTH_OFFSET: usize = REQUEST_OFFSET + 16;
const REQUEST_CODE_OFFSET: usize = REQUEST_OFFSET + 24;
/// The longest code a request carries; the writer finds a longer one by the link's ID.
pub const MAX_REQUEST_CODE: usize = 256;
/// The answer: the number of the request it answers, then the answer.
const ANSWER_OFFSET: usize = 448;
const ANSWER_VALUE_OFFSET: usize = ANSWER_OFFSET + 8;
/// Records a ring holds: a backend appends up to this many visits between two writes of the
/// writer (every flush interval) before it falls back to writing visits itself.
pub const RING_CAPACITY: u64 = 65_536;
/// A record: the link ID, then the time of the visit (a PostgreSQL timestamp).
const RECORD_SIZE: usize = 16;
const RING_SIZE: usize = RING_CAPACITY as usize * RECORD_SIZE;

/// A backend's request to count a visit of a limited link, as the writer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRequest {
    pub ring: usize,
    pub number: u64,
    pub link_id: i64,
    /// None for a code longer than MAX_REQUEST_CODE bytes.
    pub code: Option<String>,
}

/// The writer's answer to a CountRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum CountAnswer {
    /// Counted, and committed: the backend serves the link.
    Counted = 1,
    /// The link is no longer live, or its visits are used up.
    NotLive = 2,
    /// Another transaction held the link's row for too long.
    Locked = 3,
    /// The writer could not count it; the server log says why.
    Failed = 4,
}

/// The visit rings of one database, mapped into this process.
pub struct VisitRings {
    file: File,
    map: MmapMut,
    rings: usize,
}

impl VisitRings {
    /// Opens the rings file at `path` with `rings` rings, creating it when it does not exist yet
    /// or belongs to another boot than `boot`, and holds a shared lock on it while it is open.
    pub fn open(path: &Path, rings: usize, boot: u64) -> std::io::Result<VisitRings> {
        let file = open_locked(path)?;
        let size = file_size(rings);
        if !is_ready(&file, rings, boot)? {
            // Whoever takes the directory's lock first makes the file; whoever comes second finds
            // it done. (Not the file's own lock, which every process holds shared.)
            let directory = File::open(path.parent().unwrap_or(Path::new(".")))?;
            directory.lock()?;
            let made = make(&file, rings, boot);
            directory.unlock()?;
            made?;
        }
        // SAFETY: the file has its full size and is never truncated; every process changes it
        // only through atomic stores.
        let map = unsafe { MmapMut::map_mut(&file) }?;
        if map.len() != size {
            // Only something other than this code changes the size of a ready file.
            return Err(std::io::Error::other(format!(
                "the file has {} bytes, not {size}",
                map.len()
            )));
        }
        Ok(VisitRings { file, map, rings })
    }

    /// Opens the rings file at `path` for reading its state, if it exists, is complete and belongs
    /// to `boot`; makes nothing.
    pub fn open_existing(
        path: &Path,
        rings: usize,
        boot: u64,
    ) -> std::io::Result<Option<VisitRings>> {
        let file = match File::options().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        file.lock_shared()?;
        if !is_at(&file, path)? || !is_ready(&file, rings, boot)? {
            return Ok(None);
        }
        // SAFETY: as in open().
        let map = unsafe { MmapMut::map_mut(&file) }?;
        Ok((map.len() == file_size(rings)).then_some(VisitRings { file, map, rings }))
    }

    pub fn rings(&self) -> usize {
        self.rings
    }

    /// Visits in the rings that no writer has written yet.
    pub fn pending(&self) -> u64 {
        (0..self.rings)
            .map(|ring| {
                let head = self.head(ring).load(Ordering::Acquire);
                head.wrapping_sub(self.tail_of(ring)).min(RING_CAPACITY)
            })
            .sum()
    }

    /// Notes that a writer wrote `visits` at `now_ms`.
    pub fn add_written(&self, visits: u64, now_ms: i64) {
        self.atomic_u64(WRITTEN_OFFSET)
            .fetch_add(visits, Ordering::Relaxed);
        self.atomic_i64(WRITER_WROTE_OFFSET)
            .store(now_ms, Ordering::Release);
    }

    /// Visits the writers of this file wrote since it was made.
    pub fn written(&self) -> u64 {
        self.atomic_u64(WRITTEN_OFFSET).load(Ordering::Relaxed)
    }

    /// When a writer last wrote visits, in milliseconds since 2000-01-01 (0: never).
    pub fn writer_wrote_ms(&self) -> i64 {
        self.atomic_i64(WRITER_WROTE_OFFSET).load(Ordering::Acquire)
    }

    /// Notes that a backend of the database dropped `visits` for want of room to hold them.
    pub fn add_dropped(&self, visits: u64) {
        self.atomic_u64(DROPPED_OFFSET)
            .fetch_add(visits, Ordering::Relaxed);
    }

    /// Visits the backends of the database dropped since the file was made.
    pub fn dropped(&self) -> u64 {
        self.atomic_u64(DROPPED_OFFSET).load(Ordering::Relaxed)
    }

    /// Gives the records of `ring` their disk space, unless they have it: zeros written through
    /// the file, which fail on a full disk where a write through the map would kill the process.
    /// Only the ring's owner calls this, before its first push(); a ring without space holds no
    /// record, so nothing is overwritten.
    pub fn reserve(&self, ring: usize) -> std::io::Result<()> {
        let reserved = self.atomic_u64(control_offset(ring) + RESERVED_OFFSET);
        if reserved.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        let zeros = vec![0u8; RING_SIZE];
        self.file
            .write_all_at(&zeros, self.record_offset(ring, 0) as u64)?;
        reserved.store(1, Ordering::Release);
        Ok(())
    }

    /// Appends a visit of `link_id` at `at` to `ring`; false when the ring is full. Only the
    /// ring's owner calls this, once reserve() has succeeded.
    pub fn push(&self, ring: usize, link_id: i64, at: i64) -> bool {
        let head = self.head(ring).load(Ordering::Relaxed);
        let tail = self.tail(ring).load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= RING_CAPACITY {
            return false;
        }
        let record = self.record_offset(ring, head);
        self.atomic_i64(record).store(link_id, Ordering::Relaxed);
        self.atomic_i64(record + 8).store(at, Ordering::Relaxed);
        self.head(ring)
            .store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Where the writer has freed `ring` up to: the first record it has not written.
    pub fn tail_of(&self, ring: usize) -> u64 {
        self.tail(ring).load(Ordering::Relaxed)
    }

    /// Hands each visit published in `ring` from position `from` on to `visit`, as (link_id, at),
    /// oldest first, and returns the position after the last one. Only the writer calls this;
    /// the records stay in the ring until release().
    pub fn read(&self, ring: usize, from: u64, mut visit: impl FnMut(i64, i64)) -> u64 {
        let head = self.head(ring).load(Ordering::Acquire);
        let tail = self.tail_of(ring);
        if head.wrapping_sub(tail) > RING_CAPACITY
            || from.wrapping_sub(tail) > head.wrapping_sub(tail)
        {
            // Cannot come from push(): the file was changed by something else. Nothing in the
            // ring can be trusted; it starts again empty.
            self.tail(ring).store(head, Ordering::Release);
            return head;
        }
        for position in from..head {
            let record = self.record_offset(ring, position);
            visit(
                self.atomic_i64(record).load(Ordering::Relaxed),
                self.atomic_i64(record + 8).load(Ordering::Relaxed),
            );
        }
        head
    }

    /// Notes, before `transaction` commits, that its commit frees every ring up to `tails`.
    pub fn note_release(&self, transaction: u64, tails: &[u64]) {
        for (ring, &tail) in tails.iter().enumerate() {
            self.pending_tail(ring).store(tail, Ordering::Relaxed);
        }
        self.atomic_u64(NOTED_TRANSACTION_OFFSET)
            .store(transaction, Ordering::Release);
    }

    /// The transaction of a note that no release() followed.
    pub fn noted_transaction(&self) -> Option<u64> {
        let transaction = self
            .atomic_u64(NOTED_TRANSACTION_OFFSET)
            .load(Ordering::Acquire);
        (transaction != 0).then_some(transaction)
    }

    /// Settles the note: frees the noted records if its transaction committed.
    pub fn settle_note(&self, committed: bool) {
        if committed {
            let tails: Vec<u64> = (0..self.rings)
                .map(|ring| self.pending_tail(ring).load(Ordering::Relaxed))
                .collect();
            self.release(&tails);
        } else {
            self.atomic_u64(NOTED_TRANSACTION_OFFSET)
                .store(0, Ordering::Release);
        }
    }

    /// Frees every ring up to `tails`, whose visits are written, and clears the note.
    pub fn release(&self, tails: &[u64]) {
        for (ring, &tail) in tails.iter().enumerate() {
            self.tail(ring).store(tail, Ordering::Release);
        }
        self.atomic_u64(NOTED_TRANSACTION_OFFSET)
            .store(0, Ordering::Release);
    }

    /// When a writer last showed it was running, in milliseconds since 2000-01-01 (0: never, or
    /// it has stopped).
    pub fn writer_seen_ms(&self) -> i64 {
        self.atomic_i64(WRITER_SEEN_OFFSET).load(Ordering::Acquire)
    }

    pub fn set_writer_seen_ms(&self, now_ms: i64) {
        self.atomic_i64(WRITER_SEEN_OFFSET)
            .store(now_ms, Ordering::Release);
    }

    /// Notes that the writer stops: the next backend to count a visit asks for a new one at once.
    pub fn set_writer_stopped(&self) {
        self.atomic_i64(WRITER_REQUESTED_OFFSET)
            .store(0, Ordering::Release);
        self.atomic_i64(WRITER_STARTED_OFFSET)
            .store(0, Ordering::Release);
        self.set_writer_seen_ms(0);
    }

    /// When the postmaster last took a request to start a writer, in milliseconds since
    /// 2000-01-01 (0: not since the last one stopped).
    pub fn writer_started_ms(&self) -> i64 {
        self.atomic_i64(WRITER_STARTED_OFFSET)
            .load(Ordering::Acquire)
    }

    pub fn set_writer_started(&self, now_ms: i64) {
        self.atomic_i64(WRITER_STARTED_OFFSET)
            .store(now_ms, Ordering::Release);
    }

    /// When a writer last could not start, in milliseconds since 2000-01-01 (0: never).
    pub fn writer_failed_ms(&self) -> i64 {
        self.atomic_i64(WRITER_FAILED_OFFSET)
            .load(Ordering::Acquire)
    }

    /// Notes that no writer could start at `now_ms`; the next request may come at once.
    pub fn set_writer_failed(&self, now_ms: i64) {
        self.atomic_i64(WRITER_FAILED_OFFSET)
            .store(now_ms, Ordering::Release);
        self.atomic_i64(WRITER_REQUESTED_OFFSET)
            .store(0, Ordering::Release);
    }

    /// Whether the caller should ask for a writer now: true when the last request came before
    /// `requested_before_ms` (or after `now_ms`, by a clock that has since stepped back), for
    /// one caller however many ask at once.
    pub fn claim_writer_request(&self, now_ms: i64, requested_before_ms: i64) -> bool {
        let requested = self.atomic_i64(WRITER_REQUESTED_OFFSET);
        let last = requested.load(Ordering::Acquire);
        (last < requested_before_ms || last > now_ms)
            && requested
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Asks the writer to count a visit of the limited link `link_id`, whose code is `code`;
    /// returns the request's number. Only the ring's owner calls this.
    pub fn request_count(&self, ring: usize, link_id: i64, code: &str) -> u64 {
        let base = control_offset(ring);
        let number = self
            .atomic_u64(base + REQUEST_OFFSET)
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        self.atomic_i64(base + REQUEST_LINK_OFFSET)
            .store(link_id, Ordering::Relaxed);
        let length = if code.len() <= MAX_REQUEST_CODE {
            for (index, chunk) in code.as_bytes().chunks(8).enumerate() {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                self.atomic_u64(base + REQUEST_CODE_OFFSET + index * 8)
                    .store(u64::from_ne_bytes(word), Ordering::Relaxed);
            }
            code.len() as u64
        } else {
            u64::MAX
        };
        self.atomic_u64(base + REQUEST_CODE_LENGTH_OFFSET)
            .store(length, Ordering::Relaxed);
        self.atomic_u64(base + REQUEST_OFFSET)
            .store(number, Ordering::Release);
        number
    }

    /// The writer's answer to request `number` of `ring`, once it has come.
    pub fn answer(&self, ring: usize, number: u64) -> Option<CountAnswer> {
        let base = control_offset(ring);
        if self
            .atomic_u64(base + ANSWER_OFFSET)
            .load(Ordering::Acquire)
            != number
        {
            return None;
        }
        Some(
            match self
                .atomic_i64(base + ANSWER_VALUE_OFFSET)
                .load(Ordering::Relaxed)
            {
                1 => CountAnswer::Counted,
                2 => CountAnswer::NotLive,
                3 => CountAnswer::Locked,
                _ => CountAnswer::Failed,
            },
        )
    }

    /// The requests that wait for an answer. Only the writer calls this.
    pub fn pending_requests(&self) -> Vec<CountRequest> {
        (0..self.rings)
            .filter_map(|ring| {
                let base = control_offset(ring);
                let number = self
                    .atomic_u64(base + REQUEST_OFFSET)
                    .load(Ordering::Acquire);
                if number
                    == self
                        .atomic_u64(base + ANSWER_OFFSET)
                        .load(Ordering::Relaxed)
                {
                    return None;
                }
                let link_id = self
                    .atomic_i64(base + REQUEST_LINK_OFFSET)
                    .load(Ordering::Relaxed);
                let length = self
                    .atomic_u64(base + REQUEST_CODE_LENGTH_OFFSET)
                    .load(Ordering::Relaxed);
                let code = (length <= MAX_REQUEST_CODE as u64).then(|| {
                    let bytes: Vec<u8> = (0..(length as usize).div_ceil(8))
                        .flat_map(|index| {
                            self.atomic_u64(base + REQUEST_CODE_OFFSET + index * 8)
                                .load(Ordering::Relaxed)
                                .to_ne_bytes()
                        })
                        .take(length as usize)
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                });
                // A backend that gave up on its request may be writing its next one: read that
                // one on the next pass.
                let unchanged = self
                    .atomic_u64(base + REQUEST_OFFSET)
                    .load(Ordering::Acquire);
                (unchanged == number).then_some(CountRequest {
                    ring,
                    number,
                    link_id,
                    code,
                })
            })
            .collect()
    }

    /// Answers request `number` of `ring`. Only the writer calls this, once what it answers is
    /// committed.
    pub fn set_answer(&self, ring: usize, number: u64, answer: CountAnswer) {
        let base = control_offset(ring);
        self.atomic_i64(base + ANSWER_VALUE_OFFSET)
            .store(answer as i64, Ordering::Relaxed);
        self.atomic_u64(base + ANSWER_OFFSET)
            .store(number, Ordering::Release);
    }

    /// The writer's slot in PostgreSQL's process array, while one runs.
    pub fn writer_process(&self) -> Option<usize> {
        let stored = self
            .atomic_u64(WRITER_PROCESS_OFFSET)
            .load(Ordering::Acquire);
        stored.checked_sub(1).map(|slot| slot as usize)
    }

    pub fn set_writer_process(&self, slot: Option<usize>) {
        let stored = slot.map_or(0, |slot| slot as u64 + 1);
        self.atomic_u64(WRITER_PROCESS_OFFSET)
            .store(stored, Ordering::Release);
    }

    fn head(&self, ring: usize) -> &AtomicU64 {
        self.atomic_u64(control_offset(ring))
    }

    fn tail(&self, ring: usize) -> &AtomicU64 {
        self.atomic_u64(control_offset(ring) + TAIL_OFFSET)
    }

    fn pending_tail(&self, ring: usize) -> &AtomicU64 {
        self.atomic_u64(control_offset(ring) + PENDING_TAIL_OFFSET)
    }

    fn record_offset(&self, ring: usize, position: u64) -> usize {
        assert!(ring < self.rings);
        records_offset(self.rings)
            + ring * RING_SIZE
            + (position % RING_CAPACITY) as usize * RECORD_SIZE
    }

    fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: in bounds and aligned (the mapping is page-aligned); the file is shared memory
        // that is only ever accessed atomically.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn atomic_i64(&self, offset: usize) -> &AtomicI64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: as in atomic_u64.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicI64) }
    }
}

/// Removes the rings file at `path` unless a process has it open (holds its shared lock); whether
/// it is gone.
pub fn remove_unused(path: &Path) -> std::io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(error) => return Err(error),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(error)) => return Err(error),
    }
    if is_at(&file, path)? {
        std::fs::remove_file(path)?;
    }
    Ok(true)
}

/// The file at `path`, made if need be, with a shared lock that shows it in use; opened again if it
/// was removed before the lock was taken.
fn open_locked(path: &Path) -> std::io::Result<File> {
    loop {
        let file = data_file::open_or_create(path)?;
        file.lock_shared()?;
        if is_at(&file, path)? {
            return Ok(file);
        }
    }
}

/// Whether `file` is still the file at `path`, not one that was removed or replaced.
fn is_at(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    Ok(match std::fs::metadata(path) {
        Ok(named) => (named.dev(), named.ino()) == (open.dev(), open.ino()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(error),
    })
}

fn control_offset(ring: usize) -> usize {
    HEADER_SIZE + ring * CONTROL_SIZE
}

fn records_offset(rings: usize) -> usize {
    control_offset(rings).next_multiple_of(HEADER_SIZE)
}

fn file_size(rings: usize) -> usize {
    records_offset(rings) + rings * RING_SIZE
}

/// Whether the file is complete, for `rings` rings, and of this boot.
fn is_ready(file: &File, rings: usize, boot: u64) -> std::io::Result<bool> {
    if file.metadata()?.len() != file_size(rings) as u64 {
        return Ok(false);
    }
    let mut header = [0u8; BOOT_OFFSET + 8];
    file.read_exact_at(&mut header, 0)?;
    let field = |offset: usize| u64::from_ne_bytes(header[offset..offset + 8].try_into().unwrap());
    Ok(&header[..8] == MAGIC && field(RINGS_OFFSET) == rings as u64 && field(BOOT_OFFSET) == boot)
}

/// Under the file's lock: makes the file, all rings empty, unless it is ready. The size comes
/// first (the rings' records as a hole, see reserve()), then the header and control blocks, which
/// every process writes through its map, as zeros that take their disk space now; the magic last.
fn make(file: &File, rings: usize, boot: u64) -> std::io::Result<()> {
    if is_ready(file, rings, boot)? {
        return Ok(());
    }
    file.set_len(0)?;
    file.set_len(file_size(rings) as u64)?;
    let mut header = vec![0u8; records_offset(rings)];
    header[RINGS_OFFSET..RINGS_OFFSET + 8].copy_from_slice(&(rings as u64).to_ne_bytes());
    header[BOOT_OFFSET..BOOT_OFFSET + 8].copy_from_slice(&boot.to_ne_bytes());
    file.write_all_at(&header, 0)?;
    file.write_all_at(MAGIC, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: u64 = 1;

    fn rings_file(dir: &tempfile::TempDir, rings: usize) -> VisitRings {
        VisitRings::open(&dir.path().join("rings"), rings, BOOT).unwrap()
    }

    /// Reads and releases every visit of `ring`.
    fn drained(rings: &VisitRings, ring: usize) -> Vec<(i64, i64)> {
        let mut visits = Vec::new();
        let mut tails: Vec<u64> = (0..rings.rings()).map(|ring| rings.tail_of(ring)).collect();
        tails[ring] = rings.read(ring, tails[ring], |link_id, at| visits.push((link_id, at)));
        rings.release(&tails);
        visits
    }

    #[test]
    fn the_state_a_watcher_reads_is_that_of_the_writer_and_backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rings");
        assert!(
            VisitRings::open_existing(&path, 4, BOOT).unwrap().is_none(),
            "makes nothing"
        );
        let backend = rings_file(&dir, 4);
        assert!(backend.push(1, 7, 100) && backend.push(1, 8, 101) && backend.push(2, 9, 102));
        backend.add_dropped(5);
        let watcher = VisitRings::open_existing(&path, 4, BOOT).unwrap().unwrap();
        assert_eq!(
            (watcher.pending(), watcher.written(), watcher.dropped()),
            (3, 0, 5)
        );
        assert_eq!(watcher.writer_wrote_ms(), 0);
        assert_eq!(drained(&backend, 1).len(), 2);
        backend.add_written(2, 1_000);
        assert_eq!((watcher.pending(), watcher.written()), (1, 2));
        assert_eq!(watcher.writer_wrote_ms(), 1_000);
        assert!(
            VisitRings::open_existing(&path, 4, BOOT + 1)
                .unwrap()
                .is_none(),
            "another boot"
        );
    }

    #[test]
    fn visits_reach_the_writer_through_any_mapping_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let backend = rings_file(&dir, 4);
        let writer = rings_file(&dir, 4);
        assert!(backend.push(3, 7, 100));
        assert!(backend.push(3, 8, 101));
        assert!(backend.push(0, 9, 102));
        assert_eq!(drained(&writer, 3), vec![(7, 100), (8, 101)]);
        assert_eq!(drained(&writer, 0), vec![(9, 102)]);
        assert!(drained(&writer, 3).is_empty(), "taken once");
    }

    #[test]
    fn a_ring_gets_its_disk_space_once_before_its_first_visit() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 2);
        let blocks = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(dir.path().join("rings"))
                .unwrap()
                .blocks()
                * 512
        };
        let before = blocks();
        assert!(before < file_size(2) as u64, "made sparse");
        rings.reserve(1).unwrap();
        assert!(blocks() >= before + RING_SIZE as u64);
        assert!(rings.push(1, 5, 6));
        // Reserved already: the record stays.
        rings.reserve(1).unwrap();
        assert_eq!(drained(&rings_file(&dir, 2), 1), vec![(5, 6)]);
    }

    #[test]
    fn records_stay_until_released_and_are_read_from_where_the_reader_left() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 1);
        rings.push(0, 1, 10);
        let mut seen = Vec::new();
        let read_to = rings.read(0, rings.tail_of(0), |link_id, _| seen.push(link_id));
        rings.push(0, 2, 20);
        let read_to = rings.read(0, read_to, |link_id, _| seen.push(link_id));
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(read_to, 2);
        assert_eq!(rings.tail_of(0), 0, "nothing is freed before release()");
        // A new writer, after a crash, reads them again.
        assert_eq!(drained(&rings_file(&dir, 1), 0), vec![(1, 10), (2, 20)]);
    }

    #[test]
    fn a_full_ring_refuses_until_the_writer_releases_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 1);
        for visit in 0..RING_CAPACITY as i64 {
            assert!(rings.push(0, visit, visit));
        }
        assert!(!rings.push(0, -1, -1));
        let read_to = rings.read(0, 0, |_, _| {});
        assert!(!rings.push(0, -1, -1), "read but not yet released");
        rings.release(&[read_to]);
        // Records wrap around the end of the ring.
        assert!(rings.push(0, 1, 2));
        assert_eq!(drained(&rings, 0), vec![(1, 2)]);
    }

    #[test]
    fn a_note_frees_the_records_only_if_its_transaction_committed() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 2);
        rings.push(0, 1, 10);
        rings.push(1, 2, 20);
        let tails = [rings.read(0, 0, |_, _| {}), rings.read(1, 0, |_, _| {})];
        assert_eq!(rings.noted_transaction(), None);
        rings.note_release(77, &tails);
        // The writer crashes before its release(); the next one settles the note.
        let next = rings_file(&dir, 2);
        assert_eq!(next.noted_transaction(), Some(77));
        next.settle_note(false);
        assert_eq!(next.noted_transaction(), None);
        assert_eq!(
            (next.tail_of(0), next.tail_of(1)),
            (0, 0),
            "rolled back: read again"
        );
        next.note_release(78, &tails);
        next.settle_note(true);
        assert_eq!(
            (next.tail_of(0), next.tail_of(1)),
            (1, 1),
            "committed: freed"
        );
        assert_eq!(next.noted_transaction(), None);
    }

    #[test]
    fn a_request_is_answered_by_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let backend = rings_file(&dir, 3);
        let writer = rings_file(&dir, 3);
        assert!(writer.pending_requests().is_empty());
        let first = backend.request_count(2, 77, "spring-sale");
        assert_eq!(backend.answer(2, first), None);
        assert_eq!(
            writer.pending_requests(),
            vec![CountRequest {
                ring: 2,
                number: first,
                link_id: 77,
                code: Some("spring-sale".into())
            }]
        );
        writer.set_answer(2, first, CountAnswer::Counted);
        assert_eq!(backend.answer(2, first), Some(CountAnswer::Counted));
        assert!(writer.pending_requests().is_empty());

        // A request given up on before its answer: the late answer is not the next one's.
        let abandoned = backend.request_count(2, 78, "x");
        let long_code = "c".repeat(MAX_REQUEST_CODE + 1);
        let next = backend.request_count(2, 79, &long_code);
        writer.set_answer(2, abandoned, CountAnswer::NotLive);
        assert_eq!(backend.answer(2, next), None);
        let pending = writer.pending_requests();
        assert_eq!((pending[0].number, pending[0].link_id), (next, 79));
        assert_eq!(pending[0].code, None, "too long to carry");
        writer.set_answer(2, next, CountAnswer::Locked);
        assert_eq!(backend.answer(2, next), Some(CountAnswer::Locked));
    }

    #[test]
    fn the_writer_process_is_known_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 1);
        assert_eq!(rings.writer_process(), None);
        rings.set_writer_process(Some(0));
        assert_eq!(rings_file(&dir, 1).writer_process(), Some(0));
        rings.set_writer_process(None);
        assert_eq!(rings.writer_process(), None);
    }

    #[test]
    fn a_file_in_use_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rings");
        let rings = rings_file(&dir, 1);
        assert!(!remove_unused(&path).unwrap());
        assert!(path.exists());
        drop(rings);
        assert!(remove_unused(&path).unwrap());
        assert!(!path.exists());
        assert!(remove_unused(&path).unwrap(), "gone already");
    }

    #[test]
    fn records_outlive_the_processes_that_mapped_them() {
        let dir = tempfile::tempdir().unwrap();
        rings_file(&dir, 2).push(1, 5, 6);
        assert_eq!(drained(&rings_file(&dir, 2), 1), vec![(5, 6)]);
    }

    #[test]
    fn records_of_an_earlier_boot_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        rings_file(&dir, 1).push(0, 5, 6);
        let after_reboot = VisitRings::open(&dir.path().join("rings"), 1, BOOT + 1).unwrap();
        assert!(drained(&after_reboot, 0).is_empty());
    }

    #[test]
    fn a_file_of_another_size_or_format_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rings"), b"not a rings file").unwrap();
        let rings = rings_file(&dir, 2);
        assert!(drained(&rings, 1).is_empty());
        rings.push(1, 5, 6);
        let more_rings = rings_file(&dir, 3);
        assert!(drained(&more_rings, 1).is_empty());
    }

    #[test]
    fn a_damaged_ring_starts_again_empty() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 1);
        rings.head(0).store(RING_CAPACITY + 1, Ordering::Relaxed);
        let read_to = rings.read(0, 0, |_, _| panic!("a record of a damaged ring"));
        assert_eq!(read_to, RING_CAPACITY + 1);
        assert!(rings.push(0, 1, 2));
        assert_eq!(drained(&rings, 0), vec![(1, 2)]);
    }

    #[test]
    fn one_caller_at_a_time_asks_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let rings = rings_file(&dir, 1);
        assert_eq!(rings.writer_seen_ms(), 0);
        assert!(rings.claim_writer_request(10_000, 9_000));
        assert!(!rings.claim_writer_request(10_500, 9_500));
        assert!(rings.claim_writer_request(11_000, 10_001));
        assert!(
            rings.claim_writer_request(5_000, 4_000),
            "after a clock step back"
        );
        rings.set_writer_seen_ms(12_000);
        assert_eq!(rings_file(&dir, 1).writer_seen_ms(), 12_000);
        rings.set_writer_stopped();
        assert_eq!(rings.writer_seen_ms(), 0);
        assert!(
            rings.claim_writer_request(12_100, 7_100),
            "at once after a stop"
        );
        rings.set_writer_started(12_150);
        assert_eq!(rings.writer_started_ms(), 12_150);
        rings.set_writer_failed(12_200);
        assert_eq!(rings.writer_failed_ms(), 12_200);
        assert!(
            rings.claim_writer_request(12_300, 7_300),
            "at once after a failure"
        );
    }
}
