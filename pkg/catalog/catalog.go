// Package catalog owns the persona catalog: the JSON document that lists the
// synthetic test users an operator seeds into Mana, the rules every entry must
// follow, and the derivation of each persona's password.
//
// The package is pure: it reads bytes or a file, never the network, and it
// never logs. A catalog is decoded leniently so that Validate can report every
// defect at once, each with its path in the document
// (`personas[3].email: must end in @mana.test`), instead of stopping at the
// first one.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
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

	// decodeProblems are the defects found while decoding (wrong types,
	// unknown fields); Validate reports them with the rule violations.
	decodeProblems []Problem
}

// Persona is one catalog entry: everything the admin API's upsert needs
// except the password, which is derived (see Password).
type Persona struct {
	Email     string `json:"email"`
	Name      string `json:"name"`
	Archetype string `json:"archetype"`
	// TickCadence may be empty, meaning DefaultCadence; use Cadence().
	TickCadence Cadence `json:"tickCadence,omitempty"`
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
// bytes are not a JSON object; wrong field types and unknown fields are kept
// as problems that Validate reports, so one run shows every defect.
func Decode(data []byte) (*Catalog, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("catalog: not a JSON object: %s", describeJSONError(data, err))
	}
	if top == nil {
		return nil, errors.New("catalog: not a JSON object: got null")
	}
	c := &Catalog{}
	for _, key := range sortedKeys(top) {
		raw := top[key]
		switch key {
		case "$schema":
			if err := json.Unmarshal(raw, &c.Schema); err != nil {
				c.addDecode(-1, "$schema", "must be a string")
			}
		case "personas":
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil || isNull(raw) {
				c.addDecode(-1, "personas", "must be an array of persona objects")
				continue
			}
			c.Personas = make([]Persona, len(items))
			for i, item := range items {
				c.Personas[i] = c.decodePersona(i, item)
			}
		case "sharedSpaces":
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				c.addDecode(-1, "sharedSpaces", "must be an array of shared-space objects")
				continue
			}
			c.SharedSpaces = make([]SharedSpace, len(items))
			for i, item := range items {
				c.SharedSpaces[i] = c.decodeSpace(i, item)
			}
		default:
			c.addDecode(-1, key, "unknown field")
		}
	}
	if _, ok := top["personas"]; !ok {
		c.addDecode(-1, "personas", "is required")
	}
	return c, nil
}

func (c *Catalog) decodePersona(i int, raw json.RawMessage) Persona {
	var p Persona
	base := fmt.Sprintf("personas[%d]", i)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		c.addDecode(i, base, "must be an object")
		return p
	}
	str := func(key string, dst *string) {
		if err := json.Unmarshal(fields[key], dst); err != nil {
			c.addDecode(i, base+"."+key, "must be a string")
		}
	}
	for _, key := range sortedKeys(fields) {
		switch key {
		case "email":
			str(key, &p.Email)
		case "name":
			str(key, &p.Name)
		case "archetype":
			str(key, &p.Archetype)
		case "systemPrompt":
			str(key, &p.SystemPrompt)
		case "tickCadence":
			if isNull(fields[key]) {
				continue // null means "use the default", like a missing field
			}
			var s string
			if err := json.Unmarshal(fields[key], &s); err != nil {
				c.addDecode(i, base+".tickCadence", "must be a string, one of "+cadenceList())
				continue
			}
			if s == "" {
				// Only an absent field means the default: an empty string is
				// more likely a half-finished edit than a decision.
				c.addDecode(i, base+".tickCadence", "must be one of "+cadenceList()+"; omit it for "+string(DefaultCadence))
			}
			p.TickCadence = Cadence(s)
		case "moduleMix":
			p.ModuleMix = c.decodeMix(i, base+".moduleMix", fields[key])
		default:
			c.addDecode(i, base+"."+key, "unknown field")
		}
	}
	return p
}

func (c *Catalog) decodeMix(i int, path string, raw json.RawMessage) map[string]float64 {
	var weights map[string]json.RawMessage
	if err := json.Unmarshal(raw, &weights); err != nil {
		c.addDecode(i, path, "must be an object mapping module names to weights")
		return nil
	}
	if weights == nil {
		return nil
	}
	mix := make(map[string]float64, len(weights))
	for _, module := range sortedKeys(weights) {
		var w float64
		if err := json.Unmarshal(weights[module], &w); err != nil || isNull(weights[module]) {
			c.addDecode(i, path+"."+module, "weight must be a number")
			continue
		}
		mix[module] = w
	}
	return mix
}

func (c *Catalog) decodeSpace(i int, raw json.RawMessage) SharedSpace {
	var s SharedSpace
	base := fmt.Sprintf("sharedSpaces[%d]", i)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		c.addDecodeSpace(i, base, "must be an object")
		return s
	}
	for _, key := range sortedKeys(fields) {
		switch key {
		case "name":
			if err := json.Unmarshal(fields[key], &s.Name); err != nil {
				c.addDecodeSpace(i, base+".name", "must be a string")
			}
		case "kind":
			if err := json.Unmarshal(fields[key], &s.Kind); err != nil {
				c.addDecodeSpace(i, base+".kind", "must be a string")
			}
		case "members":
			if err := json.Unmarshal(fields[key], &s.Members); err != nil {
				c.addDecodeSpace(i, base+".members", "must be an array of persona emails")
			}
		default:
			c.addDecodeSpace(i, base+"."+key, "unknown field")
		}
	}
	return s
}

func (c *Catalog) addDecode(persona int, path, msg string) {
	c.decodeProblems = append(c.decodeProblems, Problem{Path: path, Message: msg, Persona: persona, space: -1})
}

func (c *Catalog) addDecodeSpace(space int, path, msg string) {
	c.decodeProblems = append(c.decodeProblems, Problem{Path: path, Message: msg, Persona: -1, space: space})
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

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func cadenceList() string {
	names := make([]string, 0, 3)
	for _, c := range Cadences() {
		names = append(names, string(c))
	}
	return strings.Join(names, ", ")
}

// describeJSONError turns a syntax error's byte offset into line:column, which
// is what a person editing the file needs.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
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
	return err.Error()
}
