\set i random_zipfian(1, :links, 1.07)
SELECT resolve('z-' || :i);
