// Package httpx is the HTTP bootstrap both personas services share: an echo
// instance with request ids, JSON access logs, Prometheus metrics, bounded
// bodies and per-request deadlines; the one error handler that turns errors
// into the contract's JSON ({"error", "message"?, "details"?}); liveness,
// readiness and metrics endpoints; service-key authentication; and a server
// with timeouts and graceful shutdown.
//
// Handlers return errors; they never write error bodies themselves. Errors a
// service defines are mapped by the MapError function it passes in; anything
// unmapped is a 500 whose detail goes to the log only.
package httpx
