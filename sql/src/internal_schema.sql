-- The schema of the functions that only the extension's own code calls. Its SQL names every
-- function it calls by schema, but naming the schema is not enough where other roles may create
-- functions: one more function of the same name, with more arguments that have defaults
-- (snowflake_next(int DEFAULT 0), say), makes a call by name ambiguous and breaks it. No role but
-- the extension's owner can create anything here, so the extension's SQL calls only functions of
-- this schema by name: its internal ones, and second declarations of the public functions that
-- it calls, which run the same C code. Anyone may look up functions here; EXECUTE is granted
-- function by function.
-- pgrx makes the schema (src/lib.rs) with IF NOT EXISTS, which refuses a schema of that name that
-- the extension does not own.
GRANT USAGE ON SCHEMA snowlink_internal TO PUBLIC;
COMMENT ON SCHEMA snowlink_internal IS
    'functions of the snowlink extension that only its own code calls';
