package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Seed sends each catalog persona's tags with its upsert: a list as it is
// (an empty one clears the persona's tags), and nothing when the catalog
// leaves them out (the persona keeps its tags). The server's side of tags
// is tested in services/personas-admin (TestUpsertTags).
func TestSeedPassesTags(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	bodies := map[string]map[string]json.RawMessage{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &body))
		var email string
		require.NoError(t, json.Unmarshal(body["email"], &email))
		mu.Lock()
		bodies[email] = body
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "userId": "u-" + email, "email": email, "created": true})
	}))
	t.Cleanup(srv.Close)

	doc := builtinDoc(t)
	personas := doc["personas"].([]any)
	personas[0].(map[string]any)["tags"] = []any{"chaos", "beta"}
	personas[1].(map[string]any)["tags"] = []any{}
	delete(personas[2].(map[string]any), "tags")
	path := writeCatalog(t, doc)

	r := runCLI(t, map[string]string{"MANA_ADMIN_JWT": "tok", "MANA_API_URL": srv.URL}, "", "seed", "--catalog", path)
	require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	require.Len(t, bodies, len(personas))
	email := func(i int) string { return personas[i].(map[string]any)["email"].(string) }
	require.JSONEq(t, `["chaos","beta"]`, string(bodies[email(0)]["tags"]))
	require.JSONEq(t, `[]`, string(bodies[email(1)]["tags"]))
	require.NotContains(t, bodies[email(2)], "tags")
	// The built-in catalog's own tags go out too.
	require.JSONEq(t, `["family"]`, string(bodies["persona.tom@mana.test"]["tags"]))
	require.NotContains(t, bodies["persona.maya@mana.test"], "tags")
}
