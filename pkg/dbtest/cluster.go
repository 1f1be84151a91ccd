package dbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a PostgreSQL server of one test's own: initdb'd into a
// temporary directory, listening on 127.0.0.1 on a free port (and on a unix
// socket inside that directory), trust authentication, fsync off. A test
// may stop, restart or crash it at will — which it must never do to the
// shared server of ServerURL, where every other test and checkout keeps its
// databases.
//
// The server is stopped and its directory removed when the test ends,
// whether it passed or not. A test binary killed before its cleanups ran
// (a -timeout panic, a SIGKILL) leaves its server behind; the next
// PrivateCluster of any test binary stops it and removes its directory.
type Cluster struct {
	bin  string // directory holding initdb and pg_ctl
	base string // the temporary directory: data/, sock/, server.log, owner.pid
	port int
	// runAs is the OS user the server runs as: initdb and postgres refuse
	// to run as root, so as root they run as "postgres". Nil: ourselves.
	runAs *osUser

	mu      sync.Mutex
	running bool
}

type osUser struct {
	name, home string
	uid, gid   uint32
}

// clusterPrefix names the temporary directories of private clusters (in
// os.TempDir, see tempRoot), which is how stale ones are found.
const clusterPrefix = "dbtest-pg-"

// cmdTimeout bounds one initdb or pg_ctl run (pg_ctl's own -t is shorter).
const cmdTimeout = 2 * time.Minute

// PrivateCluster initialises and starts a PostgreSQL server for t alone.
// It fails t (never skips) when the PostgreSQL server binaries are not
// installed, saying how to install them.
func PrivateCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBinDir()
	if err != nil {
		t.Fatalf("dbtest: %v\n"+
			"  A private cluster needs the PostgreSQL server binaries (initdb, pg_ctl). Install them with:\n"+
			"    sudo apt-get install -y postgresql-15\n"+
			"  or set PG_BINDIR to the directory that holds initdb and pg_ctl.", err)
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := lookupUser("postgres")
		if err != nil {
			t.Fatalf("dbtest: running as root, and initdb refuses to: it runs as the OS user postgres, which is missing (%v).\n"+
				"  Installing PostgreSQL creates it: sudo apt-get install -y postgresql-15", err)
		}
		c.runAs = u
	}
	root := c.tempRoot()
	reapStale(c, root)

	base, err := os.MkdirTemp(root, clusterPrefix+"*")
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	c.base = base
	// Registered before anything can fail, so a half-made cluster is
	// removed too.
	t.Cleanup(func() { c.cleanup(t) })
	if err := os.WriteFile(filepath.Join(base, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if err := os.Mkdir(c.sockDir(), 0o700); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if c.runAs != nil {
		for _, p := range []string{base, c.sockDir()} {
			if err := os.Chown(p, int(c.runAs.uid), int(c.runAs.gid)); err != nil {
				t.Fatalf("dbtest: %v", err)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// --no-sync and fsync=off: the cluster lives as long as one test, and
	// a crash of the machine losing it is no loss.
	if out, err := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("dbtest: initdb: %v\n%s", err, out)
	}
	conf := "\n# dbtest: the per-run settings (port) live in dbtest.conf\ninclude 'dbtest.conf'\n" +
		"listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = '" + c.sockDir() + "'\n" +
		// fsync off loses nothing when the server crashes (its writes are
		// in the kernel's cache), only when the machine does. Commits stay
		// synchronous, so what a commit acknowledged survives an immediate
		// shutdown: tests of crashes rely on it.
		"fsync = off\n" +
		"max_connections = 50\nshared_buffers = 32MB\n"
	if err := appendFile(filepath.Join(c.dataDir(), "postgresql.conf"), conf); err != nil {
		t.Fatalf("dbtest: %v", err)
	}

	// The free port is found by binding it and letting it go, so another
	// process may take it before the server binds it: try a few.
	for attempt := 1; ; attempt++ {
		c.port, err = freePort()
		if err == nil {
			err = c.writeFile(filepath.Join(c.dataDir(), "dbtest.conf"), fmt.Sprintf("port = %d\n", c.port))
		}
		if err == nil {
			err = c.start(ctx)
		}
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(c.logTail(), "could not bind") {
			t.Fatalf("dbtest: starting the private cluster: %v\n%s", err, c.logTail())
		}
	}
	if err := c.ping(ctx); err != nil {
		t.Fatalf("dbtest: the private cluster does not answer: %v\n%s", err, c.logTail())
	}
	return c
}

// DSN is the superuser's URL of the cluster's postgres database.
func (c *Cluster) DSN() string { return c.URL("postgres") }

// URL is the superuser's URL of the named database of the cluster.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Port is the TCP port the cluster listens on (it keeps it across restarts).
func (c *Cluster) Port() int { return c.port }

// LogFile is the server's log (kept until the test ends).
func (c *Cluster) LogFile() string { return filepath.Join(c.base, "server.log") }

// Restart stops the server in the given shutdown mode and starts it again,
// returning once it accepts connections. mode is pg_ctl's: "smart" (wait
// for every session to end), "fast" (terminate sessions with SQLSTATE
// 57P01, roll back their transactions, checkpoint) or "immediate" (kill
// everything at once, as a crash does; the start replays the WAL).
func (c *Cluster) Restart(t testing.TB, mode string) {
	t.Helper()
	c.Stop(t, mode)
	c.Start(t)
}

// Stop stops the server in the given shutdown mode (see Restart).
func (c *Cluster) Stop(t testing.TB, mode string) {
	t.Helper()
	switch mode {
	case "smart", "fast", "immediate":
	default:
		t.Fatalf("dbtest: unknown shutdown mode %q (smart, fast, immediate)", mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", mode, "-w", "-t", "60"); err != nil {
		t.Fatalf("dbtest: pg_ctl stop -m %s: %v\n%s\n%s", mode, err, out, c.logTail())
	}
	c.running = false
}

// Start starts a stopped server, returning once it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		t.Fatalf("dbtest: %v\n%s", err, c.logTail())
	}
}

func (c *Cluster) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// -l: the server's output goes to the log file, so pg_ctl's own output
	// pipe is not held open by the server it leaves running.
	if out, err := c.command(ctx, "pg_ctl", "start", "-D", c.dataDir(), "-l", c.LogFile(), "-w", "-t", "60", "-s"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	c.running = true
	return nil
}

func (c *Cluster) ping(ctx context.Context) error {
	db, err := sql.Open("pgx", c.DSN())
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return db.PingContext(ctx)
}

// cleanup stops the server if it runs (immediate: nothing in it is worth a
// checkpoint) and removes the directory. On failure the server log's tail
// is logged, as it often says why.
func (c *Cluster) cleanup(t testing.TB) {
	if t.Failed() {
		if tail := c.logTail(); tail != "" {
			t.Logf("dbtest: private cluster log (tail):\n%s", tail)
		}
	}
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		if out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "immediate", "-w", "-t", "30"); err != nil {
			t.Errorf("dbtest: stopping the private cluster: %v\n%s", err, out)
			killPostmaster(c.dataDir())
		}
	}
	if err := os.RemoveAll(c.base); err != nil {
		t.Errorf("dbtest: removing the private cluster: %v", err)
	}
}

