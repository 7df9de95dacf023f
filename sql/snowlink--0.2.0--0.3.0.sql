-- snowlink 0.2.0 to 0.3.0, run by ALTER EXTENSION snowlink UPDATE in one transaction.
--
-- Every change to the extension's SQL objects in 0.3.0 goes into this script as well as into the
-- install script, so that an updated database cannot be told apart from a fresh install:
-- scripts/upgrade_test.sh compares the two object by object. Change objects in place (CREATE OR
-- REPLACE, ALTER) rather than dropping them: a drop loses grants and the application objects that
-- depend on them, and breaks the plans of sessions that are calling them at that moment.
\echo Use "ALTER EXTENSION snowlink UPDATE TO '0.3.0'" to load this file. \quit
