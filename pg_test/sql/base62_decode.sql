-- base62_decode(code text) -> bigint, the inverse of base62_encode.
SELECT base62_decode('0') AS zero,
       base62_decode('Z') AS sixty_one,
       base62_decode('10') AS sixty_two,
       base62_decode('1000000') AS "62^6",
       base62_decode('aZl8N0y58M7') AS bigint_max;

-- Leading '0's are padding, so they are accepted; so is a code of zeros only.
SELECT base62_decode('000Z') AS padded,
       base62_decode('0000000') AS zeros,
       base62_decode(base62_encode(1, 1024)) AS longest_padding;

-- Case matters: 'a' is 10, 'A' is 36.
SELECT base62_decode('a') AS lower_a, base62_decode('A') AS upper_a;

-- The reference check: from 62^6, add i for i = 1..98 (the reference's range(1, 99)); every
-- value makes the round trip.
WITH RECURSIVE steps(i, value) AS (
    SELECT 0, 56800235584::bigint
    UNION ALL
    SELECT i + 1, value + i + 1 FROM steps WHERE i < 98
)
SELECT count(*) AS values_checked,
       count(*) FILTER (WHERE base62_decode(base62_encode(value)) = value) AS round_trips,
       max(value) AS last_value,
       base62_encode(max(value)) AS last_code
FROM steps WHERE i > 0;

-- Round trips around every power of 62 and the ends of the bigint range.
SELECT count(*) AS values_checked,
       count(*) FILTER (WHERE base62_decode(base62_encode(v)) = v) AS round_trips
FROM (SELECT (62::numeric ^ p + d)::bigint AS v
      FROM generate_series(0, 10) AS p, generate_series(-1, 1) AS d
      UNION ALL SELECT 9223372036854775807 UNION ALL SELECT 9223372036854775806) AS vs;

SELECT base62_decode(NULL) IS NULL AS null_code;

-- Errors. Each is followed by its SQLSTATE.
SELECT base62_decode('');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode('ab-c');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode(' 10');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode('1O0_');
\echo :LAST_ERROR_SQLSTATE
-- Non-ASCII characters are whole characters, counted as PostgreSQL counts them.
SELECT base62_decode('añb');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode('ab😀');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode(E'ab\ncd');
\echo :LAST_ERROR_SQLSTATE
-- One above the largest bigint, and any 12 significant characters.
SELECT base62_decode('aZl8N0y58M8');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode('ZZZZZZZZZZZ');
\echo :LAST_ERROR_SQLSTATE
SELECT base62_decode('100000000000');
\echo :LAST_ERROR_SQLSTATE
-- A huge code fails at once, and the message quotes only its start.
SELECT base62_decode(repeat('z', 100000));
\echo :LAST_ERROR_SQLSTATE
-- ... while leading zeros of any length are still padding.
SELECT base62_decode(repeat('0', 100000) || 'aZl8N0y58M7') AS padded_bigint_max;
