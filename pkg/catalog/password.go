package catalog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// DevSeedSecret is the development default of PERSONA_SEED_SECRET. It is
// public (it is in this repository), so it must never key passwords of
// personas in production.
const DevSeedSecret = "dev-persona-seed-secret-rotate-in-prod" //nolint:gosec // G101: a published development default, refused in production

// PasswordLength is the length of a derived password.
const PasswordLength = 32

// ErrNoProductionSecret is returned by SeedSecret in production when no real
// secret is configured.
var ErrNoProductionSecret = errors.New("NODE_ENV=production but PERSONA_SEED_SECRET is unset, empty or the development default; set the real secret")

// Password derives a persona's password from the seed secret and its email:
// HMAC-SHA256 keyed with secret over the exact bytes of email, standard
// base64, every character outside [A-Za-z0-9] dropped, the first 32 kept.
//
// The persona runner and the platform's browser tests derive the same value,
// so this must stay bit-identical with them: do not normalise the email here.
// (In theory fewer than 32 characters survive the filter; the other
// implementations then return the shorter string too.)
func Password(secret, email string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(email)) // a hash.Hash never returns an error
	encoded := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	out := make([]byte, 0, PasswordLength)
	for i := 0; i < len(encoded) && len(out) < PasswordLength; i++ {
		if b := encoded[i]; b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' {
			out = append(out, b)
		}
	}
	return string(out)
}

// SeedSecret decides which secret keys persona passwords, given the values of
// NODE_ENV and PERSONA_SEED_SECRET. Outside production an unset or blank
// secret falls back to DevSeedSecret (dev reports that). In production that
// fallback, and the development secret itself, are refused with
// ErrNoProductionSecret: a persona password keyed with a public secret is a
// public password.
func SeedSecret(nodeEnv, secret string) (value string, dev bool, err error) {
	blank := strings.TrimSpace(secret) == ""
	if IsProduction(nodeEnv) && (blank || strings.TrimSpace(secret) == DevSeedSecret) {
		return "", false, ErrNoProductionSecret
	}
	if blank {
		return DevSeedSecret, true, nil
	}
	return secret, secret == DevSeedSecret, nil
}

// IsProduction reports whether a NODE_ENV value means production.
func IsProduction(nodeEnv string) bool {
	return strings.EqualFold(strings.TrimSpace(nodeEnv), "production")
}
