package catalog

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEmbeddedSchemaCompiles(t *testing.T) {
	t.Parallel()
	_, err := compileSchema(schemaJSON, "https://mana.test/schemas/personas-catalog.json")
	require.NoError(t, err)
}

// TestDefaultMessages covers the keyword messages for a schema without
// errorMessage annotations, including keywords the catalog schema does not
// use today.
func TestDefaultMessages(t *testing.T) {
	t.Parallel()
	cs, err := compileSchema([]byte(`{
		"type": "object",
		"required": ["must"],
		"additionalProperties": false,
		"properties": {
			"must": {},
			"list": {"type": "array", "items": {"type": "integer", "maximum": 3}, "maxItems": 2, "uniqueItems": true},
			"word": {"type": "string", "maxLength": 3, "pattern": "^[a-z]*$"},
			"pick": {"enum": ["a", "b"]},
			"low": {"type": "number", "minimum": 1.5},
			"long": {"type": "string", "minLength": 2}
		}
	}`), "https://mana.test/test.json")
	require.NoError(t, err)
	cases := []struct{ doc, want string }{
		{`{}`, "must: is required"},
		{`{"must": 1, "x": 1}`, "x: unknown field"},
		{`{"must": 1, "list": "no"}`, "list: must be an array"},
		{`{"must": 1, "list": [1.5]}`, "list[0]: must be an integer"},
		{`{"must": 1, "list": [4]}`, "list[0]: must be at most 3 (got 4)"},
		{`{"must": 1, "list": [1, 2, 3]}`, "list: must have at most 2 items (has 3)"},
		{`{"must": 1, "list": [2, 2]}`, "list[1]: duplicate of list[0]"},
		{`{"must": 1, "word": "abcd"}`, "word: must be at most 3 characters (has 4)"},
		{`{"must": 1, "word": "A"}`, "word: must match ^[a-z]*$"},
		{`{"must": 1, "pick": "c"}`, `pick: must be one of a, b (got "c")`},
		{`{"must": 1, "low": 1}`, "low: must be at least 1.5 (got 1)"},
		{`{"must": 1, "long": "x"}`, "long: must be at least 2 characters (has 1)"},
	}
	for _, tc := range cases {
		t.Run(tc.doc, func(t *testing.T) {
			t.Parallel()
			dec := json.NewDecoder(bytes.NewReader([]byte(tc.doc)))
			dec.UseNumber()
			var doc map[string]any
			require.NoError(t, dec.Decode(&doc))
			probs := cs.problems(doc)
			require.Len(t, probs, 1)
			require.Equal(t, tc.want, probs[0].String())
		})
	}
}
