\set i random_zipfian(1, :links, 1.07)
SELECT url FROM plain_scale WHERE code = 'z-' || :i;
