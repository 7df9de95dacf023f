INSERT INTO keyed_instagram (payload) VALUES ('x');
