\set i random(1, :links)
SELECT url FROM plain_scale WHERE code = 'z-' || :i;
