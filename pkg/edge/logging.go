package edge

import (
	"bufio"
	"context"
	"fmt"
	"github.com/mana/personas/pkg/reqid"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NewLogger returns a JSON logger at level (debug, info, warn, error;
// empty means info). Given a *LogWriter, warnings and errors are flushed as
// they are logged.
func NewLogger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "", "info":
		l = slog.LevelInfo
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", level)
	}
	var h slog.Handler = requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})}
	if lw, ok := w.(*LogWriter); ok {
		h = flushOnWarn{Handler: h, lw: lw}
	}
	return slog.New(h).With("service", service), nil
}

// requestIDHandler adds the request id that a record's context carries
// (pkg/reqid), so a line logged with a request's context names the request
// wherever it was written.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := reqid.From(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// LogWriter buffers log lines so that a busy service does not pay one write
// system call per request for its access log. Buffered lines are written at
// least every interval, at once for warnings and errors (see NewLogger), when
// the buffer fills, and on Close; a crash loses at most one interval of info
// lines.
type LogWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// NewLogWriter buffers writes to w and flushes them every interval.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = l.Flush()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

// Write buffers p (one log line).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close stops the flusher and writes out what is left.
func (l *LogWriter) Close() error {
	close(l.stop)
	<-l.done
	return l.Flush()
}

// flushOnWarn writes a LogWriter out right after every warning or error,
// so those are never delayed.
type flushOnWarn struct {
	slog.Handler
	lw *LogWriter
}

func (h flushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		_ = h.lw.Flush()
	}
	return err
}

func (h flushOnWarn) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushOnWarn{Handler: h.Handler.WithAttrs(attrs), lw: h.lw}
}

func (h flushOnWarn) WithGroup(name string) slog.Handler {
	return flushOnWarn{Handler: h.Handler.WithGroup(name), lw: h.lw}
}
