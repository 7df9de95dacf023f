//! Reads one link by its code and domain straight from the unique index on shortlinks (code,
//! domain), as the executor would for `WHERE code = $1 AND domain = $2` (or `domain IS NULL`, the
//! default domain), but without planning or running a query. resolve() spends most of
//! its time here, and a query through SPI cost it a fifth of a plain SELECT's throughput.
//!
//! The table and index are found by name in the extension's schema and checked against what
//! sql/src/tables.sql creates. Anything unexpected reports `Lookup::Unavailable`, and the caller
//! takes the PL/pgSQL path, which reads the table with a query. So does a table that Citus
//! manages: its rows are in shards, which the query reaches, and the table itself holds none
//! (or those it had before it was distributed).

use std::cell::Cell;
use std::ffi::c_char;

use pgrx::prelude::*;
use pgrx::{PgRelation, PgTupleDesc};

use super::link_state::LinkState;

/// The columns resolve() reads, as the table defines them. A table of 0.2.0, which a server
/// serves until ALTER EXTENSION UPDATE, has no domain: every link is in the default domain, and
/// the code index is on the code alone.
const COLUMNS: [(&str, pg_sys::Oid); 10] = [
    ("id", pg_sys::INT8OID),
    ("code", pg_sys::TEXTOID),
    ("domain", pg_sys::TEXTOID),
    ("url", pg_sys::TEXTOID),
    ("disabled", pg_sys::BOOLOID),
    ("valid_from", pg_sys::TIMESTAMPTZOID),
    ("expires_at", pg_sys::TIMESTAMPTZOID),
    ("max_visits", pg_sys::INT8OID),
    ("visits", pg_sys::INT8OID),
    ("redirect_status", pg_sys::INT2OID),
];
const ID: usize = 0;
const CODE: usize = 1;
const DOMAIN: usize = 2;
const URL: usize = 3;
const DISABLED: usize = 4;
const VALID_FROM: usize = 5;
const EXPIRES_AT: usize = 6;
const MAX_VISITS: usize = 7;
const VISITS: usize = 8;
const REDIRECT_STATUS: usize = 9;

pub enum Lookup {
    Live(LiveLink),
    NotLive,
    /// The table or its code index is not as the extension made it.
    Unavailable,
}

pub struct LiveLink {
    pub id: i64,
    pub url: String,
    pub redirect_status: i16,
    pub expires_at: Option<i64>,
    /// Has max_visits, so each visit must be counted under the row lock.
    pub limited: bool,
}

/// The link table of a schema, checked: its relations and where COLUMNS are. Kept until
/// PostgreSQL invalidates either relation (ALTER TABLE, DROP, REINDEX, ...), so that a click
/// neither looks up names nor checks the table again.
#[derive(Clone, Copy)]
struct CheckedTable {
    schema: pg_sys::Oid,
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    attnums: [i16; COLUMNS.len()],
    /// Citus manages the table: only a query reads its rows.
    citus: bool,
    /// Citus keeps shards of the table on this node (sql/src/citus.sql): a query by code must be
    /// planned at each call here.
    shards_here: bool,
}

thread_local! {
    static CHECKED_TABLE: Cell<Option<CheckedTable>> = const { Cell::new(None) };
    static WATCHING_RELCACHE: Cell<bool> = const { Cell::new(false) };
}

/// Looks `code` of `domain` (None: the default domain, in normal form otherwise) up in
/// `schema`.shortlinks as of the current snapshot; `now` is the statement's now().
pub fn find(schema: pg_sys::Oid, code: &str, domain: Option<&str>, now: i64) -> Lookup {
    let Some((checked, table, index)) = open_checked(schema) else {
        return Lookup::Unavailable;
    };
    if checked.citus {
        return Lookup::Unavailable;
    }
    // SAFETY: both relations are open, locked and checked.
    unsafe {
        with_statement_snapshot(|snapshot| {
            scan(
                &table,
                &index,
                snapshot,
                &checked.attnums,
                code,
                domain,
                now,
            )
        })
    }
}

/// Whether Citus manages the link table of `schema`: then only queries reach its links. Known
/// from the check that find() keeps, so that shorten() and the SQL that keeps shortlink_url_links
/// (sql/src/shorten.sql) ask the catalog once per backend.
pub fn is_distributed(schema: pg_sys::Oid) -> bool {
    match open_checked(schema) {
        Some((checked, _, _)) => checked.citus,
        // SAFETY: a catalog lookup by name.
        None => {
            is_citus_table(unsafe { pg_sys::get_relname_relid(c"shortlinks".as_ptr(), schema) })
        }
    }
}

