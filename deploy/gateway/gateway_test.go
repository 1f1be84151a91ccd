package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nginxInstallHint is what a developer or CI needs when nginx is missing. The
// gateway is real nginx in every environment, so these tests never skip.
const nginxInstallHint = "nginx not found in PATH or /usr/sbin: the gateway tests run real nginx. " +
	"Install Debian's package: apt-get update && apt-get install -y nginx"

// nginxPath finds the nginx binary; Debian installs it in /usr/sbin, which a
// non-root PATH often lacks.
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	require.FailNow(t, nginxInstallHint)
	return ""
}

// renderScript is deploy/gateway/render.sh; tests run from this directory.
func renderScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("render.sh")
	require.NoError(t, err)
	return p
}

// render runs render.sh with env (on top of a minimal environment) into a new
// prefix directory and returns the prefix and the script's combined output.
func render(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	prefix := t.TempDir()
	cmd := exec.Command("sh", append(append([]string{renderScript(t)}, args...), prefix)...)
	cmd.Env = scriptEnv(env)
	out, err := cmd.CombinedOutput()
	return prefix, string(out), err
}

func scriptEnv(env map[string]string) []string {
	list := []string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/sbin"}
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	return list
}

func TestRenderedConfigPassesNginxTest(t *testing.T) {
	t.Parallel()
	nginx := nginxPath(t)

	tests := []struct {
		name string
		env  map[string]string
	}{
		{name: "Defaults", env: nil},
		{name: "AllowList", env: map[string]string{"GATEWAY_INTERNAL_ALLOW": "10.0.0.0/8, 192.168.0.0/16 127.0.0.1,::1"}},
		{name: "LoopbackOnly", env: map[string]string{"GATEWAY_LISTEN_HOST": "127.0.0.1"}},
		{name: "LoopbackV6", env: map[string]string{"GATEWAY_LISTEN_HOST": "::1"}},
		{name: "KubernetesLike", env: map[string]string{
			"GATEWAY_PORT":                 "8080",
			"PERSONAS_INTERNAL_UPSTREAM":   "localhost:3061",
			"PERSONAS_ADMIN_UPSTREAM":      "[::1]:3062",
			"MANA_AUTH_UPSTREAM":           "127.0.0.2:3001",
			"GATEWAY_WORKER_PROCESSES":     "2",
			"GATEWAY_ACCESS_LOG":           "logs/access.log",
			"GATEWAY_CLIENT_MAX_BODY_SIZE": "512k",
			"GATEWAY_PROXY_TIMEOUT":        "90s",
		}},
		{name: "AccessLogDropped", env: map[string]string{"GATEWAY_ACCESS_LOG": "/dev/null", "GATEWAY_ERROR_LOG_LEVEL": "info"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix, out, err := render(t, tc.env)
			require.NoError(t, err, out)
			conf := filepath.Join(prefix, "nginx.conf")
			require.Equal(t, conf, strings.TrimSpace(out), "render.sh prints the rendered file's path")
			require.NoError(t, os.MkdirAll(filepath.Join(prefix, "logs"), 0o755))

			body, err := os.ReadFile(conf)
			require.NoError(t, err)
			require.NotRegexp(t, `(?m)^[^#]*\$\{[A-Z]`, string(body), "no placeholder left")

			cmd := exec.Command(nginx, "-t", "-e", "stderr", "-p", prefix+"/", "-c", conf)
			out2, err := cmd.CombinedOutput()
			require.NoError(t, err, "nginx -t:\n%s\nconfig:\n%s", out2, body)
			require.Contains(t, string(out2), "test is successful")
		})
	}
}

