package main

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"testing/fstest"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/edge"
)

// uiResp is what the UI tests look at: the body is read and closed.
type uiResp struct {
	StatusCode int
	Header     http.Header
}

func uiGet(t *testing.T, url string) (uiResp, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return uiResp{StatusCode: resp.StatusCode, Header: resp.Header}, string(b)
}

func requireSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	require.Equal(t, uiCSP, h.Get("Content-Security-Policy"))
	require.NotContains(t, h.Get("Content-Security-Policy"), "unsafe-inline")
	require.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
}

// TestUIServing runs the UI routes on the service's real edge (trailing
// slashes stripped, as in production) with the files that are embedded:
// the built UI or the placeholder, whichever this checkout has.
func TestUIServing(t *testing.T) {
	srv := edge.New(edge.Options{Name: "ui-test"})
	registerUI(srv.Echo)
	ts := httptest.NewServer(srv.Echo)
	defer ts.Close()
	files, built := uiFS()

	for _, p := range []string{"/personas/", "/personas", "/personas/index.html"} {
		resp, body := uiGet(t, ts.URL+p)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/html", p)
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), p)
		requireSecurityHeaders(t, resp.Header)
		require.NotRegexp(t, `<script(?:\s[^>]*)?>\s*[^<\s]`, body, "no inline script")
	}

	resp, _ := uiGet(t, ts.URL+"/personas/assets/nope-123.js")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	requireSecurityHeaders(t, resp.Header)

	resp, _ = uiGet(t, ts.URL+"/personas/../api/v1/personas/admin")
	require.NotEqual(t, http.StatusOK, resp.StatusCode, "no escape from the UI's files")

	if !built {
		t.Log("UI not built (placeholder embedded): asset checks covered by TestUIHandlerAssets only")
		return
	}
	index, err := fs.ReadFile(files, "index.html")
	require.NoError(t, err)
	m := regexp.MustCompile(`/personas/(assets/[^"]+\.js)`).FindStringSubmatch(string(index))
	require.NotNil(t, m, "index.html names a hashed script")
	resp, _ = uiGet(t, ts.URL+"/personas/"+m[1])
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
	require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	requireSecurityHeaders(t, resp.Header)
}

// TestUIHandlerAssets checks the handler on a fixed file set, so the cache
// rules are tested whether or not this checkout built the UI.
func TestUIHandlerAssets(t *testing.T) {
	files := fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><title>x</title>")},
		"assets/app-ab12.js":  {Data: []byte("console.log(1)")},
		"assets/app-ab12.css": {Data: []byte("body{}")},
	}
	e := echo.New()
	e.GET(uiPrefix+"/*", uiHandler(files))
	e.POST(uiPrefix+"/*", uiHandler(files))
	ts := httptest.NewServer(e)
	defer ts.Close()

	resp, body := uiGet(t, ts.URL+"/personas/assets/app-ab12.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "console.log(1)", body)
	require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
	requireSecurityHeaders(t, resp.Header)

	resp, _ = uiGet(t, ts.URL+"/personas/assets/app-ab12.css")
	require.Contains(t, resp.Header.Get("Content-Type"), "text/css")

	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/personas/index.html", nil)
	require.NoError(t, err)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = r.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
}

func TestUIPlaceholderIsEmbedded(t *testing.T) {
	b, err := fs.ReadFile(uiEmbedded, "ui/dist-placeholder/index.html")
	require.NoError(t, err)
	require.Contains(t, string(b), "UI not built")
}
