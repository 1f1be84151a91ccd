package edge

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IsProduction reports whether NODE_ENV (the platform's production switch)
// says production.
func IsProduction(nodeEnv string) bool {
	return strings.EqualFold(strings.TrimSpace(nodeEnv), "production")
}

// Mask shows that a secret is set without showing it.
func Mask(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return fmt.Sprintf("(set, %d chars)", len(secret))
}

// IntVar parses an integer setting named name; empty means def.
func IntVar(v, name string, def, lo, hi int) (int, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return def, fmt.Errorf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// DurationVar parses a Go duration setting ("90s", "5m", "2h") named
// name; empty means def.
func DurationVar(v, name string, def, lo, hi time.Duration) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return def, fmt.Errorf("%s=%q: want a Go duration from %s to %s (such as 90s, 5m, 2h)", name, v, lo, hi)
	}
	return d, nil
}

// BoolVar parses a boolean setting named name; empty means def.
func BoolVar(v, name string, def bool) (bool, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return def, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// RedactDSN shows a database URL without its password.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(set, not a URL)"
	}
	return u.Redacted()
}

// HostVar parses a listen address setting named name (LISTEN_HOST): empty
// means every interface; otherwise an IP address or "localhost".
func HostVar(v, name string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "localhost" || net.ParseIP(v) != nil {
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: want an IP address (127.0.0.1, ::1, 0.0.0.0), localhost, or empty for every interface", name, v)
}
