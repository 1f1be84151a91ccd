-- 0003: tick records, leases with tokens, attempts with backoff and
-- quarantine, a schedule that does not drift, and the fleet's pause switch.
-- The rules these columns serve are written down in the package comment
-- (doc.go); this file only says what each column holds.

ALTER TABLE personas.personas
    -- The lease: lease_owner (the runner id) and lease_expires_at exist
    -- since 0001. A claim stores the SHA-256 of the opaque token it hands
    -- out, never the token: whoever reads the table (a backup, an operator's
    -- query) cannot act as the holder.
    ADD COLUMN lease_token_hash bytea CHECK (octet_length(lease_token_hash) = 32),
    -- The length the claim asked for, reused by a renew without leaseSeconds.
    ADD COLUMN lease_seconds integer CHECK (lease_seconds > 0),
    -- The tick a tokened tick start bound to this lease: a crash marks it
    -- "crashed", and its finish ends the lease even without the token.
    ADD COLUMN lease_tick_id text CHECK (length(lease_tick_id) <= 128),
    -- The schedule's marker: when the persona last finished a period (an ok
    -- or empty tick, or a write from a runner that predates ticks). Unlike
    -- last_active_at (any write at all) a failed tick never moves it.
    ADD COLUMN last_done_at timestamptz,
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN quarantined_at timestamptz,
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    -- NULL: the hour derived from the id (auto_tick_hour), so the fleet
    -- spreads over the day. md5 because PostgreSQL and Go compute it alike
    -- and it never changes between versions (hashtext() may).
    ADD COLUMN tick_hour smallint CHECK (tick_hour BETWEEN 0 AND 23),
    ADD COLUMN auto_tick_hour smallint NOT NULL
        GENERATED ALWAYS AS (((('x' || substr(md5(user_id), 1, 8))::bit(32)::bigint) % 24)::smallint) STORED,
    ADD COLUMN last_tick_status text
        CHECK (last_tick_status IN ('ok', 'empty', 'failed', 'timeout', 'crashed')),
    ADD COLUMN last_tick_finished_at timestamptz;

-- Until now a write was the only way to finish a period.
UPDATE personas.personas SET last_done_at = last_active_at;

-- /due and claims walk this index in order (never done first, then the
-- longest since done) and stop at the limit; everything else is a per-row
-- filter. It replaces 0001's index on last_active_at under the same name.
DROP INDEX personas.personas_due_idx;
CREATE INDEX personas_due_idx
    ON personas.personas ((COALESCE(last_done_at, '-infinity'::timestamptz)), user_id);

-- The sweep that turns lapsed leases into crashes reads only leased rows.
CREATE INDEX personas_lapsed_idx
    ON personas.personas (lease_expires_at) WHERE lease_token_hash IS NOT NULL;

CREATE TABLE personas.persona_ticks (
    persona_id       text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    tick_id          text NOT NULL CHECK (length(tick_id) BETWEEN 1 AND 128),
    runner_id        text CHECK (length(runner_id) <= 128),
    -- SHA-256 of the token the tick was started with (audit only).
    lease_token_hash bytea CHECK (octet_length(lease_token_hash) = 32),
    model            text CHECK (length(model) <= 200),
    platform_version text CHECK (length(platform_version) <= 100),
    started_at       timestamptz,
    finished_at      timestamptz,
    status           text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'ok', 'empty', 'failed', 'timeout', 'crashed')),
    error_kind       text CHECK (error_kind IN ('auth', 'llm', 'rate_limited', 'tool', 'timeout', 'internal')),
    error_message    text CHECK (length(error_message) <= 4000),
    summary          text CHECK (length(summary) <= 8000),
    rating_status    text CHECK (rating_status IN ('ok', 'unparsable', 'missing')),
    tokens_in        bigint CHECK (tokens_in >= 0),
    tokens_out       bigint CHECK (tokens_out >= 0),
    -- Writes, starts and finishes that carried a token other than the
    -- persona's current lease: stored, but they never touched the lease.
    stale_writes     integer NOT NULL DEFAULT 0 CHECK (stale_writes >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (persona_id, tick_id)
);

-- The admin's tick list: newest first, keyset-paginated, optionally by status.
CREATE INDEX persona_ticks_recent_idx ON personas.persona_ticks (persona_id, created_at DESC, tick_id DESC);
CREATE INDEX persona_ticks_status_idx ON personas.persona_ticks (persona_id, status, created_at DESC, tick_id DESC);

-- A tick's detail and derived counts read its rows by (persona, tick).
CREATE INDEX persona_actions_tick_idx ON personas.persona_actions (persona_id, tick_id);
CREATE INDEX persona_feedback_tick_idx ON personas.persona_feedback (persona_id, tick_id);

-- One row: the operators' switch for the whole fleet.
CREATE TABLE personas.runner_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    paused     boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text CHECK (length(updated_by) <= 320)
);
INSERT INTO personas.runner_state (id) VALUES (true);
