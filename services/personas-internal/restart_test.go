package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
	"github.com/mana/personas/pkg/internalclient"
	"github.com/mana/personas/pkg/personas"
)

// attempt is one HTTP exchange as a client saw it.
type attempt struct {
	sent, done time.Time
	status     int // 0: no answer (transport error)
	retryAfter string
	probe      bool // from a probe (no retries) rather than a retrying client
}

// attempts records every exchange of the load, retries included.
type attempts struct {
	mu   sync.Mutex
	list []attempt
}

func (a *attempts) add(x attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, x)
}

func (a *attempts) snapshot() []attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

// recordingTransport records every attempt a retrying client makes, so
// the statuses behind its retries are checked too.
type recordingTransport struct {
	log  *attempts
	next http.RoundTripper
}

func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := rt.next.RoundTrip(req)
	a := attempt{sent: sent, done: time.Now()}
	if err == nil {
		a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	rt.log.add(a)
	return resp, err
}

func clientActions(tick string, n int) []internalclient.Action {
	actions := make([]internalclient.Action, n)
	for i := range actions {
		lat := i
		actions[i] = internalclient.Action{TickID: tick, ToolName: fmt.Sprintf("tool%d", i), Result: "ok", LatencyMs: &lat}
	}
	return actions
}

// restartFigures is what one restart cost, as the clients saw it.
type restartFigures struct {
	mode         string
	begin, ready time.Time // pg_ctl stop issued; pg_ctl start returned (accepting connections)
	firstRefusal time.Duration
	recovered    time.Duration // first 2xx to a request sent after the first refusal
	lastRefusal  time.Duration
	probe503     int // 503s answered to the probes
	retry503     int // 503s answered to the retrying clients' attempts
	// afterReady: 503s to requests sent once the server accepted
	// connections again (what dead pooled connections would cost).
	afterReady int
}

func figuresFor(mode string, begin, ready, end time.Time, all []attempt) restartFigures {
	f := restartFigures{mode: mode, begin: begin, ready: ready, firstRefusal: -1, recovered: -1, lastRefusal: -1}
	var first time.Time
	for _, a := range all {
		if a.done.Before(begin) || !a.done.Before(end) || a.status == http.StatusOK {
			continue
		}
		if a.probe {
			f.probe503++
		} else {
			f.retry503++
		}
		if !a.sent.Before(ready) {
			f.afterReady++
		}
		if first.IsZero() || a.done.Before(first) {
			first = a.done
		}
		if d := a.done.Sub(begin); d > f.lastRefusal {
			f.lastRefusal = d
		}
	}
	if first.IsZero() {
		return f
	}
	f.firstRefusal = first.Sub(begin)
	for _, a := range all {
		if a.status == http.StatusOK && !a.sent.Before(first) && a.done.Before(end) {
			if d := a.done.Sub(begin); f.recovered < 0 || d < f.recovered {
				f.recovered = d
			}
		}
	}
	return f
}

