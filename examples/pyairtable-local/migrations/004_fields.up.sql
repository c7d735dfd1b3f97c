-- The columns of a table, with their types (field-service).
CREATE TABLE fields (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id   bigint  NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    name       text    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type       text    NOT NULL
                       CHECK (type IN ('text', 'long_text', 'number', 'checkbox',
                                       'date', 'single_select', 'multi_select',
                                       'link', 'attachment')),
    position   integer NOT NULL CHECK (position >= 0),
    options    jsonb   NOT NULL DEFAULT '{}',
    is_primary boolean NOT NULL DEFAULT false,
    UNIQUE (table_id, name),
    UNIQUE (table_id, position)
);
-- at most one primary field per table
CREATE UNIQUE INDEX fields_one_primary ON fields (table_id) WHERE is_primary;