func TestRenderRejectsUnsafeValues(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "DirectiveInUpstream", env: map[string]string{"PERSONAS_INTERNAL_UPSTREAM": "127.0.0.1:3061; include /etc/passwd"}, want: "PERSONAS_INTERNAL_UPSTREAM"},
		{name: "UpstreamWithoutPort", env: map[string]string{"MANA_AUTH_UPSTREAM": "mana-auth"}, want: "MANA_AUTH_UPSTREAM"},
		{name: "PortNotNumeric", env: map[string]string{"GATEWAY_PORT": "80 default_server"}, want: "GATEWAY_PORT"},
		{name: "ListenHostWithDirective", env: map[string]string{"GATEWAY_LISTEN_HOST": "127.0.0.1:80; include /etc/passwd"}, want: "GATEWAY_LISTEN_HOST"},
		{name: "ListenHostName", env: map[string]string{"GATEWAY_LISTEN_HOST": "localhost"}, want: "GATEWAY_LISTEN_HOST"},
		{name: "AllowEntryWithDirective", env: map[string]string{"GATEWAY_INTERNAL_ALLOW": "10.0.0.0/8;deny"}, want: "GATEWAY_INTERNAL_ALLOW"},
		{name: "AllowEntryHostname", env: map[string]string{"GATEWAY_INTERNAL_ALLOW": "runner.local"}, want: "GATEWAY_INTERNAL_ALLOW"},
		{name: "DaemonBogus", env: map[string]string{"GATEWAY_DAEMON": "maybe"}, want: "GATEWAY_DAEMON"},
		{name: "AccessLogQuote", env: map[string]string{"GATEWAY_ACCESS_LOG": "/tmp/x' gateway_json; #"}, want: "GATEWAY_ACCESS_LOG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix, out, err := render(t, tc.env)
			require.Error(t, err)
			require.Contains(t, out, tc.want)
			require.NoFileExists(t, filepath.Join(prefix, "nginx.conf"))
		})
	}
}

