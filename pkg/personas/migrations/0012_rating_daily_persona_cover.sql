-- 0012: rating_daily's per-persona index covers what the views read.
-- The regression verdicts (trend, overview) take the excluded personas'
-- (the chaos personas') own rows out of the fleet rollup, and the detail
-- sums one persona's rows per module. Through the old index on
-- (persona_id, day) both fetched every such row from the heap, where a
-- persona's rows lie scattered among everyone's (one page per row at
-- 10,000 personas), so the verdicts' cost grew with the ratings per
-- persona: 160 ms for one module's 26-week trend at 1,000,000 ratings.
-- This index leads with (persona_id, module, day) and carries the figures,
-- so those reads are index-only scans over a persona's contiguous entries
-- (under 10 ms there). The price: an update of a rating_daily row (a
-- persona rating a module again the same day) changes indexed columns and
-- is no longer HOT; a day's first rating inserts index entries either way.
DROP INDEX personas.rating_daily_persona_idx;
CREATE INDEX rating_daily_persona_cover_idx ON personas.rating_daily (persona_id, module, day)
    INCLUDE (n, r1, r2, r3, r4, r5, sum, sum_sq, last_at);
