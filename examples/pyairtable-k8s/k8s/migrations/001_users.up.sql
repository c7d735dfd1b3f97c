CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    password    TEXT NOT NULL,            -- a hash, never the password
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
