package reqid_test

import (
	"context"
	"testing"

	"github.com/mana/personas/pkg/reqid"
)

func TestWithFrom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if got := reqid.From(ctx); got != "" {
		t.Fatalf("From(empty ctx) = %q", got)
	}
	ctx = reqid.With(ctx, "req-1")
	if got := reqid.From(ctx); got != "req-1" {
		t.Fatalf("From = %q, want req-1", got)
	}
	if got := reqid.From(reqid.With(ctx, "")); got != "req-1" {
		t.Fatalf("an empty id must not hide the outer one, got %q", got)
	}
	if got := reqid.From(reqid.With(ctx, "req-2")); got != "req-2" {
		t.Fatalf("inner id wins, got %q", got)
	}
}
