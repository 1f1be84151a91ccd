package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/openapitest"
	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

const (
	testKey     = "test-key-current-0123456789"
	testPrevKey = "test-key-previous-0123456789"
)

// monday is a Monday, 12:00 UTC.
var monday = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type bundle struct {
	store  *personas.Store
	clock  *personastest.Clock
	url    string
	client *internalclient.Client
	http   *http.Client // validates every exchange against openapi.yaml
}

func setup(t *testing.T) *bundle { return setupTB(t) }

func setupTB(t testing.TB) *bundle {
	t.Helper()
	clock := personastest.NewClock(monday)
	store := personastest.New(t, personas.WithClock(clock.Now))
	return serve(t, store, clock)
}

func serve(t testing.TB, store *personas.Store, clock *personastest.Clock) *bundle {
	t.Helper()
	cfg := Config{ServiceKey: testKey, ServiceKeyPrevious: testPrevKey}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ts := httptest.NewServer(newServer(cfg, store, logger).Echo)
	t.Cleanup(ts.Close)
	hc := openapitest.Client(t, openAPIDoc)
	hc.Timeout = 30 * time.Second
	client, err := internalclient.New(ts.URL, testKey, internalclient.WithHTTPClient(hc), internalclient.WithRetries(1, 0))
	require.NoError(t, err)
	return &bundle{store: store, clock: clock, url: ts.URL, client: client, http: hc}
}

