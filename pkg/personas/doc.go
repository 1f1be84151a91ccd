// Package personas is the one store both personas services use: the domain
// types (personas, their actions and feedback), their validation, and a
// Store over PostgreSQL schema "personas" built on uptrace/bun with its
// pgdialect.
//
// Driver: pgx (github.com/jackc/pgx/v5) through database/sql. pgx is the
// maintained PostgreSQL driver for Go; bun's own pgdriver is in maintenance
// mode. Because bun formats every query itself, connections use pgx's simple
// protocol (no per-query prepared statements, one round trip per query).
// Callers never see pgx: driver errors are translated here into ErrNotFound,
// ErrConflict, ErrSchemaNotReady or wrapped errors.
//
// Invariants the store keeps, whatever the caller does:
//   - every write that records activity (actions or feedback) sets
//     last_active_at and clears the persona's lease in the same statement as
//     the insert, so rows are never written while the persona stays due;
//   - action and feedback ids are deterministic and inserted with ON CONFLICT
//     DO NOTHING; the counts returned are the rows really inserted;
//   - persona_activity_hourly is incremented by exactly the rows inserted, in
//     the same statement, so the admin list never scans persona_actions;
//   - claims lease rows with FOR UPDATE SKIP LOCKED, so two runners never
//     get the same persona.
//
// The store never holds a transaction open across a call to another service.
package personas
