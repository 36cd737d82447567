DROP TABLE scopes;
DROP TABLE clients;
