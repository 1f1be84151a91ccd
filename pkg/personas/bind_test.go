package personas_test

import (
	"fmt"
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
	check := func(name, variant string, b personas.Bound) {
		t.Helper()
		require.Equal(t, name, b.Name)
		require.NotContains(t, b.SQL, "?", "%s: bun placeholders left", name)
		used := map[int]bool{}
		for _, m := range placeholder.FindAllStringSubmatch(b.SQL, -1) {
			n, _ := strconv.Atoi(m[1])
			used[n] = true
		}
		for i := 1; i <= len(b.Args); i++ {
			require.True(t, used[i], "%s (%s): argument $%d unused", name, variant, i)
		}
		require.Len(t, used, len(b.Args), "%s (%s): placeholders vs arguments", name, variant)
	}
	for _, status := range []personas.TickStatus{personas.TickOK, personas.TickFailed} {
		for _, holds := range []bool{true, false} {
			in.Holds, in.Finish.Status = holds, status
			for _, name := range personas.BindNames {
				b, err := s.Bind(name, in)
				require.NoError(t, err, name)
				check(name, fmt.Sprintf("holds=%v, %s", holds, status), b)
			}
		}
	}
	// The write statements' variants: with and without a token, error
	// rows, ratings and parse markers.
	variants := map[string]bool{}
	for _, token := range []string{"", "tok"} {
		for _, result := range []personas.Result{personas.ResultOK, personas.ResultError} {
			w := in
			w.LeaseToken = token
			w.Actions = []personas.ActionInput{{TickID: "t", ToolName: "todo.create", Result: result}}
			b, err := s.Bind("insertActions", w)
			require.NoError(t, err)
			check("insertActions", fmt.Sprintf("token %q, %s", token, result), b)
			variants[b.SQL] = true
		}
		for _, modules := range [][]string{{"todo"}, {"__parse"}, {"todo", "__parse"}} {
			w := in
			w.LeaseToken = token
			w.Feedback = nil
			for _, m := range modules {
				w.Feedback = append(w.Feedback, personas.FeedbackInput{TickID: "t", Module: m, Rating: 3})
			}
			b, err := s.Bind("insertFeedback", w)
			require.NoError(t, err)
			check("insertFeedback", fmt.Sprintf("token %q, %v", token, modules), b)
			variants[b.SQL] = true
		}
	}
	require.Len(t, variants, 10, "each kind of batch has its own statement")
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
