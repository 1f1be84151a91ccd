-- 0002: action and feedback ids are unique per persona, not across all
-- personas. Ids are "<tickId>-<i>-<toolName>" and "<tickId>-<module>": two
-- personas reporting the same tickId must both keep their rows instead of
-- the second batch being counted as duplicates of the first.

ALTER TABLE personas.persona_actions
    DROP CONSTRAINT persona_actions_pkey,
    ADD CONSTRAINT persona_actions_pkey PRIMARY KEY (persona_id, id);

ALTER TABLE personas.persona_feedback
    DROP CONSTRAINT persona_feedback_pkey,
    ADD CONSTRAINT persona_feedback_pkey PRIMARY KEY (persona_id, id);
