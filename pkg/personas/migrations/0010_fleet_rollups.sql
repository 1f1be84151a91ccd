-- 0010: fleet rollups. rating_daily and action_daily are kept per persona
-- (see 0004), which at a fleet's density barely compresses the raw rows
-- (about one row per persona, day and module or tool), so a product-wide
-- view that reads them costs what the raw rows would. These tables hold
-- the same figures without the persona: per (UTC day, module) and per
-- (UTC day, tool), split into 8 shards by a hash of the persona id only
-- so that concurrent batches of different personas rarely wait on one
-- row. The views read them whenever no persona filter needs the
-- per-persona rows; personas to leave out (the "chaos" tag of regression
-- verdicts) are subtracted from their per-persona rows, which are few.
--
-- They change with the per-persona rollups: ingest adds what it inserted
-- in the same statement (rollups.go); every delete of per-persona rollup
-- rows (a persona deleted, prune, BackfillRollups' rebuild) subtracts them
-- here through the statement triggers below, and the rebuild adds the
-- recomputed rows back. Counts may reach 0 (rows kept until prune).

CREATE TABLE personas.rating_fleet_daily (
    day    date NOT NULL,
    module text NOT NULL CHECK (length(module) BETWEEN 1 AND 64),
    shard  smallint NOT NULL CHECK (shard BETWEEN 0 AND 7),
    n      integer NOT NULL CHECK (n >= 0),
    r1     integer NOT NULL DEFAULT 0 CHECK (r1 >= 0),
    r2     integer NOT NULL DEFAULT 0 CHECK (r2 >= 0),
    r3     integer NOT NULL DEFAULT 0 CHECK (r3 >= 0),
    r4     integer NOT NULL DEFAULT 0 CHECK (r4 >= 0),
    r5     integer NOT NULL DEFAULT 0 CHECK (r5 >= 0),
    sum    bigint GENERATED ALWAYS AS (r1 + 2 * r2 + 3 * r3 + 4 * r4 + 5 * r5) STORED,
    sum_sq bigint GENERATED ALWAYS AS (r1 + 4 * r2 + 9 * r3 + 16 * r4 + 25 * r5) STORED,
    PRIMARY KEY (day, module, shard),
    CHECK (n = r1 + r2 + r3 + r4 + r5)
) WITH (fillfactor = 50);
-- One module's trend.
CREATE INDEX rating_fleet_daily_module_idx ON personas.rating_fleet_daily (module, day);

CREATE TABLE personas.action_fleet_daily (
    day          date NOT NULL,
    tool_name    text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 128),
    shard        smallint NOT NULL CHECK (shard BETWEEN 0 AND 7),
    calls        integer NOT NULL CHECK (calls >= 0),
    errors       integer NOT NULL CHECK (errors BETWEEN 0 AND calls),
    latency_n    integer NOT NULL CHECK (latency_n BETWEEN 0 AND calls),
    latency_sum  bigint NOT NULL CHECK (latency_sum >= 0),
    latency_hist integer[] NOT NULL CHECK (cardinality(latency_hist) = 53),
    PRIMARY KEY (day, tool_name, shard)
) WITH (fillfactor = 50);

