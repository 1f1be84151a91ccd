package main

import (
	"fmt"
	"net/url"
	"strings"
)

// This is the only file that reads the environment: every variable is read
// by a call whose first argument is its literal name, so a manifest (and
// TestConfigManifest) can list them by parsing this file.

// DefaultAPIURL is the gateway on a development machine.
const DefaultAPIURL = "http://localhost:3060"

// config is what personasctl takes from the environment. Flags override it.
type config struct {
	// APIURL is the gateway base URL (MANA_API_URL, the same variable the
	// persona runner uses).
	APIURL string
	// AdminJWT is an admin token from mana-auth (MANA_ADMIN_JWT). Secret:
	// never printed.
	AdminJWT string
	// SeedSecret keys the persona passwords (PERSONA_SEED_SECRET). Secret.
	SeedSecret string
	// ServiceKey is the internal API's key for `simulate`
	// (MANA_SERVICE_KEY, the runner's variable). Secret: never printed.
	ServiceKey string
	// NodeEnv is the deployment environment (NODE_ENV); "production"
	// forbids the development seed secret.
	NodeEnv string
}

// loadConfig reads the environment through getenv (os.Getenv in main, a map
// in tests).
func loadConfig(getenv func(string) string) config {
	return config{
		APIURL:     strings.TrimSpace(getenv("MANA_API_URL")),
		AdminJWT:   strings.TrimSpace(getenv("MANA_ADMIN_JWT")),
		SeedSecret: getenv("PERSONA_SEED_SECRET"),
		ServiceKey: strings.TrimSpace(getenv("MANA_SERVICE_KEY")),
		NodeEnv:    getenv("NODE_ENV"),
	}
}

// String is the masked form, safe to print or log.
func (c config) String() string {
	mask := func(s string) string {
		if s == "" {
			return "(unset)"
		}
		return "(set)"
	}
	return fmt.Sprintf("MANA_API_URL=%s MANA_ADMIN_JWT=%s PERSONA_SEED_SECRET=%s MANA_SERVICE_KEY=%s NODE_ENV=%s",
		c.APIURL, mask(c.AdminJWT), mask(c.SeedSecret), mask(c.ServiceKey), c.NodeEnv)
}

// production reports whether NODE_ENV says production.
func (c config) production() bool {
	return strings.EqualFold(strings.TrimSpace(c.NodeEnv), "production")
}

// checkAPIURL rejects what cannot be a gateway base URL, naming where the
// value came from.
func checkAPIURL(raw, source string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q is not an http(s) URL such as %s", source, raw, DefaultAPIURL)
	}
	if u.User != nil {
		return fmt.Errorf("%s must not carry credentials; pass the admin token with --jwt or MANA_ADMIN_JWT", source)
	}
	return nil
}
