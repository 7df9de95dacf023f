-- Taking snowflake IDs apart. From the top bit: 1 sign bit (0), 41 bits of milliseconds since
-- 2010-01-01 08:00:00 UTC, 10 node bits, 12 sequence bits.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';

-- ID 0 is the epoch, node 0, sequence 0; the largest bigint is the last millisecond of node 1023.
SELECT snowflake_timestamp(0) AS epoch,
       snowflake_timestamp(9223372036854775807) AS last_millisecond,
       snowflake_node(9223372036854775807) AS last_node,
       snowflake_sequence(9223372036854775807) AS last_sequence;

-- An ID made one second after the epoch by node 5, as the 8th ID of its millisecond.
SELECT (1000::bigint << 22) | (5 << 12) | 7 AS id;
SELECT * FROM snowflake_parse(4194324487);
SELECT snowflake_parse(4194324487) AS as_a_record,
       (snowflake_parse(4194324487)).node AS node_field;

-- snowflake_min(t): the smallest ID made at or after t, so that
-- snowflake_timestamp(id) >= t exactly when id >= snowflake_min(t).
SELECT snowflake_min('2010-01-01 08:00:00+00') AS at_epoch,
       snowflake_min('2010-01-01 08:00:01+00') AS one_second_later,
       snowflake_min('2010-01-01 08:00:01.0005+00') AS rounds_up_to_next_millisecond,
       snowflake_min('2079-09-07 23:47:35.551+00') AS last_millisecond;
SELECT snowflake_timestamp(snowflake_min('2026-11-25 12:34:56.789+00')) AS round_trip;
-- Open bounds: every ID is made after a time before the epoch, so its smallest ID is 0; after
-- the last millisecond it is the largest bigint (the one ID that equals it, from node 1023 in
-- that millisecond, is the only one an upper bound of 'infinity' leaves out).
SELECT snowflake_min('2010-01-01 07:59:59.999+00') AS just_before_the_epoch,
       snowflake_min('-infinity') AS minus_infinity,
       snowflake_min(coalesce(NULL, '-infinity'::timestamptz)) AS no_lower_bound;
SELECT snowflake_min('2079-09-07 23:47:35.552+00') AS just_after_the_last_millisecond,
       snowflake_min('infinity') AS infinity;

SELECT snowflake_timestamp(NULL) IS NULL AND snowflake_node(NULL) IS NULL
       AND snowflake_sequence(NULL) IS NULL AND snowflake_min(NULL) IS NULL
       AND snowflake_parse(NULL) IS NULL AS strict;

-- Errors. Each is followed by its SQLSTATE.
SELECT snowflake_timestamp(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_node(-4194324487);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_sequence(-9223372036854775808);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM snowflake_parse(-1);
\echo :LAST_ERROR_SQLSTATE

