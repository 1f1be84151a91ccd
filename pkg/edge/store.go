package edge

import (
	"context"
	"errors"
	"fmt"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/personas"
)

// StoreReady is the store's part of readiness: the database answers and its
// schema is current. name is the program, named in the fix for a schema
// that is behind.
func StoreReady(ctx context.Context, name string, store *personas.Store) error {
	if err := store.Ping(ctx); err != nil {
		return errs.Wrap(err, errs.Unavailable, "database unreachable")
	}
	return schemaReady(ctx, name, store)
}

// schemaReady checks the schema and names the command that fixes it.
func schemaReady(ctx context.Context, name string, store *personas.Store) error {
	err := store.CheckSchema(ctx)
	if err == nil {
		return nil
	}
	e := errs.As(err)
	if e == nil || !errors.Is(err, personas.ErrSchemaNotReady) {
		return fmt.Errorf("check schema: %w", err)
	}
	// The cause says what is wrong ("database schema not ready: ..."); the
	// fix names this program.
	what := personas.ErrSchemaNotReady.Error()
	if cause := errors.Unwrap(e); cause != nil {
		what = cause.Error()
	}
	return e.WithMessage("%s; run `%s migrate` (or start with PERSONAS_AUTO_MIGRATE=true)", what, name)
}

// SchemaGate is Gate over the store's schema check: until the schema is
// current, requests get a 503 naming the command to run instead of SQL
// errors.
func SchemaGate(name string, store *personas.Store) func(context.Context) error {
	return func(ctx context.Context) error { return schemaReady(ctx, name, store) }
}
