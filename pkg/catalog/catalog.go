// Package catalog owns the persona catalog: the JSON document that lists the
// synthetic test users an operator seeds into Mana, the rules every entry must
// follow, and the derivation of each persona's password.
//
// The package is pure: it reads bytes or a file, never the network, and it
// never logs. The shape of a catalog is defined by one JSON Schema,
// personas.schema.json, embedded here and checked at run time; Go adds only
// the rules across entries. A catalog is decoded leniently so that Validate
// can report every defect at once, each with its path in the document
// (`personas[3].email: must end in @mana.test`), instead of stopping at the
// first one.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// EmailDomain is the only domain a persona may use. `.test` is reserved
// (RFC 2606), so a persona can never receive or send real mail.
const EmailDomain = "mana.test"

// Cadence says how often the persona runner lets a persona live a day.
type Cadence string

// The cadences the internal API understands.
const (
	CadenceDaily    Cadence = "daily"
	CadenceWeekdays Cadence = "weekdays"
	CadenceHourly   Cadence = "hourly"
)

// DefaultCadence applies when a persona names none.
const DefaultCadence = CadenceDaily

// Cadences lists the valid cadences in the order they are documented.
func Cadences() []Cadence { return []Cadence{CadenceDaily, CadenceWeekdays, CadenceHourly} }

// Valid reports whether c is one of the known cadences.
func (c Cadence) Valid() bool {
	for _, k := range Cadences() {
		if c == k {
			return true
		}
	}
	return false
}

// Catalog is a decoded catalog document.
type Catalog struct {
	// Schema is the document's `$schema` reference, kept so a re-encoded
	// catalog still validates in editors.
	Schema string `json:"$schema,omitempty"`
	// Personas in document order; seeding follows this order.
	Personas []Persona `json:"personas"`
	// SharedSpaces groups personas that will later share a space.
	SharedSpaces []SharedSpace `json:"sharedSpaces,omitempty"`

	// doc is the document as decoded (numbers as json.Number), which the
	// schema judges; nil for a catalog built in Go.
	doc map[string]any
}

// Persona is one catalog entry: everything the admin API's upsert needs
// except the password, which is derived (see Password).
type Persona struct {
	Email     string `json:"email"`
	Name      string `json:"name"`
	Archetype string `json:"archetype"`
	// TickCadence may be empty, meaning DefaultCadence; use Cadence().
	TickCadence Cadence `json:"tickCadence,omitempty"`
	// MaxHistoryDays (1–3650) is the persona's own raw retention; nil:
	// the global rule.
	MaxHistoryDays *int `json:"maxHistoryDays,omitempty"`
	// Tags label the persona (e.g. "chaos"); nil when the catalog leaves
	// them out, which a seed passes on as "keep the persona's tags".
	Tags []string `json:"tags,omitempty"`
	// ModuleMix maps a Mana module to its relative weight (≥ 0).
	ModuleMix    map[string]float64 `json:"moduleMix"`
	SystemPrompt string             `json:"systemPrompt"`
}

// Cadence returns the persona's cadence with the default applied.
func (p Persona) Cadence() Cadence {
	if p.TickCadence == "" {
		return DefaultCadence
	}
	return p.TickCadence
}

// SharedSpace is a group of personas (by email) that will share a space.
type SharedSpace struct {
	Name    string   `json:"name,omitempty"`
	Kind    string   `json:"kind"`
	Members []string `json:"members"`
}

// Load reads and validates the catalog at path. The error is a
// *ValidationError when the document was readable but broke rules.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: read %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return c, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a catalog document. On rule violations it
// returns the decoded catalog together with a *ValidationError.
func Parse(data []byte) (*Catalog, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if probs := c.Validate(); len(probs) > 0 {
		return c, &ValidationError{Problems: probs}
	}
	return c, nil
}

// Decode reads a catalog document without judging it. It fails only when the
// bytes are not a JSON object. Every field it can read is decoded, even when
// others have the wrong type, so that Validate can report each defect at once
// and seeding can still use the entries that are fine.
func Decode(data []byte) (*Catalog, error) {
	c := &Catalog{}
	// Unmarshal skips values of the wrong type and fills the rest: the
	// schema reports the skipped ones, so its type errors are not ours.
	if err := json.Unmarshal(data, c); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("catalog: not a JSON object: %s", describeJSONError(data, syn))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // exact numbers for the schema's minimum and enum
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("catalog: not a JSON object: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("catalog: not a JSON object: got %s", jsonTypeName(doc))
	}
	c.doc = obj
	return c, nil
}

// Lookup returns the persona with the given email (case-insensitive).
func (c *Catalog) Lookup(email string) (Persona, bool) {
	for _, p := range c.Personas {
		if strings.EqualFold(p.Email, email) {
			return p, true
		}
	}
	return Persona{}, false
}

// describeJSONError turns a syntax error's byte offset into line:column, which
// is what a person editing the file needs.
func describeJSONError(data []byte, syn *json.SyntaxError) string {
	line, col := 1, 1
	for _, b := range data[:min(int(syn.Offset), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d: %s", line, col, syn.Error())
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
