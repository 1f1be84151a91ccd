package personas_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mana/personas/pkg/personas"
	"github.com/mana/personas/pkg/personas/personastest"
)

// The store's share of a request, without HTTP: go test -run '^$' -bench . -benchmem ./pkg/personas
func BenchmarkInsertActions(b *testing.B) {
	s := personastest.New(b)
	ctx := context.Background()
	for i := range 16 {
		if _, err := s.UpsertPersona(ctx, persona(fmt.Sprintf("p%02d", i), personas.CadenceDaily)); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := s.InsertActions(ctx, fmt.Sprintf("p%02d", i%16), actions(fmt.Sprintf("t%d", i), 20), personas.WriteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDue(b *testing.B) {
	s := personastest.New(b, personas.WithClock(func() time.Time { return monday }))
	ctx := context.Background()
	for i := range 200 {
		if _, err := s.UpsertPersona(ctx, persona(fmt.Sprintf("d%03d", i), personas.CadenceDaily)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if res, err := s.Due(ctx, ptr(100)); err != nil || len(res.Personas) != 100 {
			b.Fatal(err, len(res.Personas))
		}
	}
}
