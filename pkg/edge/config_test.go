package edge_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/edge"
)

func TestHostVar(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", " ", "127.0.0.1", "::1", "0.0.0.0", "localhost", "10.1.2.3"} {
		_, err := edge.HostVar(ok, "LISTEN_HOST")
		require.NoError(t, err, ok)
	}
	got, err := edge.HostVar(" 127.0.0.1 ", "LISTEN_HOST")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", got)
	for _, bad := range []string{"127.0.0.1:3061", "[::1]", "example.com", "a b"} {
		_, err := edge.HostVar(bad, "LISTEN_HOST")
		require.ErrorContains(t, err, "LISTEN_HOST", bad)
	}
}
