-- 0005: retention. (0004 is left to the rollup tables, written in parallel;
-- migrations apply by version, whichever of the two a database saw first.)
-- prune deletes raw rows past PERSONAS_RETENTION_DAYS and rollups past
-- PERSONAS_ROLLUP_RETENTION_DAYS; a persona may keep less raw history.

ALTER TABLE personas.personas
    -- NULL: the global rule. Otherwise the persona's raw actions, feedback
    -- and ticks older than this many days are pruned too (when shorter than
    -- the global window); the runner gets it in /due and claims.
    ADD COLUMN max_history_days smallint CHECK (max_history_days BETWEEN 1 AND 3650);

-- One row per prune run that got as far as taking the lock: what it
-- deleted and how long it took. The services' personas_prune_* gauges read
-- the latest; prune keeps the newest 100.
CREATE TABLE personas.prune_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    dry_run      boolean NOT NULL,
    -- false: cancelled or failed part way (what was deleted stays deleted).
    completed    boolean NOT NULL,
    raw_before   timestamptz NOT NULL,
    rollup_before timestamptz NOT NULL,
    -- table name → rows deleted (or, in a dry run, that would be).
    deleted      jsonb NOT NULL CHECK (jsonb_typeof(deleted) = 'object'),
    rows_deleted bigint NOT NULL CHECK (rows_deleted >= 0),
    error        text CHECK (length(error) <= 4000)
);
