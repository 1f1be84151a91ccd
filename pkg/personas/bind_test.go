package personas_test

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/personas"
)

// TestBindArgumentsMatchPlaceholders: every statement Bind returns, in each
// of its variants, uses exactly $1..$n for its n arguments, so whoever runs
// it over pgx (the store, the load tester) sends a matching argument list.
func TestBindArgumentsMatchPlaceholders(t *testing.T) {
	t.Parallel()
	s := personas.New(nil)
	seq, hash := 3, "abc"
	in := personas.BindInput{
		Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), PersonaID: "p", TickID: "t", LeaseToken: "tok",
		RunnerID: "r", Limit: 2, Lease: time.Minute,
		Actions:  []personas.ActionInput{{TickID: "t", Seq: &seq, ToolName: "todo.create", InputHash: &hash, Result: personas.ResultOK}},
		Feedback: []personas.FeedbackInput{{TickID: "t", Module: "todo", Rating: 4}},
		Start:    personas.TickStart{TickID: "t", RunnerID: "r", LeaseToken: "tok"},
	}
	placeholder := regexp.MustCompile(`\$(\d+)`)
	for _, status := range []personas.TickStatus{personas.TickOK, personas.TickFailed} {
		for _, holds := range []bool{true, false} {
			in.Holds, in.Finish.Status = holds, status
			for _, name := range personas.BindNames {
				b, err := s.Bind(name, in)
				require.NoError(t, err, name)
				require.Equal(t, name, b.Name)
				require.NotContains(t, b.SQL, "?", "%s: bun placeholders left", name)
				used := map[int]bool{}
				for _, m := range placeholder.FindAllStringSubmatch(b.SQL, -1) {
					n, _ := strconv.Atoi(m[1])
					used[n] = true
				}
				for i := 1; i <= len(b.Args); i++ {
					require.True(t, used[i], "%s (holds=%v, %s): argument $%d unused", name, holds, status, i)
				}
				require.Len(t, used, len(b.Args), "%s (holds=%v, %s): placeholders vs arguments", name, holds, status)
			}
		}
	}
	_, err := s.Bind("nope", in)
	require.Error(t, err)
	if q, ok := personas.Statement("claim"); ok {
		b, err := s.Bind("claim", in)
		require.NoError(t, err)
		require.Equal(t, q, b.SQL, "Bind and Statement agree")
		require.Len(t, b.Args[8], 2, "one fresh token per row")
	}
}

// TestBindListPersonas: every filter combination of the admin list binds
// $1..$n to exactly its n arguments; a bad filter is an error.
func TestBindListPersonas(t *testing.T) {
	t.Parallel()
	s := personas.New(nil)
	placeholder := regexp.MustCompile(`\$(\d+)`)
	filters := []personas.ListFilter{
		{}, {Limit: 100}, {Limit: 10, Archetype: "solo-dev", Cadence: personas.CadenceDaily, Q: "a_b%", Tags: []string{"chaos"}, Lean: true},
	}
	for _, st := range personas.ListStatuses {
		filters = append(filters, personas.ListFilter{Status: st}, personas.ListFilter{Limit: 5, Status: st, Tags: []string{"x", "y"}})
	}
	for _, f := range filters {
		b, err := s.Bind("listPersonas", personas.BindInput{List: f})
		require.NoError(t, err, f)
		used := map[int]bool{}
		for _, m := range placeholder.FindAllStringSubmatch(b.SQL, -1) {
			n, _ := strconv.Atoi(m[1])
			used[n] = true
		}
		require.Len(t, used, len(b.Args), "%+v", f)
		for i := 1; i <= len(b.Args); i++ {
			require.True(t, used[i], "%+v: $%d unused", f, i)
		}
	}
	paged, err := s.Bind("listPersonas", personas.BindInput{Limit: 100})
	require.NoError(t, err)
	require.Contains(t, paged.SQL, "LIMIT", "BindInput.Limit stands in for List.Limit")
	_, err = s.Bind("listPersonas", personas.BindInput{List: personas.ListFilter{Status: "asleep"}})
	require.Error(t, err)
	_, err = s.Bind("listPersonas", personas.BindInput{List: personas.ListFilter{Limit: 5, Cursor: "!!"}})
	require.Error(t, err)
}
