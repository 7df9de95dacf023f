//! resolve(), the call behind every click, in Rust.
//!
//! It reads the link table as the extension's owner, as a SECURITY DEFINER function would, but
//! without the PL/pgSQL frame and the per-call search_path change that cost such a function about
//! a third of a plain SELECT's throughput. Instead its one query names every table, function and
//! operator by schema, so no search_path can change what it runs, and it is planned once per
//! backend. Everything but the common case (a link without max_visits) goes to the PL/pgSQL
//! functions, which pin their search_path.

use std::cell::RefCell;

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use pgrx::PgOid;

/// What this backend needs to read links: the owner to read them as, the schema, the lookup plan.
struct Reader {
    owner: pg_sys::Oid,
    schema: String,
    lookup: OwnedPreparedStatement,
}

thread_local! {
    static READER: RefCell<Option<Reader>> = const { RefCell::new(None) };
}

/// The target URL of a live link, with the visit counted; NULL when the code does not resolve.
#[pg_extern(volatile, parallel_unsafe)]
fn resolve(code: &str) -> Option<String> {
    let owner = READER.with_borrow(|reader| reader.as_ref().map(|reader| reader.owner));
    let owner = owner.unwrap_or_else(prepare_reader);
    let caller = Identity::switch_to(owner);
    let url = Spi::connect_mut(|client| -> SpiResult<Option<String>> {
        READER.with_borrow(|reader| {
            let reader = reader.as_ref().expect("prepared above");
            let row = client
                .select(&reader.lookup, Some(1), &[code.into()])?
                .first();
            if row.is_empty() {
                return Ok(None);
            }
            let (id, url, limited): (Option<i64>, Option<String>, Option<bool>) =
                row.get_three()?;
            let (Some(id), Some(url)) = (id, url) else {
                return Ok(None);
            };
            if limited == Some(true) {
                return visit_limited(client, &reader.schema, code);
            }
            if super::record_visit(id) {
                flush_visits(client, &reader.schema)?;
            }
            Ok(Some(url))
        })
    });
    caller.restore();
    url.unwrap_or_else(|error| error!("resolve: {error}"))
}

/// The user a backend acts as. An ERROR needs no restore: aborting the (sub)transaction restores
/// the user it started with, as it does for SECURITY DEFINER functions.
struct Identity {
    user: pg_sys::Oid,
    security_context: i32,
}

impl Identity {
    fn switch_to(user: pg_sys::Oid) -> Identity {
        let mut caller = Identity {
            user: pg_sys::Oid::INVALID,
            security_context: 0,
        };
        // SAFETY: reads and sets the backend's current user, as fmgr_security_definer() does.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut caller.user, &mut caller.security_context);
            pg_sys::SetUserIdAndSecContext(
                user,
                caller.security_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
        }
        caller
    }

    fn restore(self) {
        // SAFETY: puts back what switch_to() read.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.security_context) };
    }
}

/// A link with max_visits counts each visit under its row lock: the PL/pgSQL path does that.
fn visit_limited(client: &mut SpiClient, schema: &str, code: &str) -> SpiResult<Option<String>> {
    client
        .update(
            &format!("SELECT ({schema}._shortlink_visit($1)).url"),
            Some(1),
            &[code.into()],
        )?
        .first()
        .get_one()
}

fn flush_visits(client: &mut SpiClient, schema: &str) -> SpiResult<()> {
    client.update(
        &format!("SELECT {schema}._shortlinks_flush_visits()"),
        None,
        &[],
    )?;
    Ok(())
}

/// Looks up the extension's owner and schema and plans the lookup, once per backend; returns the
/// owner.
fn prepare_reader() -> pg_sys::Oid {
    let reader = Spi::connect(|client| -> SpiResult<Reader> {
        let (owner, schema): (Option<pg_sys::Oid>, Option<String>) = client
            .select(
                "SELECT e.extowner, pg_catalog.quote_ident(n.nspname)
                 FROM pg_catalog.pg_extension AS e
                 JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
                 WHERE e.extname OPERATOR(pg_catalog.=) 'snowlink'",
                Some(1),
                &[],
            )?
            .first()
            .get_two()?;
        let (Some(owner), Some(schema)) = (owner, schema) else {
            error!("resolve: the snowlink extension is not installed in this database");
        };
        let lookup = client
            .prepare(
                &format!(
                    "SELECT s.id, s.url, s.max_visits IS NOT NULL
                     FROM {schema}.shortlinks AS s
                     WHERE s.code OPERATOR(pg_catalog.=) $1
                       AND NOT s.disabled
                       AND (s.valid_from IS NULL OR s.valid_from OPERATOR(pg_catalog.<=) pg_catalog.now())
                       AND (s.expires_at IS NULL OR s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())
                       AND (s.max_visits IS NULL OR s.visits OPERATOR(pg_catalog.<) s.max_visits)"
                ),
                &[PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID)],
            )?
            .keep();
        Ok(Reader {
            owner,
            schema,
            lookup,
        })
    })
    .unwrap_or_else(|error| error!("resolve: {error}"));
    let owner = reader.owner;
    READER.set(Some(reader));
    owner
}
