-- 0006: cheaper writes. Each action or feedback batch updates its persona's
-- row and its rollup rows; an update that changes no indexed column is HOT
-- (no new index entries) only if the row's page has room for the new
-- version. Leave that room on the tables whose rows are updated over and
-- over: the persona row (every write), a day's rating and tool rollups
-- (every batch of that day). Only pages written from now on are filled
-- less; existing pages gain room as their dead versions are pruned, so no
-- rewrite is needed.
ALTER TABLE personas.personas SET (fillfactor = 80);
ALTER TABLE personas.rating_daily SET (fillfactor = 50);
ALTER TABLE personas.action_daily SET (fillfactor = 50);

-- Every rating inserted maintained this index too; the primary key
-- (persona_id, id) answers the same per-persona reads (a persona's ratings
-- by module, its share of the feed).
DROP INDEX personas.persona_feedback_module_idx;
