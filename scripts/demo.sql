CREATE EXTENSION snowlink;

-- Numbers to short codes and back.
SELECT n, base62_encode(n) AS code, base62_decode(base62_encode(n)) AS back
FROM unnest(ARRAY[0, 61, 62, 56800235584, 9223372036854775807]) AS n;

-- Seven characters for every code from 62^6 on; padding for the ones below.
SELECT base62_encode(56800240435) AS code, base62_encode(125, 7) AS padded;

-- Any alphabet: bitcoin's base58, binary.
SELECT base_encode(1000000, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz') AS base58,
       base_encode(10, '01') AS binary;
