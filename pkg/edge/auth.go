package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"github.com/mana/personas/pkg/errs"

	"github.com/labstack/echo/v4"
)

// ServiceKey admits requests whose X-Service-Key equals one of keys (empty
// keys are ignored, so an unset previous key admits nothing). Keys are
// compared as SHA-256 digests in constant time, so neither content nor
// length leaks through timing. Passing the current and the previous key
// lets callers rotate without downtime.
func ServiceKey(keys ...string) echo.MiddlewareFunc {
	var digests [][32]byte
	for _, k := range keys {
		if k != "" {
			digests = append(digests, sha256.Sum256([]byte(k)))
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			values := c.Request().Header.Values("X-Service-Key")
			if len(values) == 0 || values[0] == "" {
				return errs.E(errs.Unauthorized, "missing X-Service-Key header")
			}
			if len(values) > 1 {
				// Which one would count is a guess an attacker could exploit.
				return errs.E(errs.Unauthorized, "more than one X-Service-Key header")
			}
			got := values[0]
			d := sha256.Sum256([]byte(got))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match != 1 {
				return errs.E(errs.Unauthorized, "invalid X-Service-Key")
			}
			return next(c)
		}
	}
}
