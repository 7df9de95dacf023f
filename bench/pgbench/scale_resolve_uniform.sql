\set i random(1, :links)
SELECT resolve('z-' || :i);
