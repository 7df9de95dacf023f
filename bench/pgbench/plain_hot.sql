SELECT url FROM plain_links WHERE code = 'c1';
