SELECT shorten('https://example.com/shared/' || random());
