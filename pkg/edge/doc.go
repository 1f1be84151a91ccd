// Package edge is the way from an HTTP request to its response for both
// personas services, and the process around them:
//
//   - decoding: request bodies are read as a stream (pkg/jsondec) with memory
//     bounded by what a valid request needs; type problems are collected in
//     errs.Problems together with the store's own validation, so one 400
//     names every problem (decode.go);
//   - errors: handlers return errors in the shared vocabulary (pkg/errs) and
//     never write error bodies; statusTable in status.go is the one place a
//     code becomes an HTTP status and the contract's JSON
//     {"error", "message"?, "details"?}. Anything without a code is a 500
//     whose detail goes to the log only;
//   - middleware: request ids carried in the context (pkg/reqid), JSON access
//     logs, Prometheus metrics, bounded bodies and deadlines, panics, the
//     service key (auth.go) and the schema gate (gate.go);
//   - health (/healthz), readiness (/readyz), metrics (/metrics) and the
//     OpenAPI document (/openapi.yaml);
//   - the shared main (run.go): subcommands, configuration helpers, the
//     logger, the database pool, migrations, serving with timeouts and
//     graceful shutdown.
//
// It is one package because these pieces are one path: a newcomer asking
// "where does this 400, 409 or 502 come from?" reads statusTable, then finds
// the errs.Code at the place that returned it.
package edge
