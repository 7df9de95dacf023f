INSERT INTO plain_tenant_links (code, url) VALUES (base62_encode(nextval('plain_code_seq')), 'https://example.com/item/' || random());