func TestRenderAllowRules(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		allow string
		want  []string
	}{
		{name: "EmptyAllowsAll", allow: "", want: []string{"allow all;"}},
		{name: "ListDeniesTheRest", allow: "10.0.0.0/8,172.16.0.0/12", want: []string{"allow 10.0.0.0/8;", "allow 172.16.0.0/12;", "deny all;"}},
		{name: "SpacesAndIPv6", allow: " fd00::/8  127.0.0.1 ", want: []string{"allow fd00::/8;", "allow 127.0.0.1;", "deny all;"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix, out, err := render(t, map[string]string{"GATEWAY_INTERNAL_ALLOW": tc.allow})
			require.NoError(t, err, out)
			body, err := os.ReadFile(filepath.Join(prefix, "nginx.conf"))
			require.NoError(t, err)
			block := regexp.MustCompile(`(?s)location /api/v1/personas/internal/ \{(.*?)proxy_pass`).FindStringSubmatch(string(body))
			require.Len(t, block, 2, "internal location block")
			var got []string
			for _, line := range strings.Split(block[1], "\n") {
				if line = strings.TrimSpace(line); line != "" {
					got = append(got, line)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// echo is what the test backends answer: who answered and what they saw.
type echo struct {
	Backend        string `json:"backend"`
	Method         string `json:"method"`
	URI            string `json:"uri"`
	Host           string `json:"host"`
	RequestID      string `json:"requestId"`
	ForwardedFor   string `json:"forwardedFor"`
	ForwardedProto string `json:"forwardedProto"`
	ForwardedHost  string `json:"forwardedHost"`
	BodyLen        int    `json:"bodyLen"`
}

// backend starts an httptest server that echoes the request. It also sets its
// own X-Request-Id, which the gateway must hide, and answers a path ending in
// /missing with a 404 of its own, which the gateway must pass through.
func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "set-by-upstream")
		if strings.HasSuffix(r.URL.Path, "/missing") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"Persona not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(echo{
			Backend:        name,
			Method:         r.Method,
			URI:            r.RequestURI,
			Host:           r.Host,
			RequestID:      r.Header.Get("X-Request-Id"),
			ForwardedFor:   r.Header.Get("X-Forwarded-For"),
			ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
			ForwardedHost:  r.Header.Get("X-Forwarded-Host"),
			BodyLen:        len(body),
		})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// freeAddr returns a loopback address nothing listens on (a dead upstream, or
// a port for nginx to take).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

type gateway struct {
	base   string
	prefix string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startGateway renders the configuration with env and runs nginx in the
// foreground the way every environment does: render.sh --exec.
func startGateway(t *testing.T, env map[string]string) *gateway {
	t.Helper()
	nginx := nginxPath(t)
	addr := freeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)

	env["GATEWAY_PORT"] = port
	env["GATEWAY_LISTEN_HOST"] = "127.0.0.1"
	env["GATEWAY_ACCESS_LOG"] = "access.log"
	env["GATEWAY_WORKER_PROCESSES"] = "1"
	env["NGINX_BIN"] = nginx
	prefix := t.TempDir()
	gw := &gateway{base: "http://" + addr, prefix: prefix, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	gw.cmd = exec.Command("sh", renderScript(t), "--exec", prefix)
	gw.cmd.Env = scriptEnv(env)
	gw.cmd.Stdout = gw.stderr
	gw.cmd.Stderr = gw.stderr
	require.NoError(t, gw.cmd.Start())
	go func() { gw.done <- gw.cmd.Wait() }()
	t.Cleanup(func() { gw.stop(t) })

	// Wait until nginx answers, or report why it did not start.
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-gw.done:
			gw.done <- err
			require.FailNow(t, "nginx exited during start", "%v\n%s", err, gw.stderr)
		default:
		}
		resp, err := http.Get(gw.base + "/gateway/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return gw
			}
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "nginx did not answer in time", "%v\n%s", err, gw.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts nginx down gracefully (SIGQUIT finishes open requests and
// flushes the logs) and waits for it; it is safe to call twice.
func (gw *gateway) stop(t *testing.T) {
	t.Helper()
	if gw.cmd.ProcessState != nil {
		return
	}
	_ = gw.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-gw.done:
		gw.done <- err
	case <-time.After(10 * time.Second):
		_ = gw.cmd.Process.Kill()
		err := <-gw.done
		require.FailNow(t, "nginx did not stop on SIGQUIT", "%v\n%s", err, gw.stderr.String())
	}
}

type response struct {
	status     int
	header     http.Header
	body       []byte
	requestIDs []string
}

func (gw *gateway) do(t *testing.T, method, path string, header map[string]string, body []byte) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, gw.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b, requestIDs: resp.Header.Values("X-Request-Id")}
}

// noRedirects shows a redirect as it is: the gateway should never send one.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

var mintedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestGatewayProxies(t *testing.T) {
	t.Parallel()
	internal := backend(t, "personas-internal")
	admin := backend(t, "personas-admin")
	auth := backend(t, "mana-auth")

	// open: every upstream alive, internal routes open to all.
	open := startGateway(t, map[string]string{
		"PERSONAS_INTERNAL_UPSTREAM":   internal,
		"PERSONAS_ADMIN_UPSTREAM":      admin,
		"MANA_AUTH_UPSTREAM":           auth,
		"GATEWAY_CLIENT_MAX_BODY_SIZE": "64k",
	})
	// locked: internal routes limited to a network the test is not on;
	// mana-auth is dead.
	locked := startGateway(t, map[string]string{
		"PERSONAS_INTERNAL_UPSTREAM": internal,
		"PERSONAS_ADMIN_UPSTREAM":    admin,
		"MANA_AUTH_UPSTREAM":         freeAddr(t),
		"GATEWAY_INTERNAL_ALLOW":     "10.0.0.0/8,fd00::/8",
	})

	// The groups below run in parallel; t.Run returns once all have finished,
	// so the gateway can then be stopped and its log read.
	t.Run("Requests", func(t *testing.T) {
		t.Run("Routes", func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				name    string
				method  string
				path    string
				backend string // empty: the gateway answers 404 itself
			}{
				{name: "InternalDue", method: http.MethodGet, path: "/api/v1/personas/internal/due?limit=5", backend: "personas-internal"},
				{name: "InternalActions", method: http.MethodPost, path: "/api/v1/personas/internal/u1/actions", backend: "personas-internal"},
				{name: "AdminCollection", method: http.MethodGet, path: "/api/v1/personas/admin", backend: "personas-admin"},
				{name: "AdminCreate", method: http.MethodPost, path: "/api/v1/personas/admin", backend: "personas-admin"},
				{name: "AdminDetail", method: http.MethodGet, path: "/api/v1/personas/admin/u1", backend: "personas-admin"},
				{name: "AdminDelete", method: http.MethodDelete, path: "/api/v1/personas/admin/u1", backend: "personas-admin"},
				// Admin dashboard, served by personas-admin under /personas/ only.
				{name: "Dashboard", method: http.MethodGet, path: "/personas/", backend: "personas-admin"},
				{name: "DashboardAsset", method: http.MethodGet, path: "/personas/assets/index-abc.js", backend: "personas-admin"},
				{name: "DashboardLookAlike", method: http.MethodGet, path: "/personasx/"},
				{name: "AuthJWKS", method: http.MethodGet, path: "/api/auth/jwks", backend: "mana-auth"},
				{name: "AuthSignIn", method: http.MethodPost, path: "/api/auth/sign-in/email", backend: "mana-auth"},
				{name: "AuthToken", method: http.MethodGet, path: "/api/auth/token", backend: "mana-auth"},
				{name: "AuthSignOut", method: http.MethodPost, path: "/api/auth/sign-out", backend: "mana-auth"},
				{name: "AuthGetSessionNotRouted", method: http.MethodGet, path: "/api/auth/get-session"},
				// Login and registration are called at mana-auth's own URL.
				{name: "AuthLoginNotRouted", method: http.MethodPost, path: "/api/v1/auth/login"},
				{name: "AuthRegisterNotRouted", method: http.MethodPost, path: "/api/v1/auth/register"},
				{name: "AuthOrganizationsNotRouted", method: http.MethodGet, path: "/api/auth/organization/list"},
				{name: "Root", method: http.MethodGet, path: "/"},
				{name: "Unknown", method: http.MethodGet, path: "/api/v1/todos"},
				{name: "AdminLookAlike", method: http.MethodGet, path: "/api/v1/personas/administrator"},
				{name: "InternalWithoutSlash", method: http.MethodGet, path: "/api/v1/personas/internal"},
				{name: "PersonasRoot", method: http.MethodGet, path: "/api/v1/personas"},
				{name: "AuthWithoutSlash", method: http.MethodGet, path: "/api/v1/auth"},
				{name: "BetterAuthWithoutSlash", method: http.MethodGet, path: "/api/auth"},
				{name: "ManaAuthInternalHidden", method: http.MethodPost, path: "/api/v1/internal/users/u1/persona-stamp"},
				{name: "ManaAuthAdminUsersHidden", method: http.MethodGet, path: "/api/v1/admin/users?search=persona"},
				{name: "ManaAuthAdminUserDataHidden", method: http.MethodDelete, path: "/api/v1/admin/users/u1/data"},
				{name: "TraversalOutOfInternal", method: http.MethodGet, path: "/api/v1/personas/internal/../../internal/users/u1"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					resp := open.do(t, tc.method, tc.path, nil, []byte(`{}`))
					require.Len(t, resp.requestIDs, 1, "exactly one X-Request-Id")
					require.Equal(t, "application/json", strings.Split(resp.header.Get("Content-Type"), ";")[0])
					if tc.backend == "" {
						require.Equal(t, http.StatusNotFound, resp.status, string(resp.body))
						require.JSONEq(t, `{"error":"Not Found"}`, string(resp.body))
						return
					}
					require.Equal(t, http.StatusOK, resp.status, string(resp.body))
					var got echo
					require.NoError(t, json.Unmarshal(resp.body, &got))
					require.Equal(t, tc.backend, got.Backend)
					require.Equal(t, tc.method, got.Method)
					require.Equal(t, tc.path, got.URI, "the path reaches the upstream unchanged")
				})
			}
		})

		t.Run("RequestID", func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				name   string
				sent   string // empty: no header
				minted bool   // the gateway must mint a fresh id
			}{
				{name: "Forwarded", sent: "tick-42.batch-1:abc"},
				{name: "ForwardedUUID", sent: "3f6c2b1e-8f1a-4c55-9d0a-1b2c3d4e5f60"},
				{name: "Created", minted: true},
				{name: "UnsafeReplaced", sent: `x" injected`, minted: true},
				{name: "TooLongReplaced", sent: strings.Repeat("a", 129), minted: true},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					header := map[string]string{}
					if tc.sent != "" {
						header["X-Request-Id"] = tc.sent
					}
					resp := open.do(t, http.MethodGet, "/api/v1/personas/internal/due", header, nil)
					require.Equal(t, http.StatusOK, resp.status)
					var got echo
					require.NoError(t, json.Unmarshal(resp.body, &got))
					require.Equal(t, []string{got.RequestID}, resp.requestIDs,
						"the id the upstream saw comes back, and the upstream's own is hidden")
					if tc.minted {
						require.Regexp(t, mintedID, got.RequestID)
					} else {
						require.Equal(t, tc.sent, got.RequestID)
					}
				})
			}
		})

		t.Run("ForwardedHeaders", func(t *testing.T) {
			t.Parallel()
			resp := open.do(t, http.MethodGet, "/api/v1/personas/admin", map[string]string{"X-Forwarded-For": "203.0.113.7"}, nil)
			require.Equal(t, http.StatusOK, resp.status)
			var got echo
			require.NoError(t, json.Unmarshal(resp.body, &got))
			require.Equal(t, "203.0.113.7, 127.0.0.1", got.ForwardedFor)
			require.Equal(t, "http", got.ForwardedProto)
			require.Equal(t, strings.TrimPrefix(open.base, "http://"), got.ForwardedHost)
			require.Equal(t, got.ForwardedHost, got.Host, "Host is the client's")
		})

		t.Run("UpstreamErrorsPassThrough", func(t *testing.T) {
			t.Parallel()
			resp := open.do(t, http.MethodPost, "/api/v1/personas/internal/missing", nil, []byte(`{}`))
			require.Equal(t, http.StatusNotFound, resp.status)
			require.JSONEq(t, `{"error":"Persona not found"}`, string(resp.body))
		})

		t.Run("BodyLimit", func(t *testing.T) {
			t.Parallel()
			resp := open.do(t, http.MethodPost, "/api/v1/personas/internal/u1/actions", nil, bytes.Repeat([]byte("a"), 60<<10))
			require.Equal(t, http.StatusOK, resp.status)
			var got echo
			require.NoError(t, json.Unmarshal(resp.body, &got))
			require.Equal(t, 60<<10, got.BodyLen)

			resp = open.do(t, http.MethodPost, "/api/v1/personas/internal/u1/actions", nil, bytes.Repeat([]byte("a"), 65<<10))
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
			requireJSONError(t, resp, "Payload Too Large")
		})

		t.Run("InternalAllowList", func(t *testing.T) {
			t.Parallel()
			resp := locked.do(t, http.MethodGet, "/api/v1/personas/internal/due", nil, nil)
			require.Equal(t, http.StatusForbidden, resp.status)
			requireJSONError(t, resp, "Forbidden")

			resp = locked.do(t, http.MethodGet, "/api/v1/personas/admin", nil, nil)
			require.Equal(t, http.StatusOK, resp.status, "the allow list guards the internal routes only")
		})

		t.Run("DeadUpstream", func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/api/auth/sign-in/email", "/api/auth/jwks"} {
				resp := locked.do(t, http.MethodPost, path, map[string]string{"X-Request-Id": "dead-upstream-1"}, []byte(`{}`))
				require.Equal(t, http.StatusBadGateway, resp.status, path)
				requireJSONError(t, resp, "Bad Gateway")
				var body map[string]string
				require.NoError(t, json.Unmarshal(resp.body, &body))
				require.Equal(t, "dead-upstream-1", body["requestId"])
				require.Equal(t, []string{"dead-upstream-1"}, resp.requestIDs)
			}
		})

		t.Run("Health", func(t *testing.T) {
			t.Parallel()
			resp := open.do(t, http.MethodGet, "/gateway/healthz", nil, nil)
			require.Equal(t, http.StatusOK, resp.status)
			require.JSONEq(t, `{"status":"ok"}`, string(resp.body))
		})
	})

	// Make one request with a known id, stop nginx so the log is complete, and
	// read the JSON access log.
	resp := open.do(t, http.MethodGet, "/api/v1/personas/admin/u7", map[string]string{"X-Request-Id": "log-line-check"}, nil)
	require.Equal(t, http.StatusOK, resp.status)
	open.stop(t)
	entry := findLogEntry(t, filepath.Join(open.prefix, "access.log"), "log-line-check")
	require.Equal(t, "GET", entry["method"])
	require.Equal(t, "/api/v1/personas/admin/u7", entry["uri"])
	require.EqualValues(t, 200, entry["status"])
	require.Equal(t, admin, entry["upstream"])
	require.Equal(t, "200", entry["upstreamStatus"])
	for _, key := range []string{"time", "remoteAddr", "durationSec", "upstreamResponseSec", "bytesSent"} {
		require.Contains(t, entry, key)
	}
}

