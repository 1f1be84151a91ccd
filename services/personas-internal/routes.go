package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mana/personas/pkg/httpx"
	"github.com/mana/personas/pkg/personas"
)

//go:embed openapi.yaml
var openAPIDoc []byte

// bodyLimit bounds request bodies. The largest valid batch is 500 actions
// whose every text field is at its limit, in 4-byte UTF-8 or \u escapes:
// about 14 MB. The gateway's client_max_body_size matches it.
const bodyLimit = 16 << 20

// newServer wires the whole HTTP surface. Every endpoint is listed here.
func newServer(cfg Config, store *personas.Store, logger *slog.Logger) *httpx.Server {
	h := &handlers{store: store, logger: logger}
	srv := httpx.New(httpx.Options{
		Name:      serviceName,
		Logger:    logger,
		BodyLimit: bodyLimit,
		DB:        store.DB().DB,
		Ready:     h.ready,
		MapError:  mapError,
	})
	h.metrics = newRowMetrics(srv.Registry)
	e := srv.Echo
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", openAPIDoc)
	})

	api := e.Group("/api/v1/personas/internal",
		httpx.ServiceKey(cfg.ServiceKey, cfg.ServiceKeyPrevious),
		httpx.Gate(store.CheckSchema),
	)
	api.GET("/due", h.listDue)
	api.POST("/due/claim", h.claim)
	api.POST("/:id/actions", h.postActions)
	api.POST("/:id/feedback", h.postFeedback)
	return srv
}

func (h *handlers) ready(ctx context.Context) error {
	if err := h.store.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	if err := h.store.CheckSchema(ctx); err != nil {
		return schemaMessage(err)
	}
	return nil
}

func schemaMessage(err error) error {
	return fmt.Errorf("%w: run `%s migrate` (or start with PERSONAS_AUTO_MIGRATE=true)", err, serviceName)
}

// mapError renders the store's errors as the contract's JSON.
func mapError(err error) *httpx.Error {
	var ve *personas.ValidationError
	switch {
	case errors.As(err, &ve):
		return &httpx.Error{Status: http.StatusBadRequest, Code: "ValidationError", Message: ve.Error(), Details: ve.Details}
	case errors.Is(err, personas.ErrNotFound):
		return &httpx.Error{Status: http.StatusNotFound, Code: "Persona not found"}
	case errors.Is(err, personas.ErrSchemaNotReady):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", schemaMessage(err).Error())
	case errors.Is(err, personas.ErrUnavailable):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", "database unavailable; retry")
	case errors.Is(err, personas.ErrRetry):
		return httpx.NewError(http.StatusServiceUnavailable, "Service Unavailable", "transient database conflict; retry")
	case errors.Is(err, personas.ErrConflict):
		return httpx.NewError(http.StatusConflict, "Conflict", "")
	}
	return nil
}

type rowMetrics struct {
	written    *prometheus.CounterVec
	duplicates *prometheus.CounterVec
}

func newRowMetrics(reg prometheus.Registerer) *rowMetrics {
	m := &rowMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_rows_inserted_total", Help: "Rows inserted, by kind (actions, feedback).",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personas_rows_deduplicated_total", Help: "Rows received that were already stored (retries), by kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.written, m.duplicates)
	return m
}
