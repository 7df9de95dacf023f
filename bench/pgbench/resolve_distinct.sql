\set i random(1, 10000)
SELECT resolve('c' || :i);