func ms(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// TestPrivateServerRestart (C10): personas-internal on a PostgreSQL server
// of the test's own (never the shared one), restarted under write load:
// first with `pg_ctl stop -m fast` (every session terminated with SQLSTATE
// 57P01, open transactions rolled back), then `-m immediate` (the server
// killed mid-statement, as in a crash; the start replays the WAL).
//
// Eight writers post batches with the retrying internalclient (every
// attempt recorded by its transport); two probes post with a plain HTTP
// client that never retries (a refusal is put aside and the probe moves
// on), to see when the service answers again. Asserted: no status but 200
// and 503-with-Retry-After, ever; every acknowledged batch stored whole;
// every refused one stored whole or not at all; every batch eventually
// through the retrying client. Recovery is measured and logged, not
// asserted (the machine is shared).
func TestPrivateServerRestart(t *testing.T) {
	t.Parallel()
	cluster := dbtest.PrivateCluster(t)
	ctx := context.Background()
	dsn := cluster.DSN()

	// The pool as the service opens it (PERSONAS_DB_MAX_CONNS' default).
	db, err := personas.OpenDB(dsn, personas.PoolConfig{MaxConns: 16})
	require.NoError(t, err)
	_, err = personas.Migrate(ctx, db)
	require.NoError(t, err)
	env := &faultEnv{dsn: dsn, logs: &syncBuffer{}}
	env.serve(t, db, Config{})

	const rowsPer = 5
	ids := []string{"p1", "p2", "p3", "p4"}
	for _, p := range ids {
		env.persona(t, p)
	}

	log := &attempts{}
	var mu sync.Mutex
	var acked, refused, failed []string
	dupBatches := 0 // retried batches whose rows were stored already: committed, answer lost
	record := func(list *[]string, s string) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, s)
	}

	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	defer halt() // a failed restart must not leave the writers running
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Retries honour Retry-After (1 s); ten attempts outlast either
			// restart with room to spare.
			client, err := internalclient.New(env.ts.URL, testKey,
				internalclient.WithHTTPClient(&http.Client{Transport: recordingTransport{log: log, next: &http.Transport{}}}),
				internalclient.WithRetries(10, 100*time.Millisecond))
			if err != nil {
				record(&failed, err.Error())
				return
			}
			for n := 0; !stopped(); n++ {
				p := ids[(g+n)%len(ids)]
				tick := fmt.Sprintf("%s-w%d-n%d", p, g, n)
				res, err := client.PostActions(ctx, p, clientActions(tick, rowsPer))
				if err != nil {
					record(&failed, fmt.Sprintf("%s: %v", tick, err))
					continue
				}
				record(&acked, tick)
				if res.Duplicates > 0 {
					mu.Lock()
					dupBatches++
					mu.Unlock()
				}
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for n := 0; !stopped(); n++ {
				p := ids[(g+n)%len(ids)]
				tick := fmt.Sprintf("%s-probe%d-n%d", p, g, n)
				sent := time.Now()
				status, ra := env.post(ctx, hc, "/api/v1/personas/internal/"+p+"/actions", batch(tick, rowsPer))
				log.add(attempt{sent: sent, done: time.Now(), status: status, retryAfter: ra, probe: true})
				switch {
				case status == http.StatusOK:
					record(&acked, tick)
				case status == http.StatusServiceUnavailable && ra != "":
					record(&refused, tick)
					time.Sleep(10 * time.Millisecond) // a probe paces itself, or the outage is a busy loop
				default:
					record(&failed, fmt.Sprintf("%s: probe got status %d (Retry-After %q)", tick, status, ra))
				}
			}
		}()
	}

	started := time.Now()
	time.Sleep(time.Second) // steady load first
	type window struct {
		mode               string
		begin, down, ready time.Time
	}
	var windows []window
	for _, mode := range []string{"fast", "immediate"} {
		w := window{mode: mode, begin: time.Now()}
		cluster.Stop(t, mode)
		w.down = time.Now()
		cluster.Start(t)
		w.ready = time.Now()
		windows = append(windows, w)
		time.Sleep(3 * time.Second) // writes go on against the restarted server
	}
	halt()
	wg.Wait()
	end := time.Now()
	all := log.snapshot()

	// The figures first, so that a failing run shows them too.
	statuses := map[int]int{}
	var wrong []string // answers other than 200 and 503-with-Retry-After
	for _, a := range all {
		statuses[a.status]++
		if a.status != http.StatusOK && (a.status != http.StatusServiceUnavailable || a.retryAfter == "") {
			wrong = append(wrong, fmt.Sprintf("status %d (Retry-After %q) at +%s", a.status, a.retryAfter, ms(a.done.Sub(started))))
		}
	}
	figures := make([]restartFigures, len(windows))
	for i, w := range windows {
		next := end
		if i+1 < len(windows) {
			next = windows[i+1].begin
		}
		f := figuresFor(w.mode, w.begin, w.ready, next, all)
		figures[i] = f
		t.Logf("restart -m %-9s pg_ctl stop %s, start %s; first 503 at +%s; first 2xx after it at +%s; last 503 at +%s; 503s: %d to the probes, %d to retrying clients' attempts, %d to requests sent after the start",
			w.mode, ms(w.down.Sub(w.begin)), ms(w.ready.Sub(w.down)), ms(f.firstRefusal), ms(f.recovered), ms(f.lastRefusal), f.probe503, f.retry503, f.afterReady)
	}
	t.Logf("load: %s; batches acknowledged %d (%d of them found already stored by a retry: committed, answer lost), probe batches refused %d; answers by status (0: no answer) %v",
		end.Sub(started).Round(time.Millisecond), len(acked), dupBatches, len(refused), statuses)

	// Every answer, retries included, is a 200 or a 503 with Retry-After;
	// the retrying client never gives up.
	require.Empty(t, wrong, "every failure is a 503 with Retry-After (%d of %d answers are not)", len(wrong), len(all))
	require.Empty(t, failed, "the retrying client gets every batch through; the probes see only 200 and 503")
	for _, f := range figures {
		require.Positive(t, f.probe503+f.retry503, "the restart -m %s happened under load", f.mode)
		require.GreaterOrEqual(t, f.recovered, time.Duration(0), "writes succeed again after the restart -m %s", f.mode)
	}

	// What was acknowledged is stored whole; what was refused, whole or
	// not at all; then the retrying client puts the refused ones through.
	stored := storedRows(t, env.admin)
	for _, tick := range acked {
		require.Equal(t, rowsPer, stored[tick], "acknowledged batch %s is stored in full", tick)
	}
	for _, tick := range refused {
		require.Contains(t, []int{0, rowsPer}, stored[tick], "a refused batch is all or nothing: %s", tick)
	}
	retrying, err := internalclient.New(env.ts.URL, testKey, internalclient.WithRetries(10, 100*time.Millisecond))
	require.NoError(t, err)
	for _, tick := range refused {
		_, err := retrying.PostActions(ctx, tick[:strings.Index(tick, "-probe")], clientActions(tick, rowsPer))
		require.NoError(t, err, "a refused batch goes through when retried")
	}
	stored = storedRows(t, env.admin)
	for _, tick := range append(slices.Clone(acked), refused...) {
		require.Equal(t, rowsPer, stored[tick], "%s stored exactly once", tick)
	}
	total := 0
	for _, n := range stored {
		total += n
	}
	require.Equal(t, rowsPer*(len(acked)+len(refused)), total, "no rows but those of the batches sent")

	require.False(t, fiveXX.MatchString(strings.ReplaceAll(env.metrics(t), `status="503"`, "")), "no 5xx other than 503 counted")
	for _, l := range parseLogs(t, env.logs.String()) {
		require.NotEqual(t, http.StatusInternalServerError, l.Status, "%+v", l)
	}
}
