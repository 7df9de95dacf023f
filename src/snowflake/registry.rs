//! Node claims as session-level advisory locks: the lock is the claim, and it goes away when the
//! backend exits, as a ZooKeeper ephemeral node does.
//!
//! The lock tag carries database 0, so a claim covers the whole server (pg_advisory_lock() puts the
//! current database there, which would let two databases hold the same node). Database 0 and a
//! class of our own keep the claims apart from any application's advisory locks.

use pgrx::pg_sys;

use crate::snowflake::generator::NodeRegistry;

/// `classid` of the claims in pg_locks: "snlk" in ASCII. The view snowflake_nodes reads it and
/// LOCK_KIND through _snowflake_lock_tag().
pub const LOCK_CLASS: u32 = 0x736E_6C6B;
/// `objsubid` of the claims in pg_locks.
pub const LOCK_KIND: u16 = 1;

pub struct AdvisoryLocks;

fn node_lock(node: i32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: 0,
        locktag_field2: LOCK_CLASS,
        locktag_field3: node as u32,
        locktag_field4: LOCK_KIND,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

const MODE: pg_sys::LOCKMODE = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;

impl NodeRegistry for AdvisoryLocks {
    fn claim_lowest_free(&mut self, min: i32, max: i32) -> Option<i32> {
        (min..=max).find(|node| {
            let tag = node_lock(*node);
            // SAFETY: a valid tag; session locks outlive the transaction, and dontWait never blocks.
            let result = unsafe { pg_sys::LockAcquire(&tag, MODE, true, true) };
            result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
        })
    }

    fn holds(&mut self, node: i32) -> bool {
        let tag = node_lock(node);
        // SAFETY: a valid tag; this only reads the backend's local lock table.
        unsafe {
            #[cfg(any(feature = "pg15", feature = "pg16"))]
            return pg_sys::LockHeldByMe(&tag, MODE);
            #[cfg(not(any(feature = "pg15", feature = "pg16")))]
            return pg_sys::LockHeldByMe(&tag, MODE, false);
        }
    }

    fn release(&mut self, node: i32) {
        let tag = node_lock(node);
        // SAFETY: a valid tag of a session lock this backend holds.
        unsafe {
            pg_sys::LockRelease(&tag, MODE, true);
        }
    }
}