// call sends a raw request with the current key (unless headers say
// otherwise) and returns the status and body.
func (b *bundle) call(t *testing.T, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Service-Key", testKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

func (b *bundle) persona(t *testing.T, id string, cadence personas.Cadence) {
	b.personaTB(t, id, cadence)
}

func (b *bundle) personaTB(t testing.TB, id string, cadence personas.Cadence) {
	t.Helper()
	_, err := b.store.UpsertPersona(context.Background(), personas.PersonaInput{
		UserID: id, Email: "persona." + id + "@mana.test", Name: id, Archetype: "solo-dev",
		SystemPrompt: "Du bist Kai.", ModuleMix: map[string]float64{"notes": 0.5, "todo": 0.5}, TickCadence: cadence,
	})
	require.NoError(t, err)
}

func actionsBody(tick string, n int, withSeqFrom int) string {
	rows := make([]string, n)
	for i := range rows {
		seq := ""
		if withSeqFrom >= 0 {
			seq = fmt.Sprintf(`"seq":%d,`, withSeqFrom+i)
		}
		rows[i] = fmt.Sprintf(`{"tickId":%q,%s"toolName":"tool%d","result":"ok","latencyMs":%d}`, tick, seq, i, 10+i)
	}
	return `{"actions":[` + strings.Join(rows, ",") + `]}`
}

func TestDue(t *testing.T) {
	t.Parallel()

	t.Run("ShapeWithNullLastActiveAt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		status, body := b.call(t, "GET", "/api/v1/personas/internal/due", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"personas":[{"userId":"p1","email":"persona.p1@mana.test","archetype":"solo-dev",
			"systemPrompt":"Du bist Kai.","moduleMix":{"notes":0.5,"todo":0.5},"tickCadence":"daily","lastActiveAt":null,"maxHistoryDays":null,"attempt":1}],
			"serverTime":"2026-11-23T12:00:00.000Z"}`, body)
	})

	t.Run("HourlyBoundary", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceHourly)
		_, err := b.client.PostActions(context.Background(), "p1", []internalclient.Action{{TickID: "t", ToolName: "x", Result: "ok"}})
		require.NoError(t, err)
		b.clock.Advance(time.Hour - time.Millisecond)
		due, err := b.client.ListDue(context.Background(), 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas)
		b.clock.Advance(time.Millisecond)
		due, err = b.client.ListDue(context.Background(), 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1)
		require.True(t, monday.Equal(*due.Personas[0].LastActiveAt))
	})

	t.Run("WeekdaysSaturdayVsMonday", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceWeekdays)
		b.clock.Set(monday.AddDate(0, 0, 5)) // Saturday
		due, err := b.client.ListDue(context.Background(), 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas)
		b.clock.Set(monday.AddDate(0, 0, 7)) // next Monday
		due, err = b.client.ListDue(context.Background(), 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1)
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 3 {
			b.persona(t, fmt.Sprintf("p%d", i), personas.CadenceDaily)
		}
		due, err := b.client.ListDue(context.Background(), 2)
		require.NoError(t, err)
		require.Len(t, due.Personas, 2)
		for _, q := range []string{"0", "1001", "abc", "1.5"} {
			status, body := b.call(t, "GET", "/api/v1/personas/internal/due?limit="+q, "")
			require.Equal(t, http.StatusBadRequest, status, q)
			require.Contains(t, body, `"field":"limit"`)
		}
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()

	t.Run("LeasedPersonaHiddenUntilFinish", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		b.persona(t, "p1", personas.CadenceHourly)
		got, err := b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r1", Limit: 5, LeaseSeconds: 300})
		require.NoError(t, err)
		require.Len(t, got.Personas, 1)
		require.True(t, monday.Add(5*time.Minute).Equal(*got.LeaseExpiresAt))
		p := got.Personas[0]
		require.True(t, monday.Add(5*time.Minute).Equal(*p.LeaseExpiresAt))
		require.NotEmpty(t, p.LeaseToken)
		require.Equal(t, 1, p.Attempt)

		other, err := b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r2"})
		require.NoError(t, err)
		require.Empty(t, other.Personas)
		due, err := b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas)

		// Writes no longer end a lease (a late write of a former holder
		// used to clear the new holder's): the persona stays leased.
		_, err = b.client.PostFeedback(ctx, "p1", []internalclient.Feedback{{TickID: "t", Module: "todo", Rating: 4}},
			internalclient.WithLeaseToken(p.LeaseToken))
		require.NoError(t, err)
		other, err = b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: "r2"})
		require.NoError(t, err)
		require.Empty(t, other.Personas, "a write keeps the lease")

		// The finish ends it; the period is done, so due again next hour.
		_, err = b.client.FinishTick(ctx, "p1", "t", internalclient.TickFinish{Status: "ok"}, internalclient.WithLeaseToken(p.LeaseToken))
		require.NoError(t, err)
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas)
		b.clock.Advance(time.Hour)
		due, err = b.client.ListDue(ctx, 0)
		require.NoError(t, err)
		require.Len(t, due.Personas, 1, "the finish ended the lease; due again next clock hour")
	})

	t.Run("EightRunnersThousandPersonas", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		values := make([]string, 1000)
		for i := range values {
			values[i] = fmt.Sprintf(`('u%04d','persona.u%04d@mana.test','x','p','{"todo":1}','daily')`, i, i)
		}
		_, err := b.store.DB().ExecContext(ctx, `INSERT INTO personas.personas (user_id,email,archetype,system_prompt,module_mix,tick_cadence) VALUES `+strings.Join(values, ","))
		require.NoError(t, err)

		var mu sync.Mutex
		owner := map[string]string{}
		var dups []string
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for r := range 8 {
			wg.Go(func() {
				runner := fmt.Sprintf("runner-%d", r)
				for {
					got, err := b.client.Claim(ctx, internalclient.ClaimRequest{RunnerID: runner, Limit: 25})
					if err != nil {
						errs <- err
						return
					}
					if len(got.Personas) == 0 {
						return
					}
					mu.Lock()
					for _, p := range got.Personas {
						if prev, ok := owner[p.UserID]; ok {
							dups = append(dups, p.UserID+" "+prev+"/"+runner)
						}
						owner[p.UserID] = runner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Empty(t, dups)
		require.Len(t, owner, 1000)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cases := map[string]string{
			"MissingRunner": `{}`,
			"RunnerNotText": `{"runnerId":5}`,
			"LimitTooHigh":  `{"runnerId":"r","limit":101}`,
			"LimitFloat":    `{"runnerId":"r","limit":2.5}`,
			"LeaseTooShort": `{"runnerId":"r","leaseSeconds":1}`,
			"NotAnObject":   `[1]`,
		}
		for name, body := range cases {
			status, resp := b.call(t, "POST", "/api/v1/personas/internal/due/claim", body)
			require.Equal(t, http.StatusBadRequest, status, name)
			require.Contains(t, resp, `"error":"ValidationError"`, name)
		}
	})
}

func TestActions(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		status, body := b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t1", 20, -1))
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"ok":true,"written":20,"duplicates":0}`, body)
		due, err := b.client.ListDue(context.Background(), 0)
		require.NoError(t, err)
		require.Empty(t, due.Personas, "actions mark the persona active")
	})

	t.Run("DuplicateBatchIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t1", 5, -1))
		status, body := b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t1", 5, -1))
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"ok":true,"written":0,"duplicates":5}`, body)
	})

	t.Run("LegacyIDsWithoutSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("tick-a", 2, -1))
		recent, err := b.store.RecentActions(context.Background(), "p1", 10)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"tick-a-0-tool0", "tick-a-1-tool1"}, []string{recent[0].ID, recent[1].ID})
	})

	t.Run("SplitBatchesWithSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		_, first := b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t1", 3, 0))
		_, second := b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t1", 3, 3))
		require.JSONEq(t, `{"ok":true,"written":3,"duplicates":0}`, first)
		require.JSONEq(t, `{"ok":true,"written":3,"duplicates":0}`, second)
		recent, err := b.store.RecentActions(context.Background(), "p1", 20)
		require.NoError(t, err)
		require.Len(t, recent, 6)
	})

	t.Run("HundredConcurrentIdenticalPosts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		body := actionsBody("t1", 20, -1)
		var wg sync.WaitGroup
		results := make([]struct {
			status int
			res    internalclient.WriteResult
		}, 100)
		for i := range 100 {
			wg.Go(func() {
				status, raw := b.call(t, "POST", "/api/v1/personas/internal/p1/actions", body)
				results[i].status = status
				_ = json.Unmarshal([]byte(raw), &results[i].res)
			})
		}
		wg.Wait()
		written, dups := 0, 0
		for _, r := range results {
			require.Equal(t, http.StatusOK, r.status)
			written += r.res.Written
			dups += r.res.Duplicates
		}
		require.Equal(t, 20, written)
		require.Equal(t, 99*20, dups)
		n, err := b.store.Actions7d(context.Background(), "p1")
		require.NoError(t, err)
		require.Equal(t, int64(20), n)
	})

	t.Run("FeedbackRepeatingModuleIsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		// The runner's batches can rate a module twice: the first rating is
		// stored, the second counted as a duplicate.
		status, body := b.call(t, "POST", "/api/v1/personas/internal/p1/feedback",
			`{"feedback":[{"tickId":"t","module":"a","rating":3},{"tickId":"t","module":"a","rating":4}]}`)
		require.Equal(t, http.StatusOK, status, body)
		require.JSONEq(t, `{"ok":true,"written":1,"duplicates":1}`, body)
		agg, err := b.store.FeedbackByModule(context.Background(), "p1")
		require.NoError(t, err)
		require.Len(t, agg, 1)
		require.InDelta(t, 3.0, agg[0].AvgRating, 0.001)
	})

	t.Run("ErrUnknownPersona", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, "POST", "/api/v1/personas/internal/nobody/actions", actionsBody("t1", 1, -1))
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
		status, body = b.call(t, "POST", "/api/v1/personas/internal/nobody/feedback", `{"feedback":[{"tickId":"t","module":"todo","rating":3}]}`)
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"Persona not found"}`, body)
	})
}

