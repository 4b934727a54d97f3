-- CoreFlow schema 4: what the daemon remembers of each trigger across restarts.

-- The last instant a time-based trigger fired for (so no instant fires twice, even after a
-- kill -9), and the cursor of event triggers (`after`: the last run id seen).
CREATE TABLE trigger_state (
    workflow    TEXT    NOT NULL,
    trigger_key TEXT    NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_fire   INTEGER,
    cursor      INTEGER,
    PRIMARY KEY (workflow, trigger_key)
) WITHOUT ROWID;

-- Files a file trigger has seen: present at its first sighting (never fire) or fired for
-- this modification time and size.
CREATE TABLE trigger_files (
    workflow    TEXT    NOT NULL,
    trigger_key TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    mtime       INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (workflow, trigger_key, path)
) WITHOUT ROWID;
