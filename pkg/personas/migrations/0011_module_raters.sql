-- 0011: who rates each module, and when last. The modules table reports,
-- per module, how many personas rated it in the window and when it was
-- last rated. Counting distinct personas over rating_daily costs what that
-- window's per-persona rows cost (a 28-day window at 10,000 personas is
-- ~150,000 rows to read, sort and count), and it grows with the window and
-- the fleet's density. The windows always end now, so a persona rated a
-- module in the window exactly when its latest rating of the module is in
-- the window: this table keeps that latest rating per (persona, module).
-- Its size is personas × modules, whatever the history; ingest updates the
-- row in the feedback statement (rollups.go, ratingRollupCTE), a HOT update
-- since last_at is in no index; BackfillRollups rebuilds it from
-- rating_daily; deleting a persona deletes its rows; prune drops rows whose
-- latest rating is older than the rollups kept.
CREATE TABLE personas.module_raters (
    persona_id text NOT NULL REFERENCES personas.personas (user_id) ON DELETE CASCADE,
    module     text NOT NULL CHECK (length(module) BETWEEN 1 AND 64),
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (persona_id, module)
) WITH (fillfactor = 70);

INSERT INTO personas.module_raters (persona_id, module, last_at)
SELECT persona_id, module, max(last_at)
  FROM personas.rating_daily
 GROUP BY 1, 2;
