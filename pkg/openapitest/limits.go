package openapitest

import (
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Limits reads the limits an OpenAPI document states, so a test can pin
// them to the store's constants: a rule changed on one side only fails.
type Limits struct {
	t   testing.TB
	doc *openapi3.T
}

// LoadLimits parses doc.
func LoadLimits(t testing.TB, doc []byte) *Limits {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		t.Fatalf("openapitest: load document: %v", err)
	}
	return &Limits{t: t, doc: spec}
}

// Schema returns a component schema.
func (l *Limits) Schema(name string) *openapi3.Schema {
	l.t.Helper()
	ref, ok := l.doc.Components.Schemas[name]
	if !ok || ref.Value == nil {
		l.t.Fatalf("openapitest: no schema %s", name)
	}
	return ref.Value
}

// Body returns the JSON request body schema of method on path.
func (l *Limits) Body(method, path string) *openapi3.Schema {
	l.t.Helper()
	op := l.op(method, path)
	if op.RequestBody == nil || op.RequestBody.Value.Content["application/json"] == nil {
		l.t.Fatalf("openapitest: %s %s has no JSON body", method, path)
	}
	return op.RequestBody.Value.Content["application/json"].Schema.Value
}

// Query returns the schema of a query parameter of method on path.
func (l *Limits) Query(method, path, name string) *openapi3.Schema {
	l.t.Helper()
	for _, p := range l.op(method, path).Parameters {
		if p.Value != nil && p.Value.In == "query" && p.Value.Name == name {
			return p.Value.Schema.Value
		}
	}
	l.t.Fatalf("openapitest: %s %s has no query parameter %s", method, path, name)
	return nil
}

func (l *Limits) op(method, path string) *openapi3.Operation {
	l.t.Helper()
	item := l.doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil {
		l.t.Fatalf("openapitest: no operation %s %s", method, path)
	}
	return item.GetOperation(method)
}

// Prop returns property name of s.
func (l *Limits) Prop(s *openapi3.Schema, name string) *openapi3.Schema {
	l.t.Helper()
	p, ok := s.Properties[name]
	if !ok || p.Value == nil {
		l.t.Fatalf("openapitest: no property %s", name)
	}
	return p.Value
}

// MaxLength is s's maxLength (fails when unset).
func (l *Limits) MaxLength(s *openapi3.Schema) int {
	l.t.Helper()
	if s.MaxLength == nil {
		l.t.Fatalf("openapitest: maxLength not set")
	}
	return asInt(*s.MaxLength)
}

// Max is s's maximum (fails when unset).
func (l *Limits) Max(s *openapi3.Schema) int {
	l.t.Helper()
	if s.Max == nil {
		l.t.Fatalf("openapitest: maximum not set")
	}
	return int(*s.Max)
}

// Min is s's minimum (fails when unset).
func (l *Limits) Min(s *openapi3.Schema) int {
	l.t.Helper()
	if s.Min == nil {
		l.t.Fatalf("openapitest: minimum not set")
	}
	return int(*s.Min)
}

// MaxItems is s's maxItems, or maxProperties for an object (fails when unset).
func (l *Limits) MaxItems(s *openapi3.Schema) int {
	l.t.Helper()
	switch {
	case s.MaxItems != nil:
		return asInt(*s.MaxItems)
	case s.MaxProps != nil:
		return asInt(*s.MaxProps)
	}
	l.t.Fatalf("openapitest: maxItems/maxProperties not set")
	return 0
}

// asInt converts a document's limit; limits beyond int are not ours.
func asInt(v uint64) int {
	if v > 1<<31 {
		return 1 << 31
	}
	return int(v)
}
