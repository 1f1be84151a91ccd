package edge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// Gate answers 503 with check's message until check passes once; after that
// it lets everything through without checking again. Services use it so
// that a missing or old schema yields a clear 503 naming the fix instead of
// 500s with SQL errors. While closed, check runs at most once a second.
func Gate(check func(ctx context.Context) error) echo.MiddlewareFunc {
	var (
		open    atomic.Bool
		mu      sync.Mutex
		last    time.Time
		lastErr error
	)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if open.Load() {
				return next(c)
			}
			mu.Lock()
			if time.Since(last) >= time.Second {
				ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
				lastErr = check(ctx)
				cancel()
				last = time.Now()
				if lastErr == nil {
					open.Store(true)
				}
			}
			err := lastErr
			mu.Unlock()
			if err != nil {
				return err
			}
			return next(c)
		}
	}
}
