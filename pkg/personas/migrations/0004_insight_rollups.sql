-- 0004: rollups for the product-wide views (modules, trends, tools, the
-- overview), kept at ingest in the same statement as each insert and
-- counting only rows really inserted; tags on personas. The views read
-- these tables only, so their cost follows the window asked for, not the
-- history stored. Days are UTC calendar days of the rows' created_at.
-- Every rollup is keyed by persona (and cascades with it): one persona's
-- rows are written under its row lock, so concurrent batches never contend
-- across personas, and BackfillRollups can recompute one persona exactly.

-- Tags ("chaos" for personas that make mistakes on purpose): lowercase
-- slugs, at most 10 of at most 32 characters (checked in Go first).
ALTER TABLE personas.personas
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}'::text[] CHECK (cardinality(tags) <= 10);
CREATE INDEX personas_tags_idx ON personas.personas USING gin (tags);

-- Ratings per (UTC day, module, persona). Modules starting with "__" (the
-- runner's "__parse" marker) never appear here: see rating_unparsable_daily.
-- sum and sum_sq follow from the distribution and are generated, so they
-- can never disagree with it; means and variances (the confidence
-- intervals) read them.
CREATE TABLE personas.rating_daily (
    day        date NOT NULL,
    module     text NOT NULL CHECK (length(module) BETWEEN 1 AND 64),
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    n          integer NOT NULL CHECK (n > 0),
    r1         integer NOT NULL DEFAULT 0 CHECK (r1 >= 0),
    r2         integer NOT NULL DEFAULT 0 CHECK (r2 >= 0),
    r3         integer NOT NULL DEFAULT 0 CHECK (r3 >= 0),
    r4         integer NOT NULL DEFAULT 0 CHECK (r4 >= 0),
    r5         integer NOT NULL DEFAULT 0 CHECK (r5 >= 0),
    sum        bigint GENERATED ALWAYS AS (r1 + 2 * r2 + 3 * r3 + 4 * r4 + 5 * r5) STORED,
    sum_sq     bigint GENERATED ALWAYS AS (r1 + 4 * r2 + 9 * r3 + 16 * r4 + 25 * r5) STORED,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (day, module, persona_id),
    CHECK (n = r1 + r2 + r3 + r4 + r5)
);
-- One module's trend over a long range; one persona's rows (backfill, cascade).
CREATE INDEX rating_daily_module_idx ON personas.rating_daily (module, day);
CREATE INDEX rating_daily_persona_idx ON personas.rating_daily (persona_id, day);

-- Parse markers per (UTC day, persona): "unparsable ratings".
CREATE TABLE personas.rating_unparsable_daily (
    day        date NOT NULL,
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    n          integer NOT NULL CHECK (n > 0),
    PRIMARY KEY (day, persona_id)
);
CREATE INDEX rating_unparsable_daily_persona_idx ON personas.rating_unparsable_daily (persona_id);

-- Tool calls per (UTC day, tool, persona). latency_hist counts the calls
-- that reported a latency by bucket: bucket 1 is [0, 1) ms, bucket i+1 is
-- [t_i, t_{i+1}) for the thresholds in Go's LatencyThresholds (about 2^(k/2)
-- ms, so a bucket is ~41% wide), the last one open-ended.
CREATE TABLE personas.action_daily (
    day          date NOT NULL,
    tool_name    text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 128),
    persona_id   text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    calls        integer NOT NULL CHECK (calls > 0),
    errors       integer NOT NULL CHECK (errors BETWEEN 0 AND calls),
    latency_n    integer NOT NULL CHECK (latency_n BETWEEN 0 AND calls),
    latency_sum  bigint NOT NULL CHECK (latency_sum >= 0),
    latency_hist integer[] NOT NULL CHECK (cardinality(latency_hist) = 53),
    PRIMARY KEY (day, tool_name, persona_id)
);
CREATE INDEX action_daily_persona_idx ON personas.action_daily (persona_id, day);

-- Error messages per (UTC day, tool, persona, normalised message): digits
-- and long hex runs become "#", case and spacing are folded, and the md5 of
-- that is the group. sample is the first message seen. At most 20 groups
-- per (day, tool, persona); further messages count in the group with an
-- empty hash ("other messages").
CREATE TABLE personas.action_error_daily (
    day        date NOT NULL,
    tool_name  text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 128),
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    msg_hash   text NOT NULL CHECK (length(msg_hash) IN (0, 32)),
    sample     text NOT NULL CHECK (length(sample) <= 500),
    n          integer NOT NULL CHECK (n > 0),
    PRIMARY KEY (day, tool_name, persona_id, msg_hash)
);
CREATE INDEX action_error_daily_persona_idx ON personas.action_error_daily (persona_id, day);

-- The overview counts ticks finished in its window.
CREATE INDEX persona_ticks_finished_idx ON personas.persona_ticks (finished_at) WHERE finished_at IS NOT NULL;

-- The notes feed: newest first over all personas, keyset-paginated, and
-- by module.
CREATE INDEX persona_feedback_feed_idx ON personas.persona_feedback (created_at DESC, persona_id DESC, id DESC);
CREATE INDEX persona_feedback_module_feed_idx ON personas.persona_feedback (module, created_at DESC, persona_id DESC, id DESC);

-- BackfillRollups' progress: the last persona whose rollups were rebuilt
-- in the current run (NULL: no run in progress).
CREATE TABLE personas.rollup_backfill (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_persona text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO personas.rollup_backfill (id) VALUES (true);
