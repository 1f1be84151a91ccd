package personas_test

import (
	"testing"

	"github.com/mana/personas/pkg/dbtest"
)

func emptyDSN(t *testing.T) string { return dbtest.Empty(t, "migrate") }

func ptr[T any](v T) *T { return &v }
