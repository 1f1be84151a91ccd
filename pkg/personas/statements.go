package personas

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// The runner's statements (sweep, due, claim, inserting actions and
// feedback, and those of the tick start and finish transactions) bypass
// bun's query formatter and run as server-side prepared statements:
// PostgreSQL parses and plans each once per connection instead of on every
// call, and large JSON arguments are sent as parameters instead of being
// escaped into the SQL text. They are written with bun-style positional
// placeholders (?0, ?1, ...) and carry explicit casts, so the same text
// reads the same whichever way it is run; prepared turns them into $1, $2.
var prepared = func() map[string]string {
	out := map[string]string{}
	for name, q := range map[string]string{
		"due":           dueSQL,
		"claim":         claimSQL,
		"dueProfiles":   dueProfilesSQL,
		"sweep":         sweepSQL,
		"lockLease":     lockLeaseSQL,
		"startTick":     startTickSQL,
		"bindTick":      bindTickSQL,
		"getTick":       getTickSQL,
		"tickStatus":    tickStatusSQL,
		"finishTick":    finishTickSQL,
		"personaDetail": personaDetailSQL,
	} {
		out[name] = toPostgresPlaceholders(q)
	}
	// The write statements' fullest variants (Bind picks one per batch).
	out["insertActions"] = insertActionsPG[1][1]
	out["insertFeedback"] = insertFeedbackPG[1][1][1]
	return out
}()

var bunPlaceholder = regexp.MustCompile(`\?(\d+)`)

func toPostgresPlaceholders(q string) string {
	return bunPlaceholder.ReplaceAllStringFunc(q, func(m string) string {
		n, _ := strconv.Atoi(m[1:])
		return "$" + strconv.Itoa(n+1)
	})
}

// Statement returns the SQL of one of the store's prepared statements
// exactly as the store sends it ($1, $2, ... placeholders), so tests can
// check its plan. Names: "due", "claim", "dueProfiles", "sweep", "insertActions",
// "insertFeedback" and the tick transactions' "lockLease", "startTick",
// "bindTick", "getTick", "tickStatus", "finishTick", and the admin
// detail's "personaDetail" ("finishPersona" has variants: see Bind, which
// also gives any statement its arguments).
func Statement(name string) (string, bool) {
	q, ok := prepared[name]
	return q, ok
}

// execArgs asks pgx for a cached prepared statement, overriding the pool's
// simple-protocol default (which bun's own formatted queries need).
func execArgs(args []any) []any {
	return append([]any{pgx.QueryExecModeCacheStatement}, args...)
}

func (s *Store) queryRowPrepared(ctx context.Context, name string, args ...any) *sql.Row {
	return s.db.DB.QueryRowContext(ctx, prepared[name], execArgs(args)...)
}

// queryRowBound runs a bound statement (whichever variant Bind chose) as a
// cached prepared statement.
func (s *Store) queryRowBound(ctx context.Context, b Bound) *sql.Row {
	return s.db.DB.QueryRowContext(ctx, b.SQL, execArgs(b.Args)...)
}

// queryPrepared runs a prepared statement and scans its rows with bun into
// dest (a pointer to a slice of structs with bun tags).
func (s *Store) queryPrepared(ctx context.Context, name string, dest any, args ...any) error {
	rows, err := s.db.DB.QueryContext(ctx, prepared[name], execArgs(args)...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	return s.db.ScanRows(ctx, rows, dest)
}