/// Whether a query by code of the link table of `schema` must be planned at each call: where
/// Citus keeps shards of the table on this node, a cached plan grows with every call that reads
/// one of them (sql/src/citus.sql). Read from the check that find() just made or kept, not made
/// again; so too for a table that is not as the extension made it, or one invalidated since.
pub fn plan_at_each_call(schema: pg_sys::Oid) -> bool {
    CHECKED_TABLE
        .get()
        .filter(|checked| checked.schema == schema)
        .is_none_or(|checked| checked.shards_here)
}

/// The link table of `schema` and its code index, open and locked, with what check() found.
fn open_checked(schema: pg_sys::Oid) -> Option<(CheckedTable, PgRelation, PgRelation)> {
    let (table, index) = match CHECKED_TABLE
        .get()
        .filter(|checked| checked.schema == schema)
    {
        Some(checked) => (checked.table, checked.index),
        // SAFETY: catalog lookups by name.
        None => unsafe {
            (
                pg_sys::get_relname_relid(c"shortlinks".as_ptr(), schema),
                pg_sys::get_relname_relid(c"shortlinks_code_key".as_ptr(), schema),
            )
        },
    };
    // Locked until the transaction ends, as the executor locks what it reads. An ERROR aborts the
    // transaction, which also ends the scan and releases its buffer pins.
    let (table, index) = (open_locked(table)?, open_locked(index)?);
    // Taking the locks processed any pending invalidation, which may have emptied the cache.
    let checked = CHECKED_TABLE.get().filter(|checked| {
        checked.schema == schema && checked.table == table.oid() && checked.index == index.oid()
    });
    let checked = checked.or_else(|| check(schema, &table, &index))?;
    Some((checked, table, index))
}

/// The relation `oid` under AccessShareLock, or None if there is none (any more).
fn open_locked(oid: pg_sys::Oid) -> Option<PgRelation> {
    if oid == pg_sys::InvalidOid {
        return None;
    }
    // SAFETY: try_relation_open locks before it looks, and returns NULL for a dropped relation.
    unsafe {
        let relation = pg_sys::try_relation_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        (!relation.is_null()).then(|| PgRelation::from_pg_owned(relation))
    }
}

/// Checks that the relations are the link table and its code index, and caches the result.
fn check(schema: pg_sys::Oid, table: &PgRelation, index: &PgRelation) -> Option<CheckedTable> {
    let attnums = column_numbers(&PgTupleDesc::from_relation(table))?;
    // SAFETY: both relations are open.
    if !unsafe { is_code_index(table, index, attnums[CODE], attnums[DOMAIN]) } {
        return None;
    }
    if !WATCHING_RELCACHE.replace(true) {
        // SAFETY: registers a callback that only clears the cache.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(forget_checked_table),
                pg_sys::Datum::from(0),
            )
        };
    }
    // Citus invalidates the table's relcache entry when it distributes it, and when it adds,
    // moves or drops a shard of it.
    let citus = is_citus_table(table.oid());
    let checked = CheckedTable {
        schema,
        table: table.oid(),
        index: index.oid(),
        attnums,
        citus,
        shards_here: citus && has_shards_here(table.oid()),
    };
    CHECKED_TABLE.set(Some(checked));
    Some(checked)
}

/// Whether Citus manages `table` (a distributed or reference table).
pub(super) fn is_citus_table(table: pg_sys::Oid) -> bool {
    if table == pg_sys::InvalidOid {
        return false;
    }
    // SAFETY: a catalog lookup by name.
    let citus_catalog = unsafe {
        pg_sys::get_relname_relid(
            c"pg_dist_partition".as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    };
    if citus_catalog == pg_sys::InvalidOid {
        return false;
    }
    // A read-only query: on a hot standby, or in a READ ONLY transaction, no transaction ID.
    let managed = Spi::connect(|client| {
        client
            .select(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
                Some(1),
                &[table.into()],
            )?
            .first()
            .get_one::<bool>()
    });
    // A Citus that cannot be asked: the query path is right either way.
    managed.map_or(true, |citus| citus.unwrap_or(false))
}

/// Whether Citus keeps a shard of its table `table` on this node.
fn has_shards_here(table: pg_sys::Oid) -> bool {
    let here = Spi::connect(|client| {
        client
            .select(
                "SELECT EXISTS (
                     SELECT FROM pg_catalog.pg_dist_shard AS s
                     JOIN pg_catalog.pg_dist_placement AS p ON p.shardid OPERATOR(pg_catalog.=) s.shardid
                     WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1
                       AND p.groupid OPERATOR(pg_catalog.=) (SELECT groupid FROM pg_catalog.pg_dist_local_group))",
                Some(1),
                &[table.into()],
            )?
            .first()
            .get_one::<bool>()
    });
    // A Citus that cannot be asked: plans made at each call are right either way.
    here.map_or(true, |here| here.unwrap_or(true))
}

