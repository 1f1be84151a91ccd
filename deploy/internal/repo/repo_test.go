package repo_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
)

func TestEnvRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		source string // "" means no config.go
		want   []string
		err    string
	}{
		{
			name: "FirstLiteralArgumentsOnly",
			source: `package main

import "os"

func load(getenv func(string) string) {
	_ = getenv("PORT")
	_ = envOr("LOG_LEVEL", "INFO")       // "INFO" is a value, not a name
	_ = intVar(getenv("DB_MAX"), "DB_MAX") // the nested call counts
	_ = os.Getenv("NODE_ENV")
	_ = os.Getenv("PORT")                  // duplicates collapse
	_ = fmt("not a Name")
	_ = getenv(name)                       // not a literal
}
`,
			want: []string{"DB_MAX", "LOG_LEVEL", "NODE_ENV", "PORT"},
		},
		{name: "Missing", err: "services/prog/config.go"},
		{name: "DoesNotParse", source: "package main\nfunc {", err: "expected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "services", "prog")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			if tc.source != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "config.go"), []byte(tc.source), 0o644))
			}
			got, err := repo.EnvRead(root, "prog")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestRootFindsGoWork(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.work"))
	require.DirExists(t, filepath.Join(root, "deploy", "k8s"))
}
