INSERT INTO keyed_uuid (payload) VALUES ('x');
