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
//   - every write (actions or feedback) sets last_active_at in the same
//     statement as the insert; a write from a runner that predates ticks
//     (no lease token, no tick record) also marks the period done, so its
//     rows are never written while the persona stays due;
//   - writes never end or change a lease (a late write from a runner whose
//     lease was taken over used to clear the new holder's lease); a write,
//     start or finish with a stale token is stored, since it is real data,
//     and counted on the tick (stale_writes), never applied to the persona;
//   - action and feedback ids are deterministic and inserted with ON CONFLICT
//     DO NOTHING; a batch that repeats an id keeps the first row; the counts
//     returned are the rows really inserted;
//   - persona_activity_hourly is incremented by exactly the rows inserted, in
//     the same statement, so the admin list never scans persona_actions;
//   - claims lease rows with FOR UPDATE SKIP LOCKED, so two runners never
//     get the same persona.
//
// Leases. A claim hands each persona out with a fresh token (128 bits from
// crypto/rand, base64url) and keeps only its SHA-256: the token is a
// bearer credential for the lease, and whoever reads the table must not
// be able to act as the holder. The token proves holding: renew (only
// before the lease expires), release, and a finish end or extend the lease
// only with it. A finish without a token ends the lease only when a tokened
// tick start bound the lease to that very tick. A lease ends by finish,
// release, an operator's release, or by lapsing.
//
// Crashes. A lease that lapses without a finish or release is a crash: the
// runner died or hung. It is not found by a background loop but when the
// schedule is next looked at: Due and Claim first sweep lapsed leases in
// one statement that locks each row, counts one failure, marks the bound
// tick "crashed" and clears the token hash, so each lapse is counted
// exactly once however many runners look at the same time. Until swept, a
// lapsed lease keeps its persona out of /due.
//
// Attempts. failed and timeout finishes and crashes count consecutive
// failures; the next attempt waits an exponential backoff with jitter
// (WithBackoff; capped by default at the cadence's period, so a failing
// persona is still tried about once per period), and the failure that
// reaches WithQuarantineAfter quarantines the persona until an operator
// lifts it (Unquarantine). An ok or empty finish resets the count. A
// persona is a schedule, not a job: nothing is ever "completed" for good.
//
// Schedule. Periods are calendar units in UTC (see Due): once per clock
// hour, or once per day from a tick hour on. "24 h after the last write"
// started each day a few minutes later than the one before (the tick takes
// minutes), so personas wandered around the clock; a calendar period does
// not drift. The tick hour, by default derived from the user id, spreads
// the fleet over the day instead of waking everyone at midnight.
//
// The store never holds a transaction open across a call to another service.
package personas
