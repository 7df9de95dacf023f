//! Statements of the extension's tables run from Rust through SPI, prepared once per backend for
//! the schema the extension is in, as PL/pgSQL keeps its plans. PostgreSQL plans a kept statement
//! again when a table it reads changes. Their text names every operator and function with its
//! schema, so that no search_path of the caller can choose another. Where Citus manages the
//! tables, each run is planned anew, as the extension's functions are there (sql/src/citus.sql):
//! Citus's plans kept across runs grow with every run.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use pgrx::prelude::*;
use pgrx::PgTupleDesc;

use super::link_lookup;

/// A statement whose text names the extension's schema as `{schema}`.
pub struct KeptStatement {
    query: &'static str,
    argument_types: &'static [pg_sys::Oid],
    prepared: RefCell<Option<Prepared>>,
}

/// The statement prepared for one schema, that schema's name then, and whether Citus managed the
/// tables.
struct Prepared {
    schema: pg_sys::Oid,
    schema_name: CString,
    distributed: bool,
    plan: pg_sys::SPIPlanPtr,
}

impl KeptStatement {
    pub const fn new(query: &'static str, argument_types: &'static [pg_sys::Oid]) -> Self {
        KeptStatement {
            query,
            argument_types,
            prepared: RefCell::new(None),
        }
    }

    /// Runs the statement for the extension in `schema` with `arguments` (None: NULL), of its
    /// argument types: its first row, in SPI's memory until the next statement or SPI_finish(),
    /// or None when it returns no row. A `read_only` run sees the caller's snapshot, as a STABLE
    /// function must.
    ///
    /// # Safety
    /// Connected to SPI.
    pub unsafe fn execute(
        &self,
        schema: pg_sys::Oid,
        arguments: &[Option<pg_sys::Datum>],
        read_only: bool,
    ) -> Option<SpiRow> {
        let plan = self.plan(schema);
        let mut values: Vec<pg_sys::Datum> = arguments
            .iter()
            .map(|value| value.unwrap_or(pg_sys::Datum::from(0)))
            .collect();
        let nulls: Vec<std::ffi::c_char> = arguments
            .iter()
            .map(|value| if value.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
            .collect();
        let status =
            pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), read_only, 0);
        if status < 0 {
            let reason = CStr::from_ptr(pg_sys::SPI_result_code_string(status));
            error!("snowlink: a statement of the extension failed: {reason:?}");
        }
        let table = pg_sys::SPI_tuptable;
        if pg_sys::SPI_processed == 0 || table.is_null() {
            return None;
        }
        Some(SpiRow {
            tuple: *(*table).vals,
            description: (*table).tupdesc,
        })
    }

    /// The plan for `schema`, prepared when first needed there.
    ///
    /// # Safety
    /// Connected to SPI.
    unsafe fn plan(&self, schema: pg_sys::Oid) -> pg_sys::SPIPlanPtr {
        let name_pointer = pg_sys::get_namespace_name(schema);
        let schema_name = CStr::from_ptr(name_pointer);
        let distributed = link_lookup::is_distributed(schema);
        let mut prepared = self.prepared.borrow_mut();
        if let Some(kept) = prepared.as_ref().filter(|kept| {
            kept.schema == schema
                && kept.schema_name.as_c_str() == schema_name
                && kept.distributed == distributed
        }) {
            return kept.plan;
        }
        // The extension was made again, its schema renamed, or its tables distributed.
        if let Some(old) = prepared.take() {
            pg_sys::SPI_freeplan(old.plan);
        }
        let quoted = CStr::from_ptr(pg_sys::quote_identifier(name_pointer)).to_string_lossy();
        let query = CString::new(self.query.replace("{schema}", &quoted))
            .expect("no NUL in a statement or a schema name");
        let options = if distributed {
            pg_sys::CURSOR_OPT_CUSTOM_PLAN as i32
        } else {
            0
        };
        let plan = pg_sys::SPI_prepare_cursor(
            query.as_ptr(),
            self.argument_types.len() as i32,
            self.argument_types.as_ptr().cast_mut(),
            options,
        );
        if plan.is_null() {
            let reason = CStr::from_ptr(pg_sys::SPI_result_code_string(pg_sys::SPI_result));
            error!("snowlink: could not prepare a statement of the extension: {reason:?}");
        }
        pg_sys::SPI_keepplan(plan);
        *prepared = Some(Prepared {
            schema,
            schema_name: schema_name.to_owned(),
            distributed,
            plan,
        });
        plan
    }
}

/// A row that a statement returned, in SPI's memory.
pub struct SpiRow {
    tuple: pg_sys::HeapTuple,
    description: pg_sys::TupleDesc,
}

impl SpiRow {
    /// The first column, copied into the memory of the caller of SPI_connect(); None for NULL.
    ///
    /// # Safety
    /// Still connected to SPI, before the next statement.
    pub unsafe fn first_column(&self) -> Option<pg_sys::Datum> {
        let mut is_null = false;
        let value = pg_sys::SPI_getbinval(self.tuple, self.description, 1, &mut is_null);
        if is_null {
            return None;
        }
        let description = PgTupleDesc::from_pg_unchecked(self.description);
        let attribute = description.get(0).expect("a row of at least one column");
        Some(pg_sys::SPI_datumTransfer(
            value,
            attribute.attbyval,
            attribute.attlen.into(),
        ))
    }

    /// The row as a value of the composite type `row_type` (a table's row type), copied into the
    /// memory of the caller of SPI_connect(): as it is when it has the type's columns in their
    /// order, else its columns taken by name (the table has dropped columns). (A whole-row
    /// reference in the statement would do, but Citus cannot send one to a shard.)
    ///
    /// # Safety
    /// Still connected to SPI, before the next statement; the row's columns of the type's names
    /// have the type's column types.
    pub unsafe fn as_composite(&self, row_type: pg_sys::Oid) -> pg_sys::Datum {
        let composite = pg_sys::lookup_rowtype_tupdesc(row_type, -1);
        let attributes = PgTupleDesc::from_pg_unchecked(composite);
        let columns = PgTupleDesc::from_pg_unchecked(self.description);
        let same_columns = attributes.len() == columns.len()
            && attributes
                .iter()
                .zip(columns.iter())
                .all(|(attribute, column)| {
                    !attribute.attisdropped
                        && attribute.atttypid == column.atttypid
                        && CStr::from_ptr(attribute.attname.data.as_ptr())
                            == CStr::from_ptr(column.attname.data.as_ptr())
                });
        let tuple = if same_columns {
            self.tuple
        } else {
            let count = attributes.len();
            let mut values = vec![pg_sys::Datum::from(0); count];
            let mut nulls = vec![true; count];
            for (index, attribute) in attributes.iter().enumerate() {
                if attribute.attisdropped {
                    continue;
                }
                let column = pg_sys::SPI_fnumber(self.description, attribute.attname.data.as_ptr());
                if column > 0 {
                    values[index] = pg_sys::SPI_getbinval(
                        self.tuple,
                        self.description,
                        column,
                        &mut nulls[index],
                    );
                }
            }
            pg_sys::heap_form_tuple(composite, values.as_mut_ptr(), nulls.as_mut_ptr())
        };
        let row = pg_sys::SPI_returntuple(tuple, composite);
        pg_sys::DecrTupleDescRefCount(composite);
        pg_sys::Datum::from(row)
    }
}
