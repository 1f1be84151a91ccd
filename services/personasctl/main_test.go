package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// result is what one in-process run of personasctl produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs personasctl in-process with exactly the given environment
// (nothing leaks in from the test process) and stdin.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := run(args, getenv, strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// closedURL returns the URL of a local port that nothing listens on, so any
// attempt to call it fails at once: proof that a dry run sends nothing, and
// a real network failure for error paths.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

// writeCatalog writes a catalog document to a temporary file.
func writeCatalog(t *testing.T, doc any) string {
	t.Helper()
	data, err := json.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "personas.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// builtinDoc returns the built-in catalog as generic JSON, to break one
// thing in a copy.
func builtinDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(builtinCatalog, &doc))
	return doc
}

func docPersona(doc map[string]any, i int) map[string]any {
	return doc["personas"].([]any)[i].(map[string]any)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	t.Run("NoArgumentsIsUsageError", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, "usage: personasctl <command>")
		require.Empty(t, r.stdout)
	})
	t.Run("UnknownCommandIsUsageError", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seeed")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, `unknown command "seeed"`)
	})
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		t.Run("TopLevelHelp"+args[0], func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, "", args...)
			require.Equal(t, exitOK, r.code)
			for _, c := range commands() {
				require.Contains(t, r.stdout, c.name)
			}
		})
	}
	helpCases := [][]string{
		{"catalog"}, {"catalog", "validate"}, {"catalog", "list"}, {"password"},
		{"seed"}, {"list"}, {"show"}, {"cleanup"},
	}
	for _, cmd := range helpCases {
		t.Run("HelpOf"+strings.Join(cmd, ""), func(t *testing.T) {
			t.Parallel()
			for _, flag := range []string{"--help", "-h"} {
				r := runCLI(t, nil, "", append(append([]string{}, cmd...), flag)...)
				require.Equal(t, exitOK, r.code, r.stderr)
				require.Contains(t, r.stdout, "usage: personasctl ")
				require.Empty(t, r.stderr)
			}
		})
	}
	t.Run("HelpCommandNamesSubcommand", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "help", "seed")
		require.Equal(t, exitOK, r.code)
		require.Contains(t, r.stdout, "usage: personasctl seed")
		require.Contains(t, r.stdout, "-dry-run")
	})
	usageErrors := []struct {
		name string
		args []string
		want string
	}{
		{"SeedUnknownFlag", []string{"seed", "--bogus"}, "flag provided but not defined: -bogus"},
		{"CleanupUnknownFlag", []string{"cleanup", "--force"}, "flag provided but not defined: -force"},
		{"SeedBadOutput", []string{"seed", "--dry-run", "--output", "yaml"}, "--output must be text or json"},
		{"ValidateBadOutput", []string{"catalog", "validate", "--output=xml"}, "--output must be text or json"},
		{"SeedExtraArgument", []string{"seed", "--dry-run", "now"}, "unexpected arguments: now"},
		{"CatalogWithoutSubcommand", []string{"catalog"}, "missing subcommand"},
		{"CatalogUnknownSubcommand", []string{"catalog", "lint"}, `unknown subcommand "lint"`},
		{"PasswordWithoutEmail", []string{"password"}, "expected exactly one EMAIL"},
		{"PasswordTwoEmails", []string{"password", "a@mana.test", "b@mana.test"}, "expected exactly one EMAIL"},
		{"ShowWithoutID", []string{"show"}, "expected exactly one USERID or EMAIL"},
		{"SeedBadAPIFlag", []string{"seed", "--dry-run", "--api", "localhost:3060"}, `--api "localhost:3060" is not an http(s) URL`},
		{"SeedAPIAndAuthDisagree", []string{"seed", "--dry-run", "--api", "http://a:1", "--auth", "http://b:2"}, "disagree"},
		{"SeedOnlyUnknownPersona", []string{"seed", "--dry-run", "--only", "persona.anna@mana.test,persona.zoe@mana.test"}, "not in the catalog: persona.zoe@mana.test"},
		{"SeedOnlyEmpty", []string{"seed", "--dry-run", "--only", " , "}, "--only names no persona"},
	}
	for _, tc := range usageErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, "", tc.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
			require.Contains(t, r.stderr, "usage: personasctl ")
		})
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	t.Run("DesignVectorWithRealSecret", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"PERSONA_SEED_SECRET": "s3cr3t"}, "", "password", "persona.maya@mana.test")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh\n", r.stdout)
		require.Empty(t, r.stderr)
	})
	t.Run("DevelopmentFallbackWarnsOnStderrOnly", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"NODE_ENV": "development"}, "", "password", "persona.anna@mana.test")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, "1FJ7w8KbjK5CWVa8NqfobexAFNuQKxiA\n", r.stdout)
		require.Contains(t, r.stderr, "development secret")
	})
	t.Run("ProductionWithRealSecret", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"NODE_ENV": "production", "PERSONA_SEED_SECRET": "s3cr3t"}, "", "password", "persona.maya@mana.test")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh\n", r.stdout)
	})
	t.Run("MixedCaseEmailDerivedAsGivenWithWarning", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"PERSONA_SEED_SECRET": "s3cr3t"}, "", "password", "Persona.Maya@mana.test")
		require.Equal(t, exitOK, r.code)
		require.NotEqual(t, "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh\n", r.stdout)
		require.Contains(t, r.stderr, "not trimmed lowercase")
	})
}

