//! Node claims as session-level advisory locks: the lock is the claim, and it goes away when the
//! backend exits, as a ZooKeeper ephemeral node does. The tag (src/locks.rs) covers the whole
//! server, and no SQL call can take it.

use pgrx::pg_sys;

use crate::locks::{lock_tag, LockKind};
use crate::snowflake::generator::NodeRegistry;

pub struct AdvisoryLocks;

fn node_lock(node: i32) -> pg_sys::LOCKTAG {
    lock_tag(LockKind::NodeClaim, node as u32)
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