func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.persona(t, "p1", personas.CadenceDaily)
	long := strings.Repeat("x", 129)
	row := func(extra string) string {
		return `{"actions":[{"tickId":"t","toolName":"x","result":"ok"` + extra + `}]}`
	}
	fb := func(extra string) string {
		return `{"feedback":[{"tickId":"t","module":"todo"` + extra + `}]}`
	}
	cases := []struct {
		name, path, body, field string
		status                  int
	}{
		{"NotJSON", "actions", `{"actions":`, "body", 400},
		{"EmptyBody", "actions", ``, "body", 400},
		{"BodyIsArray", "actions", `[]`, "body", 400},
		{"MissingActions", "actions", `{}`, "actions", 400},
		{"ActionsNotArray", "actions", `{"actions":{}}`, "actions", 400},
		{"EmptyActions", "actions", `{"actions":[]}`, "actions", 400},
		{"TooManyActions", "actions", actionsBody("t", 501, -1), "actions", 400},
		{"RowNotObject", "actions", `{"actions":[5]}`, "actions[0]", 400},
		{"MissingTickID", "actions", `{"actions":[{"toolName":"x","result":"ok"}]}`, "actions[0].tickId", 400},
		{"TickIDWrongType", "actions", `{"actions":[{"tickId":7,"toolName":"x","result":"ok"}]}`, "actions[0].tickId", 400},
		{"ToolNameTooLong", "actions", `{"actions":[{"tickId":"t","toolName":"` + long + `","result":"ok"}]}`, "actions[0].toolName", 400},
		{"BadResult", "actions", `{"actions":[{"tickId":"t","toolName":"x","result":"fine"}]}`, "actions[0].result", 400},
		{"LatencyFloat", "actions", row(`,"latencyMs":12.5`), "actions[0].latencyMs", 400},
		{"LatencyString", "actions", row(`,"latencyMs":"12"`), "actions[0].latencyMs", 400},
		{"LatencyNegative", "actions", row(`,"latencyMs":-1`), "actions[0].latencyMs", 400},
		{"LatencyHuge", "actions", row(`,"latencyMs":1e12`), "actions[0].latencyMs", 400},
		{"SeqNegative", "actions", row(`,"seq":-1`), "actions[0].seq", 400},
		{"ErrorMessageTooLong", "actions", row(`,"errorMessage":"` + strings.Repeat("e", 4001) + `"`), "actions[0].errorMessage", 400},
		{"RatingFloat", "feedback", fb(`,"rating":4.5`), "feedback[0].rating", 400},
		{"RatingTooHigh", "feedback", fb(`,"rating":6`), "feedback[0].rating", 400},
		{"RatingZero", "feedback", fb(`,"rating":0`), "feedback[0].rating", 400},
		{"RatingMissing", "feedback", fb(``), "feedback[0].rating", 400},
		{"NotesTooLong", "feedback", fb(`,"rating":3,"notes":"` + strings.Repeat("n", 4001) + `"`), "feedback[0].notes", 400},
		{"ModuleMissing", "feedback", `{"feedback":[{"tickId":"t","rating":3}]}`, "feedback[0].module", 400},
		{"EmptyFeedback", "feedback", `{"feedback":[]}`, "feedback", 400},
		{"TooManyFeedback", "feedback", `{"feedback":[` + strings.Repeat(`{"tickId":"t","module":"a","rating":3},`, 100) + `{"tickId":"t","module":"b","rating":3}]}`, "feedback", 400},
		{"KeyInOtherCase", "actions", `{"actions":[{"TickId":"t","toolName":"x","result":"ok"}]}`, "actions[0].tickId", 400},
		{"BatchKeyInOtherCase", "feedback", `{"FEEDBACK":[{"tickId":"t","module":"a","rating":3}]}`, "feedback", 400},
		{"BodyTooLarge", "actions", `{"actions":[{"tickId":"` + strings.Repeat("t", int(bodyLimit)+1) + `"}]}`, "", 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := b.call(t, "POST", "/api/v1/personas/internal/p1/"+tc.path, tc.body)
			require.Equal(t, tc.status, status, body)
			var e struct {
				Error   string `json:"error"`
				Message string `json:"message"`
				Details []struct{ Field string }
			}
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			require.NotEmpty(t, e.Error)
			require.NotEmpty(t, e.Message)
			if tc.field != "" {
				require.NotEmpty(t, e.Details, body)
				require.Equal(t, tc.field, e.Details[0].Field, body)
			}
		})
	}
	// Nothing rejected was half-written, and the persona is still due.
	recent, err := b.store.RecentActions(context.Background(), "p1", 10)
	require.NoError(t, err)
	require.Empty(t, recent)
	agg, err := b.store.FeedbackByModule(context.Background(), "p1")
	require.NoError(t, err)
	require.Empty(t, agg)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name   string
		key    string
		status int
	}{
		{"MissingKey", "", http.StatusUnauthorized},
		{"WrongKey", "nope", http.StatusUnauthorized},
		{"KeyPrefix", testKey[:10], http.StatusUnauthorized},
		{"CurrentKey", testKey, http.StatusOK},
		{"PreviousKeyDuringRotation", testPrevKey, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := b.call(t, "GET", "/api/v1/personas/internal/due", "", "X-Service-Key", tc.key)
			require.Equal(t, tc.status, status, body)
			if tc.status == http.StatusUnauthorized {
				require.Contains(t, body, `"error":"Unauthorized"`)
			}
		})
	}

	t.Run("NoPreviousKeyConfigured", func(t *testing.T) {
		ts := httptest.NewServer(newServer(Config{ServiceKey: testKey}, b.store, slog.New(slog.NewJSONHandler(io.Discard, nil))).Echo)
		defer ts.Close()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", ts.URL+"/api/v1/personas/internal/due", nil)
		req.Header.Set("X-Service-Key", "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func TestOperations(t *testing.T) {
	t.Parallel()

	t.Run("HealthReadyMetrics", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.persona(t, "p1", personas.CadenceDaily)
		status, _ := b.call(t, "GET", "/healthz", "")
		require.Equal(t, http.StatusOK, status)
		status, body := b.call(t, "GET", "/readyz", "")
		require.Equal(t, http.StatusOK, status, body)
		b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t", 2, -1))
		b.call(t, "POST", "/api/v1/personas/internal/p1/actions", actionsBody("t", 2, -1))
		status, body = b.call(t, "GET", "/metrics", "")
		require.Equal(t, http.StatusOK, status)
		for _, want := range []string{
			`personas_rows_inserted_total{kind="actions"} 2`,
			`personas_rows_deduplicated_total{kind="actions"} 2`,
			`http_requests_total{method="POST",route="/api/v1/personas/internal/:id/actions",status="200"} 2`,
			`http_request_duration_seconds_bucket{method="POST",route="/api/v1/personas/internal/:id/actions",le="+Inf"} 2`,
			`go_sql_max_open_connections{db_name="personas"}`,
		} {
			require.True(t, strings.Contains(body, want), "metrics lack %s", want)
		}
	})

	t.Run("RequestIDHonoured", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req, _ := http.NewRequestWithContext(context.Background(), "GET", b.url+"/healthz", nil)
		req.Header.Set("X-Request-Id", "abc-123")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, "abc-123", resp.Header.Get("X-Request-Id"))
	})

	t.Run("SchemaMissingIsNotReadyNot500", func(t *testing.T) {
		t.Parallel()
		db, err := personas.OpenDB(dbtest.Empty(t, "nomigrate"), personas.PoolConfig{MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		b := serve(t, personas.New(db), personastest.NewClock(monday))
		status, body := b.call(t, "GET", "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body, "personas-internal migrate")
		status, body = b.call(t, "GET", "/api/v1/personas/internal/due", "")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body, "personas-internal migrate")

		_, err = personas.Migrate(context.Background(), db)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			status, _ := b.call(t, "GET", "/api/v1/personas/internal/due", "")
			return status == http.StatusOK
		}, 10*time.Second, 100*time.Millisecond)
	})

	t.Run("UnknownRouteIsJSON404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := b.call(t, "GET", "/nope", "")
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"Not Found","message":"no such endpoint"}`, body)
	})
}

// TestClientRetries drives the typed client against a real service that
// answers 503 (its schema is not migrated yet) until a migration lands:
// the client's retries ride it out, and 4xx answers are not retried.
func TestClientRetries(t *testing.T) {
	t.Parallel()
	db, err := personas.OpenDB(dbtest.Empty(t, "retry"), personas.PoolConfig{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	b := serve(t, personas.New(db), personastest.NewClock(monday))

	patient, err := internalclient.New(b.url, testKey, internalclient.WithRetries(20, 50*time.Millisecond))
	require.NoError(t, err)
	impatient, err := internalclient.New(b.url, testKey, internalclient.WithRetries(1, 0))
	require.NoError(t, err)

	_, err = impatient.ListDue(context.Background(), 0)
	var apiErr *internalclient.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusServiceUnavailable, apiErr.Status)

	// A claim answered 503 is not retried (its answer may be lost, not its
	// effect): it returns at once instead of waiting an hour to retry.
	claimer, err := internalclient.New(b.url, testKey, internalclient.WithRetries(5, time.Hour))
	require.NoError(t, err)
	_, err = claimer.Claim(context.Background(), internalclient.ClaimRequest{RunnerID: "r"})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusServiceUnavailable, apiErr.Status)

	migrated := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // let the first attempts fail
		_, err := personas.Migrate(context.Background(), db)
		migrated <- err
	}()
	due, err := patient.ListDue(context.Background(), 0)
	require.NoError(t, err)
	require.Empty(t, due.Personas)
	require.NoError(t, <-migrated)

	wrongKey, err := internalclient.New(b.url, "wrong", internalclient.WithRetries(5, time.Hour))
	require.NoError(t, err)
	_, err = wrongKey.ListDue(context.Background(), 0)
	require.ErrorAs(t, err, &apiErr, "a 401 returns at once instead of waiting an hour between retries")
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)

	_, err = patient.PostActions(context.Background(), "nobody", []internalclient.Action{{TickID: "t", ToolName: "x", Result: "ok"}})
	require.ErrorIs(t, err, internalclient.ErrNotFound)
}
