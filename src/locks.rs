//! The advisory locks that the extension takes: snowflake node claims and the visit writer of
//! each database. Both are server-wide session locks with a tag of their own.
//!
//! Every SQL form of `pg_advisory_lock()` (one bigint or two integers, shared or exclusive,
//! session or transaction, try or wait) puts the current database's OID into the tag. The
//! extension's tags carry database 0, which no database has, so no role can take, hold or wait on
//! them through SQL; and a node claim covers the whole server, not one database. The class, "snlk"
//! in ASCII, keeps them apart from any lock that another extension takes with database 0.

use pgrx::pg_sys;

/// `classid` of the extension's locks in pg_locks: "snlk" in ASCII.
pub const LOCK_CLASS: u32 = 0x736E_6C6B;

/// What a lock guards, as its `objsubid` in pg_locks; `objid` names the node or the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum LockKind {
    /// A snowflake node (src/snowflake/registry.rs); objid is the node number.
    NodeClaim = 1,
    /// The visit writer of a database (src/visits/writer.rs); objid is the database's OID.
    VisitWriter = 2,
}

/// The tag of the lock of `kind` on `object`.
pub fn lock_tag(kind: LockKind, object: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: 0,
        locktag_field2: LOCK_CLASS,
        locktag_field3: object,
        locktag_field4: kind as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}
