DROP TABLE fields;
DROP TABLE tables;
