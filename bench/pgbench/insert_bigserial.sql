INSERT INTO keyed_bigserial (payload) VALUES ('x');