// tempRoot is where cluster directories go: os.TempDir, unless the server
// runs as another user who could not reach it (a TMPDIR in root's home).
func (c *Cluster) tempRoot() string {
	root := os.TempDir()
	if c.runAs == nil {
		return root
	}
	if st, err := os.Stat(root); err == nil && st.Mode().Perm()&0o001 != 0 {
		return root
	}
	return "/tmp"
}

func (c *Cluster) dataDir() string { return filepath.Join(c.base, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.base, "sock") }

// command runs one of the PostgreSQL programs as the cluster's OS user,
// from the cluster's directory (the user may not be allowed into ours).
func (c *Cluster) command(ctx context.Context, program string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, program), args...) //nolint:gosec // G204: initdb or pg_ctl from the PostgreSQL installation, arguments of our own
	if c.base != "" {
		cmd.Dir = c.base
	}
	// PG* variables of the caller (PGPORT, PGDATA, ...) must not steer
	// pg_ctl; HOME is the server user's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if c.runAs != nil {
		// What `runuser -u postgres --` does, without its PAM session,
		// which costs about 250 ms a call here and would count in every
		// restart a test measures.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: c.runAs.uid, Gid: c.runAs.gid, Groups: []uint32{},
		}}
		cmd.Env = append(cmd.Env, "HOME="+c.runAs.home, "USER="+c.runAs.name, "LOGNAME="+c.runAs.name)
	} else if home, ok := os.LookupEnv("HOME"); ok {
		cmd.Env = append(cmd.Env, "HOME="+home)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// writeFile writes a file the server reads, owned by its OS user.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if c.runAs != nil {
		return os.Chown(path, int(c.runAs.uid), int(c.runAs.gid))
	}
	return nil
}

// logTail is the end of the server's log.
func (c *Cluster) logTail() string {
	raw, err := os.ReadFile(c.LogFile())
	if err != nil {
		return ""
	}
	const keep = 4000
	if len(raw) > keep {
		raw = raw[len(raw)-keep:]
	}
	return string(raw)
}

// findBinDir returns $PG_BINDIR, or the newest /usr/lib/postgresql/<version>/bin
// (Debian's layout) holding initdb and pg_ctl, or the directory of an
// initdb on PATH.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, p := range []string{"initdb", "pg_ctl"} {
			if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.IsDir() { //nolint:gosec // G703: PG_BINDIR is the developer's own setting
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("PG_BINDIR=%s holds no initdb and pg_ctl", dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and on PATH)")
}

// versionOf reads the major version out of /usr/lib/postgresql/<version>/bin.
func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &osUser{name: name, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid)}, nil
}

// reapStale stops and removes the private clusters whose test binary is
// gone (it was killed before its cleanups ran).
func reapStale(c *Cluster, root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, clusterPrefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // its owner lives
		}
		data := filepath.Join(dir, "data")
		if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
			stale := &Cluster{bin: c.bin, base: dir, runAs: c.runAs}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := stale.command(ctx, "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-t", "30"); err != nil {
				killPostmaster(data)
			}
			cancel()
		}
		_ = os.RemoveAll(dir)
	}
}

// killPostmaster is the last resort when pg_ctl cannot stop a server:
// SIGQUIT (immediate shutdown) to the pid in postmaster.pid.
func killPostmaster(dataDir string) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
	}
}

func freePort() (int, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
