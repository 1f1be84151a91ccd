package personas

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on feedback batches.
const (
	MaxFeedbackPerBatch = 100
	MaxNotesLen         = 4000
	MinRating           = 1
	MaxRating           = 5
)

// FeedbackInput is a persona's rating of one module in one tick.
type FeedbackInput struct {
	TickID string
	Module string
	Rating int // 1..5
	Notes  *string
}

// FeedbackID is the deterministic row id "<tickId>-<module>": one rating
// per module per tick.
func FeedbackID(tickID, module string) string { return tickID + "-" + module }

// ValidateFeedback checks a batch; field names are JSON paths. A module
// rated twice for one tick is valid: the first rating is stored, the others
// count as duplicates (the runner's batches can repeat a module).
func ValidateFeedback(rows []FeedbackInput) error {
	var p Problems
	switch {
	case len(rows) == 0:
		p.Add("feedback", "must contain at least one rating")
	case len(rows) > MaxFeedbackPerBatch:
		p.Add("feedback", "at most %d ratings per request", MaxFeedbackPerBatch)
	}
	if p.Len() > 0 {
		return p.Err()
	}
	for i, r := range rows {
		f := "feedback[" + strconv.Itoa(i) + "]."
		checkText(&p, f+"tickId", r.TickID, 1, MaxTickIDLen)
		checkText(&p, f+"module", r.Module, 1, MaxModuleLen)
		if r.Rating < MinRating || r.Rating > MaxRating {
			p.Add(f+"rating", "must be an integer from %d to %d", MinRating, MaxRating)
		}
		if r.Notes != nil {
			checkText(&p, f+"notes", *r.Notes, 0, MaxNotesLen)
		}
	}
	return p.Err()
}

type feedbackRow struct {
	ID     string  `json:"id"`
	TickID string  `json:"tick_id"`
	Module string  `json:"module"`
	Rating int     `json:"rating"`
	Notes  *string `json:"notes"`
}

// InsertFeedback stores ratings idempotently and marks the persona active
// in the same statement, exactly as InsertActions does (see WriteOptions):
// a legacy tick that only rated modules does not leave the persona due.
func (s *Store) InsertFeedback(ctx context.Context, personaID string, rows []FeedbackInput, opts WriteOptions) (WriteResult, error) {
	if err := ValidateFeedback(rows); err != nil {
		return WriteResult{}, err
	}
	if err := opts.Validate(); err != nil {
		return WriteResult{}, err
	}
	b, err := s.Bind("insertFeedback", BindInput{PersonaID: personaID, Feedback: rows, LeaseToken: opts.LeaseToken})
	if err != nil {
		return WriteResult{}, err
	}
	var found, written int
	var stale bool
	err = s.queryRowBound(ctx, b).Scan(&found, &written, &stale)
	if err != nil {
		return WriteResult{}, fmt.Errorf("insert feedback: %w", translate(err))
	}
	if found == 0 {
		return WriteResult{}, ErrNotFound
	}
	return WriteResult{Written: written, Duplicates: len(rows) - written, StaleLease: stale}, nil
}

// ModuleFeedback aggregates one module's ratings for a persona.
type ModuleFeedback struct {
	Module       string         `json:"module"`
	AvgRating    float64        `json:"avgRating"` // arithmetic mean of the ratings
	Count        int            `json:"count"`
	Distribution map[string]int `json:"distribution"` // "1".."5" → number of ratings
	LastRatedAt  time.Time      `json:"lastRatedAt"`
}

// FeedbackByModule returns per-module aggregates of a persona's ratings,
// ordered by module name: moduleFeedbackExpr, as in the detail (from the
// daily rollup, so ratings older than the raw window still count; parse
// markers are not modules and never count).
func (s *Store) FeedbackByModule(ctx context.Context, personaID string) ([]ModuleFeedback, error) {
	var rows []struct {
		Module      string    `bun:"module"`
		AvgRating   float64   `bun:"avg_rating"`
		Count       int       `bun:"count"`
		R1          int       `bun:"r1"`
		R2          int       `bun:"r2"`
		R3          int       `bun:"r3"`
		R4          int       `bun:"r4"`
		R5          int       `bun:"r5"`
		LastRatedAt time.Time `bun:"last_rated_at"`
	}
	q := strings.ReplaceAll(moduleFeedbackExpr, "$p", "?0::text") + "\n ORDER BY d.module"
	if err := s.db.NewRaw(q, personaID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("feedback by module: %w", translate(err))
	}
	out := make([]ModuleFeedback, len(rows))
	for i, r := range rows {
		out[i] = moduleFeedbackJSON{Module: r.Module, AvgRating: r.AvgRating, Count: r.Count,
			R: [5]int{r.R1, r.R2, r.R3, r.R4, r.R5}, LastRatedAt: r.LastRatedAt}.feedback()
	}
	return out, nil
}

// insertFeedbackSQL: ?0 persona id, ?1 now, ?2 rows as JSON (ids unique),
// and when tokened ?3 the lease token. Like actions, the insert reads from
// the persona update, which therefore runs first; the rollups (rollups.go)
// add up what the insert returned: ratings when the batch has real modules,
// parse markers when it has markers (each left out otherwise).
func insertFeedbackSQL(tokened, ratings, markers bool) string {
	tok := ""
	if tokened {
		tok = "?3"
	}
	q := `
WITH r AS (
    SELECT * FROM jsonb_to_recordset(?2::jsonb) AS r(id text, tick_id text, module text, rating smallint, notes text)
), ` + writePersonaCTE(tok) + `, ins AS (
    INSERT INTO personas.persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at)
    SELECT r.id, p.user_id, r.tick_id, r.module, r.rating, r.notes, ?1::timestamptz
      FROM p, r
        ON CONFLICT (persona_id, id) DO NOTHING
 RETURNING module, rating
)`
	if ratings {
		q += ratingRollupCTE
	}
	if markers {
		q += unparsableRollupCTE
	}
	return q + `
SELECT (SELECT count(*) FROM p) AS found, (SELECT count(*) FROM ins) AS written,
       COALESCE((SELECT stale FROM p), false) AS stale`
}

// insertFeedbackPG holds insertFeedbackSQL's variants,
// [tokened][ratings][markers], converted once.
var insertFeedbackPG = func() (out [2][2][2]string) {
	for tok := range 2 {
		for r := range 2 {
			for m := range 2 {
				out[tok][r][m] = toPostgresPlaceholders(insertFeedbackSQL(tok == 1, r == 1, m == 1))
			}
		}
	}
	return out
}()