/// Relcache invalidation callback; relid is InvalidOid when every relation is invalidated.
///
/// # Safety
/// Called by PostgreSQL's invalidation processing, with no further requirement: it only clears
/// this backend's cache.
#[pg_guard]
unsafe extern "C-unwind" fn forget_checked_table(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let affected = CHECKED_TABLE.get().is_some_and(|checked| {
        relid == pg_sys::InvalidOid || relid == checked.table || relid == checked.index
    });
    if affected {
        CHECKED_TABLE.set(None);
    }
}

/// The attribute numbers of COLUMNS (0 for the domain of a table of 0.2.0), or None if one is
/// missing or of another type.
fn column_numbers(tuple_desc: &PgTupleDesc) -> Option<[i16; COLUMNS.len()]> {
    let mut attnums = [0; COLUMNS.len()];
    for (which, (slot, (name, type_oid))) in attnums.iter_mut().zip(COLUMNS).enumerate() {
        let column = tuple_desc
            .iter()
            .find(|column| !column.is_dropped() && column.name() == name);
        let Some(column) = column else {
            if which == DOMAIN {
                continue;
            }
            return None;
        };
        if column.atttypid != type_oid {
            return None;
        }
        *slot = column.num();
    }
    Some(attnums)
}

/// Whether `table` is a plain table and `index` a valid unique b-tree on its code and domain
/// columns (the code alone in 0.2.0: `domain_attnum` 0), in the "C" collation, with NULLS NOT
/// DISTINCT, as the UNIQUE constraint made it; the scan relies on each of these.
///
/// # Safety
/// Both relations are open.
unsafe fn is_code_index(
    table: &PgRelation,
    index: &PgRelation,
    code_attnum: i16,
    domain_attnum: i16,
) -> bool {
    let relkind = |relation: &PgRelation| relation.rd_rel.as_ref().map(|class| class.relkind);
    if relkind(table) != Some(pg_sys::RELKIND_RELATION as c_char)
        || relkind(index) != Some(pg_sys::RELKIND_INDEX as c_char)
    {
        return false;
    }
    let keys: &[i16] = if domain_attnum == 0 {
        &[code_attnum]
    } else {
        &[code_attnum, domain_attnum]
    };
    let index_form = &*index.rd_index;
    (*index.rd_rel).relam == pg_sys::BTREE_AM_OID
        && index_form.indrelid == table.oid()
        && index_form.indisvalid
        && index_form.indisunique
        && (index_form.indnullsnotdistinct || domain_attnum == 0)
        && index_form.indnkeyatts as usize == keys.len()
        && index_form.indkey.values.as_slice(keys.len()) == keys
        && std::slice::from_raw_parts(index.rd_indcollation, keys.len())
            .iter()
            .all(|&collation| collation == pg_sys::C_COLLATION_OID)
}

/// Runs `read` with the snapshot a query of resolve() would see. As SPI does for a read-write
/// query, a transaction that has written takes a new snapshot after a command counter increment,
/// so that it sees a link it created in the same statement; others use the statement's snapshot.
///
/// # Safety
/// Called inside a transaction.
unsafe fn with_statement_snapshot<T>(read: impl FnOnce(pg_sys::Snapshot) -> T) -> T {
    let has_written = pg_sys::GetCurrentTransactionIdIfAny() != pg_sys::InvalidTransactionId;
    let push = has_written || !pg_sys::ActiveSnapshotSet();
    if push {
        pg_sys::CommandCounterIncrement();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        pg_sys::UpdateActiveSnapshotCommandId();
    }
    let result = read(pg_sys::GetActiveSnapshot());
    if push {
        pg_sys::PopActiveSnapshot();
    }
    result
}

