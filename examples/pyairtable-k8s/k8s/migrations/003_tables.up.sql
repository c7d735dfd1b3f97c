CREATE TABLE tables (
    id            BIGSERIAL PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);
CREATE TABLE fields (
    id         BIGSERIAL PRIMARY KEY,
    table_id   BIGINT NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('text', 'number', 'date', 'checkbox', 'link')),
    position   INTEGER NOT NULL,
    UNIQUE (table_id, name)
);