// TestProductionRefusal: with NODE_ENV=production, every command that
// derives passwords refuses without a real secret: the previous
// implementation fell back to a development secret in production.
func TestProductionRefusal(t *testing.T) {
	t.Parallel()
	secrets := map[string]map[string]string{
		"SecretUnset":      {"NODE_ENV": "production"},
		"SecretEmpty":      {"NODE_ENV": "production", "PERSONA_SEED_SECRET": ""},
		"SecretBlank":      {"NODE_ENV": "production", "PERSONA_SEED_SECRET": "   "},
		"SecretDevDefault": {"NODE_ENV": "production", "PERSONA_SEED_SECRET": "dev-persona-seed-secret-rotate-in-prod"},
	}
	commands := map[string][]string{
		"Password":   {"password", "persona.anna@mana.test"},
		"Seed":       {"seed"},
		"SeedDryRun": {"seed", "--dry-run"},
	}
	for sName, secretEnv := range secrets {
		for cName, args := range commands {
			t.Run(cName+sName, func(t *testing.T) {
				t.Parallel()
				env := map[string]string{"MANA_ADMIN_JWT": "token-that-must-not-matter", "MANA_API_URL": closedURL(t)}
				for k, v := range secretEnv {
					env[k] = v
				}
				r := runCLI(t, env, "", args...)
				require.Equal(t, exitFailure, r.code)
				require.Contains(t, r.stderr, "refusing to derive persona passwords")
				require.Contains(t, r.stderr, "NODE_ENV=production")
				require.NotContains(t, r.stdout, "1FJ7w8KbjK5CWVa8NqfobexAFNuQKxiA")
				require.NotContains(t, r.stdout, "✓")
			})
		}
	}
}