-- hist_sum adds latency histograms element by element (the delete
-- triggers below, which see few rows; bulk sums add each index instead).
CREATE FUNCTION personas.hist_add(a integer[], b integer[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN a IS NULL THEN b ELSE ARRAY(SELECT x.a + x.b FROM unnest(a, b) WITH ORDINALITY AS x(a, b, i) ORDER BY x.i) END $$;
CREATE AGGREGATE personas.hist_sum(integer[]) (SFUNC = personas.hist_add, STYPE = integer[], PARALLEL = SAFE);

-- Backfill from the per-persona rollups (the shard expression is
-- fleetShard in rollups.go).
INSERT INTO personas.rating_fleet_daily (day, module, shard, n, r1, r2, r3, r4, r5)
SELECT day, module, (hashtext(persona_id) & 7)::smallint, sum(n), sum(r1), sum(r2), sum(r3), sum(r4), sum(r5)
  FROM personas.rating_daily
 GROUP BY 1, 2, 3;

-- The histograms summed index by index (about 5 times faster than
-- hist_sum over millions of rows).
DO $$
BEGIN
    EXECUTE format($q$
INSERT INTO personas.action_fleet_daily (day, tool_name, shard, calls, errors, latency_n, latency_sum, latency_hist)
SELECT day, tool_name, (hashtext(persona_id) & 7)::smallint, sum(calls), sum(errors), sum(latency_n), sum(latency_sum),
       ARRAY[%s]::integer[]
  FROM personas.action_daily
 GROUP BY 1, 2, 3$q$,
        (SELECT string_agg(format('sum(latency_hist[%s])', i), ', ' ORDER BY i) FROM generate_series(1, 53) AS i));
END
$$;

-- Deleted per-persona rows leave the fleet tables. Rows are locked in key
-- order (as ingest locks them) so that a delete and a batch cannot deadlock.
CREATE FUNCTION personas.rating_fleet_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1
       FROM personas.rating_fleet_daily AS f
       JOIN (SELECT DISTINCT day, module, (hashtext(persona_id) & 7)::smallint AS shard FROM gone) AS o
         ON f.day = o.day AND f.module = o.module AND f.shard = o.shard
      ORDER BY f.day, f.module, f.shard
        FOR UPDATE OF f;
    UPDATE personas.rating_fleet_daily AS f
       SET n = f.n - o.n, r1 = f.r1 - o.r1, r2 = f.r2 - o.r2, r3 = f.r3 - o.r3, r4 = f.r4 - o.r4, r5 = f.r5 - o.r5
      FROM (SELECT day, module, (hashtext(persona_id) & 7)::smallint AS shard, sum(n) AS n,
                   sum(r1) AS r1, sum(r2) AS r2, sum(r3) AS r3, sum(r4) AS r4, sum(r5) AS r5
              FROM gone GROUP BY 1, 2, 3) AS o
     WHERE f.day = o.day AND f.module = o.module AND f.shard = o.shard;
    RETURN NULL;
END
$$;
CREATE TRIGGER rating_daily_fleet_delete AFTER DELETE ON personas.rating_daily
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION personas.rating_fleet_subtract();

CREATE FUNCTION personas.action_fleet_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1
       FROM personas.action_fleet_daily AS f
       JOIN (SELECT DISTINCT day, tool_name, (hashtext(persona_id) & 7)::smallint AS shard FROM gone) AS o
         ON f.day = o.day AND f.tool_name = o.tool_name AND f.shard = o.shard
      ORDER BY f.day, f.tool_name, f.shard
        FOR UPDATE OF f;
    UPDATE personas.action_fleet_daily AS f
       SET calls = f.calls - o.calls, errors = f.errors - o.errors, latency_n = f.latency_n - o.latency_n,
           latency_sum = f.latency_sum - o.latency_sum,
           latency_hist = ARRAY(SELECT x.a - x.b FROM unnest(f.latency_hist, o.hist) WITH ORDINALITY AS x(a, b, i) ORDER BY x.i)
      FROM (SELECT day, tool_name, (hashtext(persona_id) & 7)::smallint AS shard, sum(calls) AS calls,
                   sum(errors) AS errors, sum(latency_n) AS latency_n, sum(latency_sum) AS latency_sum,
                   personas.hist_sum(latency_hist) AS hist
              FROM gone GROUP BY 1, 2, 3) AS o
     WHERE f.day = o.day AND f.tool_name = o.tool_name AND f.shard = o.shard;
    RETURN NULL;
END
$$;
CREATE TRIGGER action_daily_fleet_delete AFTER DELETE ON personas.action_daily
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION personas.action_fleet_subtract();
