//! The installed extension as Rust code needs it: its schema, and its owner, as whom resolve()
//! and the flush at backend exit run the extension's internal SQL functions.

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Extension {
    pub owner: pg_sys::Oid,
    pub schema: pg_sys::Oid,
}

impl Extension {
    /// The snowlink extension of the current database, if it is installed.
    pub fn find() -> Option<Extension> {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT e.extowner, e.extnamespace FROM pg_catalog.pg_extension AS e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'snowlink'",
                Some(1),
                &[],
            )?;
            if rows.is_empty() {
                return Ok(None);
            }
            let (owner, schema) = rows.first().get_two::<pg_sys::Oid, pg_sys::Oid>()?;
            Ok(owner
                .zip(schema)
                .map(|(owner, schema)| Extension { owner, schema }))
        })
        .unwrap_or_else(|error: pgrx::spi::SpiError| error!("snowlink: {error}"))
    }

    /// Runs `work` through SPI as the extension's owner, who may call its internal functions,
    /// with the quoted schema name.
    pub fn run_as_owner<T>(self, work: impl FnOnce(&mut SpiClient, &str) -> SpiResult<T>) -> T {
        // SAFETY: catalog lookup and quoting of a name; both return palloc'd C strings.
        let schema = unsafe {
            let name = pg_sys::get_namespace_name(self.schema);
            if name.is_null() {
                error!("snowlink: the extension's schema no longer exists");
            }
            CStr::from_ptr(pg_sys::quote_identifier(name))
                .to_string_lossy()
                .into_owned()
        };
        let caller = Identity::switch_to(self.owner);
        let result = Spi::connect_mut(|client| work(client, &schema));
        caller.restore();
        result.unwrap_or_else(|error| error!("snowlink: {error}"))
    }
}

/// Writes this backend's counted visits (sql/shortlinks.sql).
pub fn flush_visits(client: &mut SpiClient, schema: &str) -> SpiResult<()> {
    client.update(
        &format!("SELECT {schema}._shortlinks_flush_visits()"),
        None,
        &[],
    )?;
    Ok(())
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
