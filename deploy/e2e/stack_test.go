package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/personas/personastest"
)

const serviceKey = "e2e-service-key-0123456789abcdef"

var programs = []string{"personas-internal", "personas-admin", "mana-auth-dev", "personasctl"}

// binDir holds the programs, built once per test binary exactly as
// `make build` builds them.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repo.Root()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "personas-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		for _, p := range programs {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, p), "./services/"+p)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", p, err, out)
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return binDir
}

func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	require.FailNow(t, "nginx not found: the end-to-end tests run the real gateway. Install it: apt-get install -y nginx")
	return ""
}

// stack is the whole system on free ports: its own database, mana-auth-dev,
// both services, and nginx in front of them rendered from the one gateway
// template.
type stack struct {
	dsn     string
	gateway string // http://127.0.0.1:port
	authURL string
	bin     string
	procs   []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

// handedOut remembers the ports given to stacks of this test binary: the
// kernel may offer a port again once its probe listener is closed, and two
// stacks starting in parallel must never share one.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (s *stack) start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	w := lockedBuffer{mu: p.mu, buf: p.out}
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start(), name)
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func waitReady(t *testing.T, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			require.FailNow(t, p.name+" exited during start", p.output())
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.FailNow(t, p.name+" did not become ready at "+url, p.output())
}

// stackOption changes how startStack starts the stack; without options
// every test gets the same defaults.
type stackOption func(*stackConfig)

type stackConfig struct {
	authEnv []string // extra environment of mana-auth-dev
}

// withJWTTTL makes mana-auth-dev mint JWTs that live d
// (MANA_AUTH_DEV_JWT_TTL), for tests of renewal across a real expiry.
func withJWTTTL(d time.Duration) stackOption {
	return func(c *stackConfig) { c.authEnv = append(c.authEnv, "MANA_AUTH_DEV_JWT_TTL="+d.String()) }
}

func startStack(t *testing.T, opts ...stackOption) *stack {
	t.Helper()
	var cfg stackConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin := binaries(t)
	nginx := nginxPath(t)
	root, err := repo.Root()
	require.NoError(t, err)

	s := &stack{dsn: personastest.NewDSN(t), bin: bin}
	t.Cleanup(func() {
		for i := len(s.procs) - 1; i >= 0; i-- {
			p := s.procs[i]
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			if t.Failed() {
				t.Logf("--- %s output ---\n%s", p.name, p.output())
			}
		}
	})

	authPort, internalPort, adminPort, gwPort := freePort(t), freePort(t), freePort(t), freePort(t)
	s.authURL = "http://127.0.0.1:" + strconv.Itoa(authPort)
	s.gateway = "http://127.0.0.1:" + strconv.Itoa(gwPort)
	common := []string{"DATABASE_URL=" + s.dsn, "MANA_SERVICE_KEY=" + serviceKey, "LOG_LEVEL=warn", "NODE_ENV=development"}

	// The browser reaches mana-auth's session endpoints through the gateway,
	// so its sign-in carries the gateway's Origin: trusted, as in production.
	authEnv := append(append(common, "PORT="+strconv.Itoa(authPort), "MANA_AUTH_DEV_BASE_URL="+s.authURL,
		"MANA_AUTH_DEV_TRUSTED_ORIGINS="+s.gateway), cfg.authEnv...)
	auth := s.start(t, "mana-auth-dev", authEnv, filepath.Join(bin, "mana-auth-dev"))
	waitReady(t, auth, s.authURL+"/healthz")

	internal := s.start(t, "personas-internal", append(common, "PORT="+strconv.Itoa(internalPort), "PERSONAS_AUTO_MIGRATE=false"),
		filepath.Join(bin, "personas-internal"))
	waitReady(t, internal, fmt.Sprintf("http://127.0.0.1:%d/readyz", internalPort))

	admin := s.start(t, "personas-admin", append(common, "PORT="+strconv.Itoa(adminPort), "MANA_AUTH_URL="+s.authURL, "PERSONAS_AUTO_MIGRATE=false"),
		filepath.Join(bin, "personas-admin"))
	waitReady(t, admin, fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort))

	prefix := t.TempDir()
	gw := s.start(t, "gateway", []string{
		"GATEWAY_PORT=" + strconv.Itoa(gwPort),
		fmt.Sprintf("PERSONAS_INTERNAL_UPSTREAM=127.0.0.1:%d", internalPort),
		fmt.Sprintf("PERSONAS_ADMIN_UPSTREAM=127.0.0.1:%d", adminPort),
		fmt.Sprintf("MANA_AUTH_UPSTREAM=127.0.0.1:%d", authPort),
		"GATEWAY_ACCESS_LOG=" + filepath.Join(prefix, "access.log"),
		"GATEWAY_WORKER_PROCESSES=1",
		"NGINX_BIN=" + nginx,
	}, filepath.Join(root, "deploy", "gateway", "render.sh"), "--exec", prefix)
	waitReady(t, gw, s.gateway+"/gateway/healthz")
	return s
}

// ctl runs bin/personasctl against the gateway and returns its exit code
// and output.
func (s *stack) ctl(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, "personasctl"), args...)
	cmd.Env = append(os.Environ(), "MANA_API_URL="+s.gateway, "MANA_ADMIN_JWT="+token, "NODE_ENV=development")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}
