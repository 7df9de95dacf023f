\set i random(1, 10000)
SELECT url FROM shortlinks WHERE code = 'c' || :i;