func TestCatalogValidate(t *testing.T) {
	t.Parallel()
	t.Run("BuiltinCatalogIsValid", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "catalog", "validate")
		require.Equal(t, exitOK, r.code, r.stdout)
		require.Contains(t, r.stdout, "ok: built-in catalog")
		require.Contains(t, r.stdout, "10 personas, 3 shared spaces")
	})
	t.Run("FileOnDiskIsValid", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "catalog", "validate", "--catalog", filepath.Join("catalog", "personas.json"))
		require.Equal(t, exitOK, r.code, r.stdout)
	})
	t.Run("EveryProblemWithItsPath", func(t *testing.T) {
		t.Parallel()
		doc := builtinDoc(t)
		docPersona(doc, 3)["email"] = "lena@example.com"
		docPersona(doc, 5)["tickCadence"] = "monthly"
		docPersona(doc, 9)["moduleMix"] = map[string]any{"todo": -1}
		r := runCLI(t, nil, "", "catalog", "validate", "--catalog", writeCatalog(t, doc))
		require.Equal(t, exitFailure, r.code)
		require.Equal(t, []string{
			"personas[3].email: must end in @mana.test",
			`personas[5].tickCadence: must be one of daily, weekdays, hourly (got "monthly")`,
			"personas[9].moduleMix.todo: weight must not be negative (got -1)",
			"personas[9].moduleMix: at least one weight must be positive",
			`sharedSpaces[1].members[1]: no persona with email "persona.lena@mana.test" in this catalog`,
		}, strings.Split(strings.TrimSpace(r.stdout), "\n")[:5])
		require.Contains(t, r.stdout, "invalid: ")
		require.Contains(t, r.stdout, "5 problems")
	})
	t.Run("JSONOutputShape", func(t *testing.T) {
		t.Parallel()
		doc := builtinDoc(t)
		docPersona(doc, 0)["name"] = ""
		r := runCLI(t, nil, "", "catalog", "validate", "--output", "json", "--catalog", writeCatalog(t, doc))
		require.Equal(t, exitFailure, r.code)
		var got struct {
			Catalog  string `json:"catalog"`
			Valid    bool   `json:"valid"`
			Personas int    `json:"personas"`
			Problems []struct {
				Path, Message string
			} `json:"problems"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.False(t, got.Valid)
		require.Equal(t, 10, got.Personas)
		require.Len(t, got.Problems, 1)
		require.Equal(t, "personas[0].name", got.Problems[0].Path)
		require.Equal(t, "is required", got.Problems[0].Message)
	})
	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "catalog", "validate", "--catalog", filepath.Join(t.TempDir(), "none.json"))
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "no such file")
	})
	t.Run("SyntaxErrorNamesLine", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "broken.json")
		require.NoError(t, os.WriteFile(path, []byte("{\n \"personas\": [\n  {,}\n ]\n}"), 0o600))
		r := runCLI(t, nil, "", "catalog", "validate", "--catalog", path)
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "line 3")
	})
	t.Run("ListJSONIsTheCatalog", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "catalog", "list", "--output", "json")
		require.Equal(t, exitOK, r.code)
		var got struct {
			Personas []struct{ Email, TickCadence string }
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Len(t, got.Personas, 10)
	})
}

// seedJSON is the --output json report of seed.
type seedJSON struct {
	Command         string `json:"command"`
	DryRun          bool   `json:"dryRun"`
	API             string `json:"api"`
	Catalog         string `json:"catalog"`
	CatalogProblems []struct {
		Path, Message string
	} `json:"catalogProblems"`
	Results []struct {
		Email, Name, Archetype, TickCadence, Status, UserID, Error string
		Problems                                                   []struct{ Path, Message string }
	} `json:"results"`
	Summary struct {
		Total, Created, Updated, Upserted, Planned, Failed, Skipped int
	} `json:"summary"`
}

func decodeSeed(t *testing.T, stdout string) seedJSON {
	t.Helper()
	var got seedJSON
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&got), stdout)
	return got
}

func TestSeedDryRun(t *testing.T) {
	t.Parallel()
	t.Run("NeedsNoTokenAndSendsNothing", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"PERSONA_SEED_SECRET": "s3cr3t"}, "", "seed", "--dry-run", "--api", closedURL(t))
		require.Equal(t, exitOK, r.code, r.stderr)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, lines, 12, "header, ten personas, summary")
		require.Contains(t, lines[0], "dry run: would seed 10 personas")
		require.Equal(t, "[ 1/10] · would upsert persona.anna@mana.test (Anna, adhd-student, daily: journal .3, todo .3, mood .2, notes .2)", lines[1])
		require.True(t, strings.HasPrefix(lines[10], "[10/10] · would upsert persona.maya@mana.test"))
		require.Equal(t, "summary: 10 would be upserted, 0 failed, of 10 (dry run: nothing sent)", lines[11])
		require.Empty(t, r.stderr)
	})
	t.Run("NeverPrintsPasswords", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"PERSONA_SEED_SECRET": "s3cr3t"}, "", "seed", "--dry-run", "--output", "json")
		require.Equal(t, exitOK, r.code)
		require.NotContains(t, r.stdout+r.stderr, "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh")
		require.NotContains(t, r.stdout+r.stderr, "s3cr3t")
	})
	t.Run("JSONReport", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_API_URL": "http://gateway.test:3060"}, "", "seed", "--dry-run", "--output=json")
		require.Equal(t, exitOK, r.code, r.stderr)
		got := decodeSeed(t, r.stdout)
		require.Equal(t, "seed", got.Command)
		require.True(t, got.DryRun)
		require.Equal(t, "http://gateway.test:3060", got.API)
		require.Contains(t, got.Catalog, "built-in catalog")
		require.Empty(t, got.CatalogProblems)
		require.Len(t, got.Results, 10)
		for _, res := range got.Results {
			require.Equal(t, "planned", res.Status)
			require.Empty(t, res.UserID)
		}
		require.Equal(t, "persona.julia@mana.test", got.Results[7].Email)
		require.Equal(t, "weekdays", got.Results[7].TickCadence)
		require.Equal(t, 10, got.Summary.Total)
		require.Equal(t, 10, got.Summary.Planned)
		require.Contains(t, r.stderr, "[10/10]", "progress goes to stderr in json mode")
		require.Contains(t, r.stderr, "development secret")
	})
	t.Run("OnlySelectsPersonas", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seed", "--dry-run", "--output", "json", "--only", "persona.tom@mana.test, PERSONA.ANNA@mana.test,persona.tom@mana.test")
		require.Equal(t, exitOK, r.code, r.stderr)
		got := decodeSeed(t, r.stdout)
		require.Len(t, got.Results, 2)
		require.Equal(t, "persona.tom@mana.test", got.Results[0].Email)
		require.Equal(t, "persona.anna@mana.test", got.Results[1].Email)
	})
	t.Run("InvalidPersonaFailsAloneAndExitsOne", func(t *testing.T) {
		t.Parallel()
		doc := builtinDoc(t)
		docPersona(doc, 9)["email"] = "maya@example.com"
		r := runCLI(t, nil, "", "seed", "--dry-run", "--output", "json", "--catalog", writeCatalog(t, doc))
		require.Equal(t, exitFailure, r.code)
		got := decodeSeed(t, r.stdout)
		require.Equal(t, 9, got.Summary.Planned)
		require.Equal(t, 1, got.Summary.Failed)
		require.Equal(t, "failed", got.Results[9].Status)
		require.Equal(t, "invalid catalog entry: personas[9].email: must end in @mana.test", got.Results[9].Error)
		require.Equal(t, "personas[9].email", got.Results[9].Problems[0].Path)
		require.Contains(t, r.stderr, "[10/10] ✗ maya@example.com: invalid catalog entry")
	})
	t.Run("CatalogLevelProblemExitsOne", func(t *testing.T) {
		t.Parallel()
		doc := builtinDoc(t)
		doc["sharedSpaces"].([]any)[0].(map[string]any)["members"] = []any{"persona.anna@mana.test", "persona.zoe@mana.test"}
		r := runCLI(t, nil, "", "seed", "--dry-run", "--catalog", writeCatalog(t, doc))
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stdout, `✗ catalog: sharedSpaces[0].members[1]: no persona with email "persona.zoe@mana.test"`)
		require.Contains(t, r.stdout, "10 would be upserted")
	})
	t.Run("UnreadableCatalog", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seed", "--dry-run", "--catalog", filepath.Join(t.TempDir(), "nope.json"))
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "read catalog")
	})
	t.Run("DeprecatedAuthFlagWarns", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seed", "--dry-run", "--output", "json", "--auth", "http://legacy.test:3001")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, "--auth is deprecated")
		require.Equal(t, "http://legacy.test:3001", decodeSeed(t, r.stdout).API)
	})
	t.Run("APIFlagBeatsEnvironment", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_API_URL": "http://env.test"}, "", "seed", "--dry-run", "--output", "json", "--api", "http://flag.test")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, "http://flag.test", decodeSeed(t, r.stdout).API)
	})
	t.Run("DefaultAPI", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seed", "--dry-run", "--output", "json")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, DefaultAPIURL, decodeSeed(t, r.stdout).API)
	})
	t.Run("BadEnvironmentURLIsAFailure", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_API_URL": "gateway:3060"}, "", "seed", "--dry-run")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, `MANA_API_URL "gateway:3060" is not an http(s) URL`)
	})
}

func TestSeed(t *testing.T) {
	t.Parallel()
	t.Run("MissingTokenIsAClearFailure", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_API_URL": closedURL(t)}, "", "seed")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "no admin token")
		require.Contains(t, r.stderr, "MANA_ADMIN_JWT")
		require.NotContains(t, r.stdout, "✓")
	})
	t.Run("UnreachableAPIFailsEachPersonaWithoutLeakingSecrets", func(t *testing.T) {
		t.Parallel()
		const token = "eyJhbGciOiJFZERTQSJ9.secret-admin-token.sig"
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": token, "PERSONA_SEED_SECRET": "s3cr3t"}, "",
			"seed", "--api", closedURL(t), "--only", "persona.maya@mana.test", "--output", "json")
		require.Equal(t, exitFailure, r.code)
		got := decodeSeed(t, r.stdout)
		require.Equal(t, 1, got.Summary.Failed)
		require.Equal(t, "failed", got.Results[0].Status)
		require.Contains(t, got.Results[0].Error, "POST /api/v1/personas/admin")
		require.Contains(t, got.Results[0].Error, "connection refused")
		require.Contains(t, r.stderr, "[1/1] ✗ persona.maya@mana.test")
		for _, secret := range []string{token, "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh", "s3cr3t"} {
			require.NotContains(t, r.stdout+r.stderr, secret)
		}
	})
	t.Run("TokenFlagBeatsEnvironment", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "seed", "--jwt", "flag-token", "--api", closedURL(t), "--only", "persona.kai@mana.test")
		require.Equal(t, exitFailure, r.code)
		require.NotContains(t, r.stderr, "no admin token")
		require.Contains(t, r.stdout, "[1/1] ✗ persona.kai@mana.test")
		require.Contains(t, r.stdout, "summary: 0 created, 0 updated, 1 failed, of 1")
	})
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	t.Run("RefusesWithoutTerminalOrYes", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": closedURL(t)}, "y\n", "cleanup")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, "refusing to delete without confirmation")
		require.Contains(t, r.stderr, "--yes")
	})
	t.Run("MissingTokenIsAClearFailure", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "", "cleanup", "--dry-run")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "no admin token")
	})
	t.Run("InvalidCatalogRefusedBeforeAnyCall", func(t *testing.T) {
		t.Parallel()
		doc := builtinDoc(t)
		docPersona(doc, 2)["email"] = "persona.anna@mana.test"
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok"}, "", "cleanup", "--yes", "--catalog", writeCatalog(t, doc), "--api", closedURL(t))
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "personas[2].email: duplicate of personas[0].email")
		require.Contains(t, r.stderr, "fix them first")
	})
	t.Run("UnreachableAPIReportsJSON", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "secret-tok"}, "", "cleanup", "--dry-run", "--output", "json", "--api", closedURL(t))
		require.Equal(t, exitFailure, r.code)
		var got struct {
			Command  string `json:"command"`
			DryRun   bool   `json:"dryRun"`
			Error    string `json:"error"`
			Personas []any  `json:"personas"`
			Summary  struct {
				Listed, Kept, ToDelete, Deleted, Failed int
			} `json:"summary"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Equal(t, "cleanup", got.Command)
		require.True(t, got.DryRun)
		require.Contains(t, got.Error, "list personas: GET /api/v1/personas/admin")
		require.NotNil(t, got.Personas)
		require.Empty(t, got.Personas)
		require.Contains(t, r.stderr, "cannot list personas")
		require.NotContains(t, r.stdout+r.stderr, "secret-tok")
	})
	t.Run("AllSkipsTheCatalog", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok"}, "", "cleanup", "--all", "--dry-run", "--catalog", filepath.Join(t.TempDir(), "absent.json"), "--api", closedURL(t))
		require.Equal(t, exitFailure, r.code)
		require.NotContains(t, r.stderr, "read catalog")
		require.Contains(t, r.stderr, "cannot list personas")
	})
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	for answer, want := range map[string]bool{"y\n": true, "YES\n": true, " yes ": true, "\n": false, "": false, "n\n": false, "ja\n": false} {
		t.Run("Answer"+strings.TrimSpace(answer), func(t *testing.T) {
			t.Parallel()
			var errOut bytes.Buffer
			a := &app{stdin: strings.NewReader(answer), stderr: &errOut}
			ok, err := a.confirm("Delete? [y/N] ")
			require.NoError(t, err)
			require.Equal(t, want, ok)
			require.Equal(t, "Delete? [y/N] ", errOut.String())
		})
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	require.False(t, isTerminal(strings.NewReader("")))
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	require.False(t, isTerminal(f), "a regular file is not a terminal")
}

func TestSimulateUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"simulate", "--mix", "ok=0"},
		{"simulate", "--mix", "great=5"},
		{"simulate", "--runners", "0"},
		{"simulate", "extra"},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, exitUsage, run(args, func(string) string { return "" }, strings.NewReader(""), &out, &errOut), args)
		require.Contains(t, errOut.String(), "usage: personasctl simulate", args)
	}
}

// TestSimulateAgainstPausedFleet runs the command against a stand-in that
// answers every claim "paused": the flags reach the simulator, the key is
// sent, and the summary is printed.
func TestSimulateAgainstPausedFleet(t *testing.T) {
	t.Parallel()
	var claims atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/personas/internal/due/claim" || r.Header.Get("X-Service-Key") != "k-from-env" {
			http.Error(w, `{"error":"Not Found"}`, http.StatusNotFound)
			return
		}
		claims.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"personas":[],"serverTime":"2026-11-23T12:00:00.000Z","paused":true}`))
	}))
	defer ts.Close()
	var out, errOut bytes.Buffer
	vars := map[string]string{"MANA_API_URL": ts.URL, "MANA_SERVICE_KEY": "k-from-env"}
	code := run([]string{"simulate", "--runners", "2", "--iterations", "3", "--interval", "1ms", "--quiet"},
		func(k string) string { return vars[k] }, strings.NewReader(""), &out, &errOut)
	require.Equal(t, exitOK, code, errOut.String())
	require.Equal(t, int32(6), claims.Load())
	require.Contains(t, out.String(), "claims=6 paused=6")
	require.NotContains(t, out.String()+errOut.String(), "k-from-env")
}
