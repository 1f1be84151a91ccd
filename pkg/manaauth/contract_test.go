package manaauth_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mana/personas/pkg/manaauth/contracttest"
)

// TestContractAgainstURL runs the contract suite against any mana-auth,
// real or stand-in, named by MANA_AUTH_CONTRACT_URL. It is the only test in
// the repository allowed to skip, and only when that variable is unset.
//
//	MANA_AUTH_CONTRACT_URL                 base URL, e.g. http://localhost:3001
//	MANA_AUTH_CONTRACT_ADMIN_EMAIL         an admin account
//	MANA_AUTH_CONTRACT_ADMIN_PASSWORD
//	MANA_AUTH_CONTRACT_SERVICE_KEY         accepted by persona-stamp
//	MANA_AUTH_CONTRACT_ISSUER              optional, default the URL
//	MANA_AUTH_CONTRACT_REQUIRE_ADMIN_ROLE  optional bool: fail (not log) on the role quirk
//	MANA_AUTH_CONTRACT_ORIGIN              optional trusted origin for the browser steps, default the URL's
//	MANA_AUTH_CONTRACT_TOKEN_TTL           optional Go duration, the JWT lifetime (default 15m)
func TestContractAgainstURL(t *testing.T) {
	base := os.Getenv("MANA_AUTH_CONTRACT_URL")
	if base == "" {
		t.Skip("MANA_AUTH_CONTRACT_URL is unset; set it (and the credentials) to check a mana-auth against the contract")
	}
	cfg := contracttest.Config{
		BaseURL:       base,
		AdminEmail:    os.Getenv("MANA_AUTH_CONTRACT_ADMIN_EMAIL"),
		AdminPassword: os.Getenv("MANA_AUTH_CONTRACT_ADMIN_PASSWORD"),
		ServiceKey:    os.Getenv("MANA_AUTH_CONTRACT_SERVICE_KEY"),
		Issuer:        os.Getenv("MANA_AUTH_CONTRACT_ISSUER"),
		Origin:        os.Getenv("MANA_AUTH_CONTRACT_ORIGIN"),
	}
	if v := os.Getenv("MANA_AUTH_CONTRACT_TOKEN_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MANA_AUTH_CONTRACT_TOKEN_TTL=%q is not a positive Go duration", v)
		}
		cfg.TokenTTL = d
	}
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" || cfg.ServiceKey == "" {
		t.Fatal("MANA_AUTH_CONTRACT_URL is set: MANA_AUTH_CONTRACT_ADMIN_EMAIL, MANA_AUTH_CONTRACT_ADMIN_PASSWORD and MANA_AUTH_CONTRACT_SERVICE_KEY are required too")
	}
	if v := os.Getenv("MANA_AUTH_CONTRACT_REQUIRE_ADMIN_ROLE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			t.Fatalf("MANA_AUTH_CONTRACT_REQUIRE_ADMIN_ROLE=%q is not a boolean", v)
		}
		cfg.RequireAdminRole = b
	}
	contracttest.RunConfig(t, cfg)
}
