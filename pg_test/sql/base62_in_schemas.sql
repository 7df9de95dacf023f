-- The codecs are IMMUTABLE, STRICT and PARALLEL SAFE, so they serve in expression indexes,
-- generated columns and parallel plans.
CREATE TABLE codes (
    id bigint PRIMARY KEY,
    code text GENERATED ALWAYS AS (base62_encode(id, 7)) STORED
);
INSERT INTO codes (id) SELECT generate_series(1, 10000);
CREATE INDEX codes_by_short_code ON codes (base62_encode(id));
ANALYZE codes;

SELECT id, code FROM codes WHERE id IN (1, 62, 10000) ORDER BY id;

-- A lookup by code goes through the expression index.
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE base62_encode(id) = '2Bi';
SELECT id FROM codes WHERE base62_encode(id) = '2Bi';

-- A CHECK constraint that codes decode back to their id.
ALTER TABLE codes ADD CONSTRAINT code_matches_id CHECK (base62_decode(code) = id);
UPDATE codes SET id = id + 1000000 WHERE id = 1;
SELECT id, code FROM codes WHERE id = 1000001;

DROP TABLE codes;
