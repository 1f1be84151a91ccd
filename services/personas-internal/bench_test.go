package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mana/personas/pkg/personas"
)

// The Go benchmarks measure the service in-process over real HTTP and a
// real database (one persona, 20-row batches). make bench runs the full
// load comparison against raw PostgreSQL; these isolate per-request cost
// and allocations: go test -run '^$' -bench . -benchmem ./services/personas-internal
func BenchmarkPostActions(b *testing.B) {
	bn := benchSetup(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on 2 CPUs, like the load test's concurrency
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := actionsBody(fmt.Sprintf("bench-%d", n.Add(1)), 20, 0)
			bn.mustPost(b, "/api/v1/personas/internal/p1/actions", body)
		}
	})
}

func BenchmarkListDue(b *testing.B) {
	bn := benchSetup(b)
	ctx := context.Background()
	for i := range 100 {
		_, err := bn.store.UpsertPersona(ctx, personas.PersonaInput{
			UserID: fmt.Sprintf("d%03d", i), Email: fmt.Sprintf("persona.d%03d@mana.test", i), Archetype: "solo-dev",
			SystemPrompt: strings.Repeat("Du bist eine Testperson. ", 20), ModuleMix: map[string]float64{"todo": 1},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		bn.mustGet(b, "/api/v1/personas/internal/due")
	}
}

func benchSetup(b *testing.B) *bundle {
	b.Helper()
	bn := setupTB(b)
	bn.personaTB(b, "p1", personas.CadenceDaily)
	return bn
}

// benchClient keeps a connection per concurrent client, as the runner's
// HTTP client does (the default keeps only two idle per host).
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (bn *bundle) mustPost(b *testing.B, path, body string) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, bn.url+path, strings.NewReader(body))
	req.Header.Set("X-Service-Key", testKey)
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func (bn *bundle) mustGet(b *testing.B, path string) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, bn.url+path, nil)
	req.Header.Set("X-Service-Key", testKey)
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}
