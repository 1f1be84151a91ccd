-- 0001: personas, their actions and feedback, and the hourly activity
-- buckets that the admin list reads instead of scanning persona_actions.

CREATE TABLE personas.personas (
    user_id          text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
    email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name             text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    archetype        text NOT NULL CHECK (length(archetype) BETWEEN 1 AND 64),
    system_prompt    text NOT NULL CHECK (length(system_prompt) BETWEEN 1 AND 20000),
    module_mix       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(module_mix) = 'object'),
    tick_cadence     text NOT NULL DEFAULT 'daily' CHECK (tick_cadence IN ('daily', 'weekdays', 'hourly')),
    last_active_at   timestamptz,
    -- A claim leases the persona to one runner until lease_expires_at, or
    -- until the persona reports activity (which clears both columns).
    lease_owner      text CHECK (length(lease_owner) <= 128),
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX personas_email_key ON personas.personas (lower(email));

-- /due and claims walk this index in order (never active first, then the
-- oldest) and stop at the limit; the cadence and lease are per-row filters.
CREATE INDEX personas_due_idx
    ON personas.personas ((COALESCE(last_active_at, '-infinity'::timestamptz)), user_id);

-- The admin list: newest first, keyset-paginated.
CREATE INDEX personas_created_idx ON personas.personas (created_at DESC, user_id DESC);

CREATE TABLE personas.persona_actions (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 400),
    n             bigint GENERATED ALWAYS AS IDENTITY,
    persona_id    text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    tick_id       text NOT NULL CHECK (length(tick_id) BETWEEN 1 AND 128),
    seq           integer CHECK (seq >= 0),
    tool_name     text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 128),
    input_hash    text CHECK (length(input_hash) <= 256),
    result        text NOT NULL CHECK (result IN ('ok', 'error')),
    error_message text CHECK (length(error_message) <= 4000),
    latency_ms    integer CHECK (latency_ms >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX persona_actions_recent_idx ON personas.persona_actions (persona_id, created_at DESC, n DESC);

CREATE TABLE personas.persona_feedback (
    id         text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 300),
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    tick_id    text NOT NULL CHECK (length(tick_id) BETWEEN 1 AND 128),
    module     text NOT NULL CHECK (length(module) BETWEEN 1 AND 64),
    rating     smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    notes      text CHECK (length(notes) <= 4000),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX persona_feedback_module_idx ON personas.persona_feedback (persona_id, module);

-- Actions actually inserted, per persona and hour, maintained in the same
-- statement as the insert. "Actions in the last 7 days" sums at most 169
-- rows per persona, whatever the size of persona_actions.
CREATE TABLE personas.persona_activity_hourly (
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    actions    integer NOT NULL CHECK (actions >= 0),
    PRIMARY KEY (persona_id, hour)
);
