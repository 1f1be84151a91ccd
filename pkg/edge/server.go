package edge

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/labstack/echo/v4/middleware"
	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/reqid"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures New.
type Options struct {
	// Name of the service, as logged and as the "service" metric label.
	Name   string
	Logger *slog.Logger
	// BodyLimit bounds request bodies in bytes (default 1 MiB).
	BodyLimit int64
	// RequestTimeout bounds each request's context (default RequestTimeout,
	// 15 s; see timeouts.go for how it nests with the server's timeouts).
	RequestTimeout time.Duration
	// Ready answers /readyz: nil means ready, an error says why not.
	Ready func(ctx context.Context) error
	// Registry receives the HTTP metrics and is served on /metrics. A new
	// one (with Go and process collectors) when nil.
	Registry *prometheus.Registry
	// OpenAPI, when set, is served at /openapi.yaml.
	OpenAPI []byte
	// LargeBody, when positive, serialises requests whose body is larger
	// (or of unknown length): one at a time is decoded and stored, the
	// others wait within their deadline. Decoding is a stream, but storing
	// a batch holds it several times over (rows, their JSON, the driver's
	// buffer), so a few concurrent batches near the body limit would take
	// hundreds of MB; small bodies, the runner's everyday batches, never wait.
	LargeBody int64
	// DB, when set, adds the connection pool's statistics to the metrics
	// (go_sql_*{db_name="personas"}).
	DB *sql.DB
}

// Server is an echo instance wired with the shared middleware.
type Server struct {
	Echo     *echo.Echo
	Registry *prometheus.Registry
	logger   *slog.Logger
}

const (
	ctxKeyRequestID = "request_id"
	ctxKeyError     = "error"
	headerRequestID = "X-Request-Id"
)

// New returns a server with /healthz, /readyz and /metrics registered and
// the shared middleware installed. Register routes on s.Echo.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = 1 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = RequestTimeout
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if o.DB != nil {
		o.Registry.MustRegister(collectors.NewDBStatsCollector(o.DB, "personas"))
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(o.Logger)
	e.JSONSerializer = jsonSerializer{}

	m := newHTTPMetrics(o.Registry)
	// Paths are matched with and without a trailing slash (/due/ is /due),
	// as the platform's servers do.
	e.Pre(middleware.RemoveTrailingSlash())
	e.Use(requestID, accessLog(o.Logger, m), recoverPanics(o.Logger), checkParams, bound(o.BodyLimit, o.RequestTimeout))
	if o.LargeBody > 0 {
		e.Use(oneLargeBody(o.LargeBody))
	}

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if o.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
			defer cancel()
			if err := o.Ready(ctx); err != nil {
				msg := err.Error()
				if e := errs.As(err); e != nil && e.Message != "" {
					msg = e.Message
				}
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "Service Unavailable", "message": msg})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{})))
	if o.OpenAPI != nil {
		e.GET("/openapi.yaml", func(c echo.Context) error {
			return c.Blob(http.StatusOK, "application/yaml", o.OpenAPI)
		})
	}
	return &Server{Echo: e, Registry: o.Registry, logger: o.Logger}
}

// requestID honours a well-formed X-Request-Id and makes one otherwise. The
// id is echoed in the response and carried in the request's context
// (pkg/reqid), so every log line written with that context, the HTTP
// clients' included, names it, and calls to mana-auth forward it.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxKeyRequestID, id)
		c.Response().Header().Set(headerRequestID, id)
		c.SetRequest(c.Request().WithContext(reqid.With(c.Request().Context(), id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		// The gateway passes the same set on (deploy/gateway): ids stay
		// correlatable from nginx's log to ours.
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:@+=/", r)
		if !ok {
			return false
		}
	}
	return true
}

// bound caps the body and gives the request a deadline, so a slow client or
// a stuck query cannot hold a connection forever.
//
// The handler's context is detached from the client's cancellation but
// keeps the deadline: a client that gives up does not cancel the statement
// its request is running. Cancelling a query mid-flight makes pgx close the
// connection (it cannot know what the server will still send), so every
// abandoned request would cost a healthy pooled connection and a new
// PostgreSQL backend — under load, when short client timeouts fire most,
// that churn is what turns slowness into failure. Every statement the
// services run is short and bounded by the deadline, and every write is
// idempotent, so finishing it is cheaper than throwing the connection away;
// the answer is then logged as 499 (accessLog), not sent to anyone.
func bound(limit int64, timeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return errs.E(errs.TooLarge, "request body exceeds %d bytes", limit)
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			parent := req.Context()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), timeout)
			defer cancel()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if err != nil && errors.Is(parent.Err(), context.Canceled) && !errors.Is(err, os.ErrDeadlineExceeded) {
				// Whatever failed, it failed because the client went away
				// (its connection closed): that is no fault of ours. A body
				// read that hit the server's read deadline cancels the
				// context too, but that client is slow, not gone: 408.
				return errs.Wrap(err, errs.Canceled, "the client went away")
			}
			return err
		}
	}
}

