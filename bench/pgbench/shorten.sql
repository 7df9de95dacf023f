SELECT shorten('https://example.com/item/' || random(), force_new => true);
