package personas

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mana/personas/pkg/errs"
)

// The store's errors, in the shared vocabulary (pkg/errs). Callers branch
// with errors.Is on these or on errs.CodeOf; they never see a driver error.
var (
	// ErrNotFound: the persona (or row) does not exist.
	ErrNotFound = &errs.Error{Code: errs.NotFound, Title: "Persona not found"}
	// ErrConflict: a unique key is taken (for example an email used by
	// another persona).
	ErrConflict = &errs.Error{Code: errs.Conflict}
	// ErrUnavailable: the database cannot be reached, or dropped the
	// connection; the operation may be repeated.
	ErrUnavailable = &errs.Error{Code: errs.Unavailable}
	// ErrSchemaNotReady: the schema is missing or older than the code. It is
	// the cause of an Unavailable error.
	ErrSchemaNotReady = errors.New("database schema not ready")
	// ErrLeaseLost: the token is not the persona's current lease (another
	// runner holds it, an operator released it, or it expired). Its code is
	// Conflict: the edge answers 409 and the runner must stop driving the
	// persona.
	ErrLeaseLost = &errs.Error{Code: errs.Conflict, Title: "Lease lost",
		Message: "this lease token does not hold the persona's lease (released, expired or taken over)"}
)

// Problems collects input problems (see errs.Problems).
type Problems = errs.Problems

// FieldError is one invalid input, by its JSON path.
type FieldError = errs.FieldError

// Invalid is a validation error with one problem.
func Invalid(field, message string) error { return errs.InvalidField(field, "%s", message) }

// retryAfter is what a client is told to wait after a database fault.
const retryAfter = time.Second

func unavailable(err error, message string) error {
	e := errs.Wrap(err, errs.Unavailable, message)
	e.RetryAfter = retryAfter
	return e
}

// SchemaError is the error for a schema that is missing or behind; the
// message says what to run.
func SchemaError(detail string) error {
	return unavailable(fmt.Errorf("%w: %s", ErrSchemaNotReady, detail),
		"database schema not ready: "+detail+"; run the service's `migrate` subcommand (or start with PERSONAS_AUTO_MIGRATE=true)")
}

// translate maps driver errors onto the shared vocabulary, keeping the
// original in the chain for logs. Every fault that means "the database, not
// the request, failed" becomes Unavailable (503, retry): a write whose
// outcome is unknown is safe to repeat because row ids are deterministic.
func translate(err error) error {
	if err == nil || errs.As(err) != nil {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if errors.Is(err, context.Canceled) {
		return errs.Wrap(err, errs.Canceled, "the client went away")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		e := errs.Wrap(err, errs.Overloaded, "overloaded: the request ran out of time; retry")
		e.RetryAfter = retryAfter
		return e
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch class := pgErr.Code[:2]; {
		case pgErr.Code == "23505": // unique_violation
			return ErrConflict.WithCause(err).WithMessage("%s is already taken", pgErr.ConstraintName)
		case pgErr.Code == "23503": // foreign_key_violation
			return ErrNotFound.WithCause(err)
		case pgErr.Code == "23514", class == "22": // check violation, data exceptions
			return errs.InvalidField(pgErr.ColumnName, "%s", pgErr.Message)
		case pgErr.Code == "42P01", pgErr.Code == "3F000": // undefined table, undefined schema
			return SchemaError(pgErr.Message)
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return unavailable(err, "transient database conflict; retry")
		case class == "08", class == "57", class == "53": // connection exception, operator intervention (admin shutdown, crash), insufficient resources
			return unavailable(err, "database unavailable; retry")
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return unavailable(err, "database unavailable; retry")
	}
	return err
}
