// Package repo locates the repository the deploy tests guard and reads the
// facts they compare the deployment files against: which environment
// variables each program reads, and the port each server listens on.
package repo

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// Program names one Go program of the repository, built from services/<Name>.
type Program struct {
	Name string
	// Port is the default PORT of a server; zero for the CLI.
	Port int
	// Required must always be set; RequiredInProduction too when
	// NODE_ENV=production.
	Required             []string
	RequiredInProduction []string
}

// Programs lists every Go program in the repository. mana-auth-dev is the
// development stand-in for mana-auth: it gets an image for local clusters but
// never appears in the prod overlay.
var Programs = []Program{
	{
		Name:                 "personas-internal",
		Port:                 3061,
		Required:             []string{"DATABASE_URL"},
		RequiredInProduction: []string{"MANA_SERVICE_KEY"},
	},
	{
		Name:                 "personas-admin",
		Port:                 3062,
		Required:             []string{"DATABASE_URL"},
		RequiredInProduction: []string{"MANA_AUTH_URL", "MANA_SERVICE_KEY"},
	},
	{Name: "mana-auth-dev", Port: 3001},
	{Name: "personasctl"},
}

// Lookup returns the program with the given name.
func Lookup(name string) (Program, bool) {
	for _, p := range Programs {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}

// GatewayPort is the gateway's default port, the platform's API port.
const GatewayPort = 3060

// Root returns the repository root: the nearest directory above the working
// directory that holds go.work.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// EnvRead returns the environment variables program reads, sorted. By the
// repository's convention a program reads its environment only in
// services/<program>/config.go, through calls whose first argument is the
// variable's name as a string literal (getenv("PORT"), envInt("X", 4), ...);
// EnvRead collects those first arguments that look like variable names.
// A missing config.go is an error: then nothing can be checked.
func EnvRead(root, program string) ([]string, error) {
	path := filepath.Join(root, "services", program, "config.go")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("services/%s/config.go: %w (the program must read its environment there, "+
			"through calls whose first argument is the variable name as a string literal)", program, err)
	}
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	collectEnvNames(file, seen)
	// The settings every service shares are read by edge.LoadSettings: a
	// program calling it reads those names too.
	if callsSelector(file, "edge", "LoadSettings") {
		shared, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "pkg", "edge", "config.go"), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range shared.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "LoadSettings" {
				collectEnvNames(fn, seen)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// collectEnvNames adds every call's first argument that is a string literal
// shaped like an environment variable's name.
func collectEnvNames(node ast.Node, seen map[string]bool) {
	ast.Inspect(node, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		if s, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(s) {
			seen[s] = true
		}
		return true
	})
}

// callsSelector reports whether file calls pkg.name.
func callsSelector(file *ast.File, pkg, name string) bool {
	found := false
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == name {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == pkg {
				found = true
			}
		}
		return !found
	})
	return found
}