func requireJSONError(t *testing.T, resp response, want string) {
	t.Helper()
	require.Equal(t, "application/json", strings.Split(resp.header.Get("Content-Type"), ";")[0])
	var body map[string]any
	require.NoError(t, json.Unmarshal(resp.body, &body), string(resp.body))
	require.Equal(t, want, body["error"])
}

// findLogEntry parses every line of the access log as JSON (each must be) and
// returns the one with the given request id.
func findLogEntry(t *testing.T, path, requestID string) map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var found map[string]any
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var entry map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &entry), "access log line %d is not JSON: %s", n, sc.Text())
		require.NotEmpty(t, entry["requestId"], "line %d", n)
		if entry["requestId"] == requestID {
			found = entry
		}
	}
	require.NoError(t, sc.Err())
	require.NotNil(t, found, "no access log entry for request id %q", requestID)
	return found
}

// recorder is a fake mana-auth that records the request-target of every
// request it receives, as it arrived on the wire.
type recorder struct {
	mu   sync.Mutex
	uris []string
}

func (rec *recorder) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.uris = append(rec.uris, r.RequestURI)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Backend: "mana-auth", Method: r.Method, URI: r.RequestURI})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (rec *recorder) received() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.uris)
}

// raw sends one request whose request-target is exactly target (no client
// library cleans it up first) and returns the status and body.
func (gw *gateway) raw(t *testing.T, method, target string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(gw.base, "http://"), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", method, target)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "request-target %q", target)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// TestGatewayExposesOnlyExactManaAuthPaths: the gateway forwards to
// mana-auth only the paths it lists, and sends each as its own fixed,
// normalised path, never the client's raw URI. Traversal with "..;/" (which
// servers behind mana-auth's own proxy may resolve), encoded slashes and dots,
// doubled slashes, path parameters and suffixes either normalise to a listed
// path (and arrive as exactly that path) or are a 404 that mana-auth never sees.
func TestGatewayExposesOnlyExactManaAuthPaths(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	gw := startGateway(t, map[string]string{
		"PERSONAS_INTERNAL_UPSTREAM": backend(t, "personas-internal"),
		"PERSONAS_ADMIN_UPSTREAM":    backend(t, "personas-admin"),
		"MANA_AUTH_UPSTREAM":         rec.start(t),
	})
	exposed := []string{"/api/auth/jwks", "/api/auth/sign-in/email", "/api/auth/token", "/api/auth/sign-out"}

	tests := []struct {
		method, target string
		want           string // the request-target mana-auth must receive; empty: it receives nothing
		status         int    // the gateway's own answer when want is empty (default 404)
	}{
		{target: "/api/auth/jwks", want: "/api/auth/jwks"},
		{target: "/api/auth/jwks?x=1", want: "/api/auth/jwks?x=1"},
		{target: "//api//auth//jwks", want: "/api/auth/jwks"},
		{target: "/api/auth/./jwks", want: "/api/auth/jwks"},
		{target: "/api/auth/x/../jwks", want: "/api/auth/jwks"},
		{target: "/api/auth%2Fjwks", want: "/api/auth/jwks"},
		{target: "/api/auth/%6Awks", want: "/api/auth/jwks"},
		{target: "/api/auth/token", want: "/api/auth/token"},
		{target: "/api/auth/get-session"},
		{method: http.MethodPost, target: "/api/auth/sign-in/email", want: "/api/auth/sign-in/email"},
		{method: http.MethodPost, target: "/api/auth/sign-out", want: "/api/auth/sign-out"},

		{target: "/api/auth/jwks/..;/..;/v1/admin/users"},
		{target: "/api/auth/jwks/..;/..;/v1/admin/users?search=persona"},
		{target: "/api/auth/jwks/..%3B/..%3B/v1/admin/users"},
		{target: "/api/auth/jwks/../../v1/admin/users"},
		{target: "/api/auth/jwks%2F..%2F..%2Fv1%2Fadmin%2Fusers"},
		{target: "/api/auth/jwks/%2e%2e/%2e%2e/v1/internal/users/u1/persona-stamp"},
		{target: "/api/auth/jwks\\..\\..\\v1\\admin\\users"},
		{target: "/api/auth/jwks;jsessionid=x"},
		{target: "/api/auth/jwks%3Bx"},
		{target: "/api/auth/jwks/"},
		{target: "/api/auth/jwks/extra"},
		{target: "/api/auth/jwks.json"},
		{target: "/api/auth/jwksx"},
		{target: "/API/AUTH/JWKS"},
		{target: "/api/auth/"},
		{target: "/api/auth"},
		{target: "/api/auth/organization/list"},
		{target: "/api/auth/admin/list-users"},
		{method: http.MethodPost, target: "/api/auth/sign-in/social"},
		{method: http.MethodPost, target: "/api/auth/sign-in/email/../../admin/set-role"},
		{method: http.MethodPost, target: "/api/auth/sign-in/email;x"},
		{target: "/api/auth/token/..;/admin/list-users"},
		{target: "//api/v1//admin/users"},
		{target: "/api/v1/auth/login"},
		{target: "/api/v1/auth/../admin/users"},
		{target: "/api/v1/personas/admin/..%2F..%2F..%2Fauth%2Fadmin%2Flist-users", want: ""},
		// A NUL is refused by nginx while parsing the request line; the
		// answer is still the gateway's JSON (not nginx's HTML 500).
		{target: "/api/auth/jwks%00", status: http.StatusBadRequest},
		{target: "/api/auth/jwks%00/../../v1/admin/users", status: http.StatusBadRequest},
	}
	for _, tc := range tests {
		method := tc.method
		if method == "" {
			method = http.MethodGet
		}
		status, body := gw.raw(t, method, tc.target)
		if tc.want == "" {
			// An admin-API look-alike may reach personas-admin (which answers
			// it itself); it must never reach mana-auth.
			if strings.HasPrefix(tc.target, "/api/v1/personas/") {
				continue
			}
			wantStatus := tc.status
			if wantStatus == 0 {
				wantStatus = http.StatusNotFound
			}
			require.Equal(t, wantStatus, status, "%s %s: %s", method, tc.target, body)
			require.True(t, json.Valid(body), "%s %s: the gateway's own error is JSON: %s", method, tc.target, body)
			continue
		}
		require.Equal(t, http.StatusOK, status, "%s %s: %s", method, tc.target, body)
		var got echo
		require.NoError(t, json.Unmarshal(body, &got), string(body))
		require.Equal(t, "mana-auth", got.Backend, tc.target)
		require.Equal(t, tc.want, got.URI, "%s: mana-auth receives the normalised path", tc.target)
	}

	// Whatever was sent, mana-auth saw only the exposed paths.
	seen := rec.received()
	require.NotEmpty(t, seen)
	for _, uri := range seen {
		path, _, _ := strings.Cut(uri, "?")
		require.Contains(t, exposed, path, "mana-auth received %q", uri)
	}
	wantCount := 0
	for _, tc := range tests {
		if tc.want != "" {
			wantCount++
		}
	}
	require.Len(t, seen, wantCount, "mana-auth received exactly the requests that map to exposed paths: %q", seen)
}