/// # Safety
/// The relations are open and locked and passed is_code_index(); `snapshot` is active.
unsafe fn scan(
    table: &PgRelation,
    index: &PgRelation,
    snapshot: pg_sys::Snapshot,
    attnums: &[i16; COLUMNS.len()],
    code: &str,
    domain: Option<&str>,
    now: i64,
) -> Lookup {
    let has_domains = attnums[DOMAIN] != 0;
    if domain.is_some() && !has_domains {
        return Lookup::NotLive;
    }
    let key_count = if has_domains { 2 } else { 1 };
    let mut keys = [pg_sys::ScanKeyData::default(); 2];
    // ScanKeyInit gives the keys the "C" collation, the index's.
    pg_sys::ScanKeyInit(
        &mut keys[0],
        1,
        pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
        pg_sys::Oid::from(pg_sys::F_TEXTEQ),
        code.into_datum().expect("a &str is never NULL"),
    );
    match domain {
        Some(domain) => pg_sys::ScanKeyInit(
            &mut keys[1],
            2,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::Oid::from(pg_sys::F_TEXTEQ),
            domain.into_datum().expect("a &str is never NULL"),
        ),
        // The default domain: `domain IS NULL`, keyed as the executor keys it.
        None => pg_sys::ScanKeyEntryInitialize(
            &mut keys[1],
            (pg_sys::SK_ISNULL | pg_sys::SK_SEARCHNULL) as i32,
            2,
            0, // InvalidStrategy
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::Datum::from(0),
        ),
    }
    #[cfg(not(feature = "pg18"))]
    let index_scan =
        pg_sys::index_beginscan(table.as_ptr(), index.as_ptr(), snapshot, key_count, 0);
    #[cfg(feature = "pg18")]
    let index_scan = pg_sys::index_beginscan(
        table.as_ptr(),
        index.as_ptr(),
        snapshot,
        std::ptr::null_mut(),
        key_count,
        0,
    );
    pg_sys::index_rescan(
        index_scan,
        keys.as_mut_ptr(),
        key_count,
        std::ptr::null_mut(),
        0,
    );
    let slot = pg_sys::table_slot_create(table.as_ptr(), std::ptr::null_mut());
    // The index is unique, so the snapshot sees at most one row.
    let lookup = if pg_sys::index_getnext_slot(
        index_scan,
        pg_sys::ScanDirection::ForwardScanDirection,
        slot,
    ) {
        read_link(slot, attnums, now)
    } else {
        Lookup::NotLive
    };
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::index_endscan(index_scan);
    lookup
}

/// # Safety
/// `slot` holds a row of shortlinks whose columns are at `attnums`.
unsafe fn read_link(
    slot: *mut pg_sys::TupleTableSlot,
    attnums: &[i16; COLUMNS.len()],
    now: i64,
) -> Lookup {
    let last_attnum = attnums.iter().copied().max().unwrap_or(0);
    if (*slot).tts_nvalid < last_attnum {
        pg_sys::slot_getsomeattrs_int(slot, last_attnum.into());
    }
    let value = |which: usize| column_value::<i64>(slot, attnums[which]);
    let state = LinkState {
        disabled: column_value::<bool>(slot, attnums[DISABLED]).unwrap_or(true),
        valid_from: value(VALID_FROM),
        expires_at: value(EXPIRES_AT),
        max_visits: value(MAX_VISITS),
        visits: value(VISITS).unwrap_or(0),
    };
    if !state.is_live(now) {
        return Lookup::NotLive;
    }
    match (
        value(ID),
        column_value::<String>(slot, attnums[URL]),
        column_value::<i16>(slot, attnums[REDIRECT_STATUS]),
    ) {
        (Some(id), Some(url), Some(redirect_status)) => Lookup::Live(LiveLink {
            id,
            url,
            redirect_status,
            expires_at: state.expires_at,
            limited: state.max_visits.is_some(),
        }),
        _ => Lookup::NotLive,
    }
}

/// # Safety
/// The slot's attributes up to `attnum` are deformed, and the column's type is T's.
unsafe fn column_value<T: FromDatum>(slot: *mut pg_sys::TupleTableSlot, attnum: i16) -> Option<T> {
    let offset = (attnum - 1) as usize;
    T::from_datum(
        *(*slot).tts_values.add(offset),
        *(*slot).tts_isnull.add(offset),
    )
}
