-- The versions this build can install, and how a database moves between them. 0.1.0 is the first
-- release; a database made with it moves on with ALTER EXTENSION snowlink UPDATE, which keeps its
-- data (scripts/upgrade_test.sh). There is no way back to an older version.
SELECT version, installed, superuser, relocatable
FROM pg_available_extension_versions
WHERE name = 'snowlink'
ORDER BY string_to_array(version, '.')::int[];
SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'snowlink';
SELECT source, target, path
FROM pg_extension_update_paths('snowlink')
WHERE path IS NOT NULL
ORDER BY string_to_array(source, '.')::int[], string_to_array(target, '.')::int[];

-- Updating to the version installed does nothing; downgrading and unknown versions are refused.
ALTER EXTENSION snowlink UPDATE;
ALTER EXTENSION snowlink UPDATE TO '0.1.0';
ALTER EXTENSION snowlink UPDATE TO '9.9.9';
SELECT extversion FROM pg_extension WHERE extname = 'snowlink';
