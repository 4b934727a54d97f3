-- CoreFlow schema 7: a worker's process start time (clock ticks since boot, as
-- `/proc/PID/stat` field 22), so that a job held by a worker of this host whose process is
-- gone is taken back at once, and a reused pid is not mistaken for it. 0: not known (a
-- worker registered before this migration; its jobs wait for their lease).
ALTER TABLE workers ADD COLUMN start_time INTEGER NOT NULL DEFAULT 0;
