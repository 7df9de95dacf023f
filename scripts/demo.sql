CREATE EXTENSION snowlink;

-- Numbers to short codes and back.
SELECT n, base62_encode(n) AS code, base62_decode(base62_encode(n)) AS back
FROM unnest(ARRAY[0, 61, 62, 56800235584, 9223372036854775807]) AS n;

-- Seven characters for every code from 62^6 on; padding for the ones below.
SELECT base62_encode(56800240435) AS code, base62_encode(125, 7) AS padded;

-- Any alphabet: bitcoin's base58, binary.
SELECT base_encode(1000000, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz') AS base58,
       base_encode(10, '01') AS binary;

-- Snowflake IDs: a primary key default, unique across backends, sorted by time.
CREATE TABLE orders (
    id bigint PRIMARY KEY DEFAULT snowflake_next(),
    item text NOT NULL
);
INSERT INTO orders (item) VALUES ('book'), ('pen'), ('lamp');
SELECT id, base62_encode(id) AS code, (snowflake_parse(id)).* FROM orders ORDER BY id;

-- This backend's node, and every node claimed on the server.
SELECT snowflake_node_id();
SELECT node_id, pid = pg_backend_pid() AS mine, datname, application_name FROM snowflake_nodes;

-- The primary key doubles as a time index.
EXPLAIN (COSTS OFF)
SELECT * FROM orders
WHERE id >= snowflake_min(now() - interval '1 day') AND id < snowflake_min(now());

-- Short links: shorten a URL, follow it, read its statistics.
SELECT code, url, redirect_status FROM shorten('HTTPS://Example.COM/Docs/Getting-Started?ref=demo');
SELECT code, url FROM shorten('https://example.com/pricing-2026', code => 'spring-sale', redirect_status => 301);
SELECT resolve('spring-sale') AS target, resolve('no-such-code') AS unknown;
-- The database's visit writer writes visits every second (snowlink.visit_flush_interval_ms).
SELECT pg_sleep(1.2) \g /dev/null
SELECT * FROM shortlink_stats('spring-sale');
-- What an HTTP front (snowlink-http, started next) answers for GET /spring-sale.
SELECT * FROM shortlink_target('spring-sale');
-- What PostgREST sends for GET /rpc/shortlink_redirect?code=spring-sale
SELECT shortlink_redirect('spring-sale') AS body,
       current_setting('response.status') AS status,
       current_setting('response.headers') AS headers;
-- Refused targets (the demo goes on after this error).
\set ON_ERROR_STOP off
SELECT shorten('javascript:alert(document.cookie)');
