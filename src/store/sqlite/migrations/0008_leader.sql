-- CoreFlow schema 8: the environment's leadership lease (which daemon fires triggers,
-- expires leases and scales). At most one row.
CREATE TABLE leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
