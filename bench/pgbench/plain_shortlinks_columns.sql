\set i random(1, 10000)
SELECT id, url, redirect_status, disabled, valid_from, expires_at, max_visits, visits FROM shortlinks WHERE code = 'c' || :i AND domain IS NULL;
