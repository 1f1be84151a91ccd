package main

import (
	"context"
	_ "embed"
	"log/slog"

	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/personas"
)

//go:embed openapi.yaml
var openAPIDoc []byte

// bodyLimit bounds request bodies: the largest valid request in its most
// verbose legal encoding (see maxBodyBytes), rounded up to a whole MiB so
// the gateway's client_max_body_size (in MiB) can say the same number.
// Memory does not grow with it: bodies are decoded as a stream and strings
// are cut at their field's limit as they are read.
var bodyLimit = roundUpMiB(maxBodyBytes())

// The most verbose legal spelling of each JSON token a valid request holds.
const (
	// verboseRune: one character written as a surrogate-pair escape
	// (\ud83d\ude00, what Python's json.dumps writes for an emoji); limits
	// count characters, so this is the longest a counted character gets.
	verboseRune = 12
	// verboseKeyChar: one character of an ASCII key written as \u0074.
	verboseKeyChar = 6
	// verboseNumber: an integer may be written 5.000…0; jsondec keeps
	// numbers up to 1024 bytes (longer ones are refused).
	verboseNumber = 1024
	// verboseSpace: whitespace allowed around each token (pretty-printed
	// JSON nested a few levels deep uses far less).
	verboseSpace = 64
)

// maxBodyBytes is the size of the largest valid request of this API in its
// most verbose legal encoding: a full actions batch whose every string is
// at its character limit and written as escapes, every number padded, every
// key escaped and every token surrounded by whitespace. (Unknown fields are
// accepted in batches but not counted: a client that pads a full batch
// with them has chosen to be refused.) The test TestLargestValidBatch
// builds that request and expects 200.
func maxBodyBytes() int64 {
	str := func(runes int) int64 { return int64(2 + verboseRune*runes) }
	member := func(key string, value int64) int64 {
		// "key" : value ,  with whitespace around the key, colon and value
		return int64(2+verboseKeyChar*len(key)) + 2 + value + 3*verboseSpace
	}
	action := 2 + 2*verboseSpace +
		member("tickId", str(personas.MaxTickIDLen)) +
		member("seq", verboseNumber) +
		member("toolName", str(personas.MaxToolNameLen)) +
		member("inputHash", str(personas.MaxInputHashLen)) +
		member("result", str(len(personas.ResultError))) +
		member("errorMessage", str(personas.MaxErrorMessageLen)) +
		member("latencyMs", verboseNumber)
	feedback := 2 + 2*verboseSpace +
		member("tickId", str(personas.MaxTickIDLen)) +
		member("module", str(personas.MaxModuleLen)) +
		member("rating", verboseNumber) +
		member("notes", str(personas.MaxNotesLen))
	claim := 2 + 2*verboseSpace +
		member("runnerId", str(personas.MaxRunnerIDLen)) +
		member("limit", verboseNumber) +
		member("leaseSeconds", verboseNumber)
	batch := func(key string, rows int, row int64) int64 {
		// { "key" : [ row , row , … ] }
		return 2 + 2*verboseSpace + member(key, 2+int64(rows)*(row+1+verboseSpace))
	}
	return max(batch("actions", personas.MaxActionsPerBatch, action),
		batch("feedback", personas.MaxFeedbackPerBatch, feedback), claim)
}

func roundUpMiB(n int64) int64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// newServer wires the whole HTTP surface. Every endpoint is listed here.
func newServer(cfg Config, store *personas.Store, logger *slog.Logger) *edge.Server {
	h := &handlers{store: store, logger: logger}
	srv := edge.New(edge.Options{
		Name:           serviceName,
		Logger:         logger,
		BodyLimit:      bodyLimit,
		RequestTimeout: cfg.RequestTimeout,
		// The runner's batches are a few KB; only bodies near the limit
		// (hundreds of full rows) take turns, so memory stays bounded.
		LargeBody: 1 << 20,
		DB:        store.DB().DB,
		Ready:     h.ready,
		OpenAPI:   openAPIDoc,
	})
	h.metrics = newRowMetrics(srv.Registry)
	srv.Registry.MustRegister(newFleetCollector(store, cfg.overdueGrace(), logger), edge.NewPruneCollector(store, logger))
	e := srv.Echo
	api := e.Group("/api/v1/personas/internal",
		edge.ServiceKey(cfg.ServiceKey, cfg.ServiceKeyPrevious),
		edge.Gate(edge.SchemaGate(serviceName, store)),
	)
	api.GET("/due", h.listDue)
	api.POST("/due/claim", h.claim)
	api.POST("/:id/actions", h.postActions)
	api.POST("/:id/feedback", h.postFeedback)
	api.POST("/:id/ticks", h.startTick)
	api.POST("/:id/ticks/:tickId/finish", h.finishTick)
	api.POST("/:id/lease/renew", h.renewLease)
	api.POST("/:id/lease/release", h.releaseLease)
	return srv
}

func (h *handlers) ready(ctx context.Context) error {
	return edge.StoreReady(ctx, serviceName, h.store)
}
