package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mana/personas/pkg/adminclient"
	"github.com/mana/personas/pkg/catalog"
)

// outputFlag is --output text|json.
type outputFlag struct{ value string }

func addOutputFlag(fs *flagSet) *outputFlag {
	o := &outputFlag{}
	fs.StringVar(&o.value, "output", "text", "output format: text (for people) or json (for scripts; progress goes to stderr)")
	return o
}

func (o *outputFlag) check() error {
	if o.value != "text" && o.value != "json" {
		return fmt.Errorf("--output must be text or json, not %q", o.value)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.value == "json" }

// apiFlags are the flags of every command that calls the admin API.
type apiFlags struct {
	api, legacyAuth, jwt string
}

func addAPIFlags(fs *flagSet) *apiFlags {
	f := &apiFlags{}
	fs.StringVar(&f.api, "api", "", "gateway base URL (default $MANA_API_URL, else "+DefaultAPIURL+")")
	fs.StringVar(&f.legacyAuth, "auth", "", "deprecated alias of --api")
	fs.StringVar(&f.jwt, "jwt", "", "admin JWT from mana-auth (default $MANA_ADMIN_JWT; prefer the variable, flags show up in process lists)")
	return f
}

// resolveAPI picks the base URL: --api, else the deprecated --auth (with a
// warning), else MANA_API_URL, else the default. usage is true for errors in
// what the operator typed.
func (a *app) resolveAPI(fs *flagSet, f *apiFlags) (apiURL string, usage bool, err error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["auth"] {
		a.warn("--auth is deprecated and will be removed; use --api")
	}
	switch {
	case set["api"] && set["auth"] && f.api != f.legacyAuth:
		return "", true, fmt.Errorf("--api=%s and --auth=%s disagree; pass only --api", f.api, f.legacyAuth)
	case set["api"]:
		return f.api, true, checkAPIURL(f.api, "--api")
	case set["auth"]:
		return f.legacyAuth, true, checkAPIURL(f.legacyAuth, "--auth")
	case a.cfg.APIURL != "":
		return a.cfg.APIURL, false, checkAPIURL(a.cfg.APIURL, "MANA_API_URL")
	default:
		return DefaultAPIURL, false, nil
	}
}

// errNoToken explains how to get an admin token.
var errNoToken = errors.New("no admin token: set MANA_ADMIN_JWT (or pass --jwt) to an admin JWT issued by mana-auth; " +
	"log in as an admin and use the accessToken of the login answer (`make dev` prints one)")

func (a *app) token(f *apiFlags) (string, error) {
	if t := strings.TrimSpace(f.jwt); t != "" {
		return t, nil
	}
	if a.cfg.AdminJWT != "" {
		return a.cfg.AdminJWT, nil
	}
	return "", errNoToken
}

// client builds the admin client for a command. The returned code is the exit
// code to stop with when the client cannot be built.
func (a *app) client(fs *flagSet, f *apiFlags) (*adminclient.Client, string, int) {
	apiURL, usage, err := a.resolveAPI(fs, f)
	if err != nil {
		if usage {
			return nil, "", a.usageError(fs, "%v", err)
		}
		return nil, "", a.fail(fs.Name(), "%v", err)
	}
	tok, err := a.token(f)
	if err != nil {
		return nil, "", a.fail(fs.Name(), "%v", err)
	}
	c, err := adminclient.New(apiURL, tok, adminclient.WithUserAgent("personasctl"))
	if err != nil {
		return nil, "", a.fail(fs.Name(), "%v", err)
	}
	return c, apiURL, exitOK
}

// loadCatalog decodes the catalog at path, or the built-in one when path is
// empty. It does not validate: callers decide what a problem means for them.
func loadCatalog(path string) (*catalog.Catalog, string, error) {
	data, name := builtinCatalog, builtinCatalogName
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, path, fmt.Errorf("read catalog: %w", err)
		}
		name = path
	}
	c, err := catalog.Decode(data)
	if err != nil {
		return nil, name, fmt.Errorf("%s: %w", name, err)
	}
	return c, name, nil
}

func addCatalogFlag(fs *flagSet) *string {
	return fs.String("catalog", "", "catalog file (default: the catalog built into this binary, a copy of services/personasctl/catalog/personas.json)")
}

// seedSecret applies the production rule of catalog.SeedSecret and warns
// when the development secret is in use.
func (a *app) seedSecret() (string, error) {
	secret, dev, err := catalog.SeedSecret(a.cfg.NodeEnv, a.cfg.SeedSecret)
	if err != nil {
		return "", fmt.Errorf("refusing to derive persona passwords: %w", err)
	}
	if dev {
		a.warn("PERSONA_SEED_SECRET is not set: using the public development secret (never in production)")
	}
	return secret, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON output: %w", err)
	}
	return nil
}

// problemJSON is a catalog problem in JSON output.
type problemJSON struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func problemsJSON(probs []catalog.Problem) []problemJSON {
	out := make([]problemJSON, 0, len(probs))
	for _, p := range probs {
		out = append(out, problemJSON{Path: p.Path, Message: p.Message})
	}
	return out
}

// describeErr shortens a client error for a one-line report.
func describeErr(err error) string {
	return strings.TrimPrefix(err.Error(), "adminclient: ")
}

// progress renders "[ 3/10]" with the index padded to the total's width.
func progress(i, n int) string {
	w := len(fmt.Sprint(n))
	return fmt.Sprintf("[%*d/%d]", w, i, n)
}
