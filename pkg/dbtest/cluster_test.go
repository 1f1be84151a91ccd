package dbtest_test

import (
	"context"
	"database/sql"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/dbtest"
)

// TestPrivateCluster: a cluster of the test's own keeps what was committed
// across a fast and an immediate restart, keeps its port, and is gone —
// server and directory — when its test ends.
func TestPrivateCluster(t *testing.T) {
	t.Parallel()
	var port int
	var logFile string
	t.Run("Lifecycle", func(t *testing.T) {
		began := time.Now()
		c := dbtest.PrivateCluster(t)
		t.Logf("initdb and start: %s", time.Since(began).Round(time.Millisecond))
		port, logFile = c.Port(), c.LogFile()
		require.Contains(t, c.DSN(), "@127.0.0.1:"+strconv.Itoa(port)+"/postgres")
		require.NotEqual(t, 5432, port)

		ctx := context.Background()
		db, err := sql.Open("pgx", c.DSN())
		require.NoError(t, err)
		defer db.Close()
		_, err = db.ExecContext(ctx, `CREATE TABLE kept (n int)`)
		require.NoError(t, err)
		for i, mode := range []string{"fast", "immediate"} {
			_, err = db.ExecContext(ctx, `INSERT INTO kept VALUES ($1)`, i)
			require.NoError(t, err)
			began := time.Now()
			c.Stop(t, mode)
			stopped := time.Since(began)
			c.Start(t)
			t.Logf("-m %s: stop %s, start %s", mode, stopped.Round(time.Millisecond), (time.Since(began) - stopped).Round(time.Millisecond))
			var n int
			// The pool's connection died with the server; database/sql
			// finds out and dials again.
			require.Eventually(t, func() bool {
				return db.QueryRowContext(ctx, `SELECT count(*) FROM kept`).Scan(&n) == nil
			}, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, i+1, n, "a committed row survives -m %s", mode)
		}
		c.Restart(t, "fast")
		require.Equal(t, port, c.Port())
		require.NoError(t, db.PingContext(ctx))
	})
	_, err := os.Stat(logFile)
	require.ErrorIs(t, err, os.ErrNotExist, "the cluster's directory is removed")
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "the server is stopped")
}
