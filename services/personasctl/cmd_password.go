package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/mana/personas/pkg/catalog"
)

func (a *app) cmdPassword(_ context.Context, args []string) int {
	fs := newFlagSet("password", "EMAIL",
		"Print the password of the persona with this email, derived from PERSONA_SEED_SECRET exactly\n"+
			"as the persona runner derives it (the email is used byte for byte). Outside production an\n"+
			"unset secret falls back to the development secret, with a warning on stderr; with\n"+
			"NODE_ENV=production a real secret is required.")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return a.usageError(fs, "expected exactly one EMAIL, got %d arguments", fs.NArg())
	}
	email := fs.Arg(0)
	if email == "" {
		return a.usageError(fs, "EMAIL is empty")
	}
	secret, err := a.seedSecret()
	if err != nil {
		return a.fail("password", "%v", err)
	}
	if email != strings.ToLower(strings.TrimSpace(email)) {
		a.warn("%q is not trimmed lowercase; the password is derived from it exactly as given", email)
	}
	fmt.Fprintln(a.stdout, catalog.Password(secret, email))
	return exitOK
}
