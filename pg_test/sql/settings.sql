-- When a session knows snowlink's settings: once a function of snowlink has loaded the library in
-- it (or from its start, with shared_preload_libraries = 'snowlink': t/servers.pl).

-- Before the library is loaded, SET keeps a value of any snowlink setting as a placeholder (this
-- test server's postgresql.conf says transaction for the visits).
SET snowlink.code_style = 'snowflake';
SET snowlink.visit_write_mode = 'background';
CREATE ROLE settings_app IN ROLE snowlink_user;
SET ROLE settings_app;
-- A setting that only a superuser may set: the placeholder remembers who set it.
SET snowlink.max_url_length = 20;
SHOW snowlink.max_url_length;

-- Loading the library (here for an ID) defines the settings and takes over the values set
-- before: the one this role may not set is refused with a WARNING, and the default holds.
SELECT snowflake_next() > 0 AS id_made;
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'snowlink.%' ORDER BY name;
-- Now checked at once.
SET snowlink.code_style = 'sequential';
SET snowlink.visit_write_mode = 'sometimes';
SET snowlink.max_url_length = 20;
RESET ROLE;
RESET snowlink.code_style;
RESET snowlink.visit_write_mode;
DROP ROLE settings_app;
