DROP TABLE assertion_replays;
DROP TABLE client_keys;
