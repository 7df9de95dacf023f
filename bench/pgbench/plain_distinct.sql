\set i random(1, 10000)
SELECT url FROM plain_links WHERE code = 'c' || :i;
