package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// envManifest is every environment variable personasctl reads; the README's
// configuration table lists the same.
var envManifest = []string{"MANA_ADMIN_JWT", "MANA_API_URL", "MANA_SERVICE_KEY", "NODE_ENV", "PERSONA_SEED_SECRET"}

// TestConfigManifest parses config.go and checks that the variables it reads
// (calls whose first argument is a string literal) are the manifest, and that
// no other file calls os.Getenv, os.LookupEnv or os.Environ.
func TestConfigManifest(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "config.go", nil, 0)
	require.NoError(t, err)
	var read []string
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "getenv" {
			lit, ok := call.Args[0].(*ast.BasicLit)
			require.True(t, ok && lit.Kind == token.STRING, "getenv at %s must take a string literal", fset.Position(call.Pos()))
			name, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			read = append(read, name)
		}
		return true
	})
	slices.Sort(read)
	require.Equal(t, envManifest, read)

	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, name := range files {
		if name == "config.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, name, src, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "os" {
					require.NotContains(t, []string{"Getenv", "LookupEnv", "Environ"}, sel.Sel.Name,
						"%s reads the environment; only config.go may", fset.Position(call.Pos()))
				}
			}
			return true
		})
	}
}

func TestConfigStringMasksSecrets(t *testing.T) {
	t.Parallel()
	c := loadConfig(func(k string) string {
		return map[string]string{"MANA_API_URL": " http://gw:3060 ", "MANA_ADMIN_JWT": "jwt-value", "PERSONA_SEED_SECRET": "seed-value"}[k]
	})
	require.Equal(t, "http://gw:3060", c.APIURL)
	s := c.String()
	require.NotContains(t, s, "jwt-value")
	require.NotContains(t, s, "seed-value")
	require.Contains(t, s, "MANA_ADMIN_JWT=(set)")
	require.Contains(t, s, "NODE_ENV=")
}
