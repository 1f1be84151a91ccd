package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/personas"
)

// StoreError renders the store's errors as the contracts' JSON for the
// service called name, and returns nil for any other error.
func StoreError(name string, err error) *httpx.Error {
	var ve *personas.ValidationError
	switch {
	case errors.As(err, &ve):
		return &httpx.Error{Status: http.StatusBadRequest, Code: "ValidationError", Message: ve.Error(), Details: ve.Details}
	case errors.Is(err, personas.ErrNotFound):
		return &httpx.Error{Status: http.StatusNotFound, Code: "Persona not found"}
	case errors.Is(err, personas.ErrSchemaNotReady):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", SchemaMessage(name, err).Error())
	case errors.Is(err, personas.ErrUnavailable):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", "database unavailable; retry")
	case errors.Is(err, personas.ErrRetry):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", "transient database conflict; retry")
	case errors.Is(err, personas.ErrConflict):
		return httpx.NewError(http.StatusConflict, "Conflict", "")
	}
	return nil
}

// SchemaMessage says what to run when the schema is missing or behind.
func SchemaMessage(name string, err error) error {
	return fmt.Errorf("%w: run `%s migrate` (or start with PERSONAS_AUTO_MIGRATE=true)", err, name)
}

// StoreReady is the store's part of readiness: the database answers and
// its schema is current.
func StoreReady(ctx context.Context, name string, store *personas.Store) error {
	if err := store.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	if err := store.CheckSchema(ctx); err != nil {
		return SchemaMessage(name, err)
	}
	return nil
}
