package main

// The admin dashboard (ui/, a TypeScript SPA) is embedded in this binary
// and served at /personas/.
//
// Why embed rather than let the gateway serve static files: the UI and the
// admin API it reads are one release. Embedded, they ship in the same image,
// the same Deployment and the same rolling update, so a browser never gets a
// page from one version talking to an API of another; the gateway stays a
// pure router (it serves no files and needs no volume or image of its own
// content), and the security and cache headers are set and tested in one
// place, here.
//
// Why `ui/dist*`: vite builds into ui/dist, which is not committed. The
// pattern also matches the committed ui/dist-placeholder, so it never
// matches nothing and `go build` works on a machine where the UI was not
// built (a go:embed pattern without a match is a compile error). The
// binary then serves the placeholder's "UI not built — run make build".
// `make build` always builds the UI first, so binaries from make (and
// images) carry the real one.

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed ui/dist*
var uiEmbedded embed.FS

// uiPrefix is where the dashboard lives; the gateway routes it here.
const uiPrefix = "/personas"

// uiCSP allows only this origin's scripts, styles and API: no inline script,
// no framing, no <base> tricks, forms only to ourselves.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// uiFS returns the built UI, or the placeholder when the UI was not built.
func uiFS() (fs.FS, bool) {
	if sub, err := fs.Sub(uiEmbedded, "ui/dist"); err == nil {
		if _, err := fs.Stat(sub, "index.html"); err == nil {
			return sub, true
		}
	}
	sub, err := fs.Sub(uiEmbedded, "ui/dist-placeholder")
	if err != nil {
		panic(err) // the placeholder is committed; a build without it is broken
	}
	return sub, false
}

func uiHeaders(h http.Header) {
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// uiHandler serves index.html for the app's own paths (hash routing, so
// that is only /personas/ itself) and the hashed assets under assets/.
// Hashed assets never change under their name: cached for a year,
// immutable. index.html names the current hashes: no-cache, so a new
// release is picked up on the next load.
func uiHandler(files fs.FS) echo.HandlerFunc {
	return func(c echo.Context) error {
		w, r := c.Response(), c.Request()
		uiHeaders(w.Header())
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return c.String(http.StatusMethodNotAllowed, "method not allowed\n")
		}
		name := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(r.URL.Path, uiPrefix)), "/")
		if name == "" || name == "index.html" {
			name = "index.html"
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			w.Header().Set("Cache-Control", "no-store")
			return c.String(http.StatusNotFound, "not found\n")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
		return nil
	}
}

// registerUI adds the dashboard's routes. The server strips trailing
// slashes before routing, so /personas/ arrives as /personas.
func registerUI(e *echo.Echo) {
	files, _ := uiFS()
	h := uiHandler(files)
	e.GET(uiPrefix, h)
	e.HEAD(uiPrefix, h)
	e.GET(uiPrefix+"/*", h)
	e.HEAD(uiPrefix+"/*", h)
}