// oneLargeBody lets one request with a body over threshold bytes (or of
// unknown length) run at a time; the others wait for their turn within
// their deadline (then 503 overloaded).
func oneLargeBody(threshold int64) echo.MiddlewareFunc {
	slot := make(chan struct{}, 1)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Body == nil || req.Body == http.NoBody || (req.ContentLength >= 0 && req.ContentLength <= threshold) {
				return next(c)
			}
			select {
			case slot <- struct{}{}:
			case <-req.Context().Done():
				return req.Context().Err()
			}
			defer func() {
				// Hand the garbage back now, so that queued large batches
				// peak one at a time instead of stacking up.
				debug.FreeOSMemory()
				<-slot
			}()
			// The wait is not the client's slowness: give the body the
			// whole read allowance from now (still inside the request's
			// deadline), so a queued valid batch is not answered 408.
			_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(ReadTimeout))
			return next(c)
		}
	}
}

func recoverPanics(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
						panic(r)
					}
					logger.ErrorContext(c.Request().Context(), "panic in handler", "panic", fmt.Sprint(r))
					err = &errs.Error{Code: errs.Internal}
				}
			}()
			return next(c)
		}
	}
}

func accessLog(logger *slog.Logger, m *httpMetrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			client := c.Request().Context() // cancelled when the client goes away
			err := next(c)
			if err != nil {
				// Render now so the status below is the one sent.
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			answered := 0
			if status != StatusClientClosed && errors.Is(client.Err(), context.Canceled) {
				// The client went away before it could read the answer: the
				// work was done (a write is stored) but nobody is listening.
				// Like nginx, log and count it as 499; keep what was answered.
				answered, status = status, StatusClientClosed
				c.Set(ctxKeyError, errs.E(errs.Canceled, "the client went away before the answer"))
			}
			elapsed := time.Since(start)
			m.requests.WithLabelValues(c.Request().Method, route, strconv.Itoa(status)).Inc()
			m.latency.WithLabelValues(c.Request().Method, route).Observe(elapsed.Seconds())
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				return nil
			}
			// A client that went away (499) is not a failure of ours: INFO.
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			} else if status >= 400 && status != StatusClientClosed {
				level = slog.LevelWarn
			}
			attrs := []slog.Attr{
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.String("path", c.Request().URL.Path),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes_out", c.Response().Size),
				slog.String("remote_ip", c.RealIP()),
			}
			if answered != 0 {
				attrs = append(attrs, slog.Int("answered", answered))
			}
			if app := c.Request().Header.Get("X-App-Id"); app != "" && validRequestID(app) {
				attrs = append(attrs, slog.String("app_id", app))
			}
			if e, ok := c.Get(ctxKeyError).(error); ok && status >= 400 {
				_, re := Render(e)
				m.errors.WithLabelValues(c.Request().Method, route, string(re.Code)).Inc()
				if status < 500 {
					attrs = append(attrs, slog.String("error", e.Error()))
				}
			}
			logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		}
	}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_request_errors_total",
			Help: "Failed requests by method, route and error code (unavailable: the database; overloaded: out of time; canceled: the client went away).",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.errors, m.latency)
	return m
}

// ServeOptions bounds the HTTP server. Zero values take the constants of
// timeouts.go.
type ServeOptions struct {
	ReadHeaderTimeout time.Duration // default ReadHeaderTimeout, 5 s
	ReadTimeout       time.Duration // default ReadTimeout, 10 s
	WriteTimeout      time.Duration // default WriteTimeout, 20 s
	IdleTimeout       time.Duration // default IdleTimeout, 120 s
	ShutdownTimeout   time.Duration // default ShutdownTimeout, 25 s
}

// Serve serves h on ln until ctx is cancelled, then stops accepting
// connections and waits (up to ShutdownTimeout) for requests in flight.
// Requests still running when that budget is spent are cut: that is the
// budget doing its job, so it is logged as a warning naming how many
// connections were closed, and Serve returns nil (a clean exit).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o ServeOptions, logger *slog.Logger) error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, ReadHeaderTimeout)
	def(&o.ReadTimeout, ReadTimeout)
	def(&o.WriteTimeout, WriteTimeout)
	def(&o.IdleTimeout, IdleTimeout)
	def(&o.ShutdownTimeout, ShutdownTimeout)
	conns := &connTracker{state: map[net.Conn]http.ConnState{}}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnState:         conns.track,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", o.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		cut := conns.open()
		_ = srv.Close()
		logger.Warn("shutdown budget spent: cut the requests still running",
			"timeout", o.ShutdownTimeout.String(), "connections_cut", cut)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// connTracker follows each connection's state, so a shutdown that runs out
// of time can say how many requests it cut.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
}

func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(t.state, c)
	default:
		t.state[c] = s
	}
}

// open counts the connections not yet closed.
func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.state)
}
