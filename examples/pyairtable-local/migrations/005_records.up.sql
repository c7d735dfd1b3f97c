-- The rows of a table; cell values keyed by field id (record-service).
CREATE TABLE records (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id   bigint      NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    cells      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(cells) = 'object'),
    created_by bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX records_table_id_idx ON records (table_id, id);
-- filters on cell values ("cells @> '{"12": "done"}'")
CREATE INDEX records_cells_idx ON records USING gin (cells jsonb_path_ops);
