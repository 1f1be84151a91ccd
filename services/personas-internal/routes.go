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

// bodyLimit bounds request bodies. The largest valid batch is 500 actions
// whose every text field is at its limit, in 4-byte UTF-8 or \u escapes:
// about 14 MB. The gateway's client_max_body_size matches it. Memory does not
// grow with it: bodies are decoded as a stream.
const bodyLimit = 16 << 20

// newServer wires the whole HTTP surface. Every endpoint is listed here.
func newServer(cfg Config, store *personas.Store, logger *slog.Logger) *edge.Server {
	h := &handlers{store: store, logger: logger}
	srv := edge.New(edge.Options{
		Name:      serviceName,
		Logger:    logger,
		BodyLimit: bodyLimit,
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
