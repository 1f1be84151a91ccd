package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Problem is one defect of a catalog, located by its path in the document.
type Problem struct {
	// Path locates the defect, e.g. `personas[3].email`.
	Path    string `json:"path"`
	Message string `json:"message"`
	// Persona is the index of the persona the problem belongs to, or -1 for
	// a problem of the document or of a shared space. Seeding uses it to
	// skip only the broken entries.
	Persona int `json:"-"`

	space int      // index of the shared space, or -1
	loc   []string // Path as tokens (a JSON pointer's), for ordering
}

// String renders the problem as "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError carries every problem of a catalog.
type ValidationError struct {
	Problems []Problem
}

// Error lists all problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("invalid catalog (%d problems):", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// Validate checks the catalog and returns all problems, in document order
// (top level, then personas by index, then shared spaces), or nil.
//
// The shape of every entry is checked against personas.schema.json (see
// SchemaJSON): plain lowercase emails in @mana.test, names, archetypes,
// prompts, module weights, cadences, shared spaces of two or more distinct
// members. Go checks only what spans entries: emails are unique
// (case-insensitively) and every shared-space member is a persona of this
// catalog. A catalog from Decode is judged as the document it was decoded
// from; one built in Go is judged as it would be encoded.
func (c *Catalog) Validate() []Problem {
	var probs []Problem
	doc := c.doc
	if doc == nil {
		doc, probs = c.encode()
	}
	probs = append(probs, schemaProblems(doc)...)

	// A field whose shape is wrong already has its problem; a rule across
	// entries would only add noise ("duplicate of" an address that is not
	// one).
	covered := func(path string) bool {
		for _, p := range probs {
			if path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
				return true
			}
		}
		return false
	}
	var rules []Problem
	firstByEmail := make(map[string]int, len(c.Personas))
	for i, p := range c.Personas {
		loc := []string{"personas", strconv.Itoa(i), "email"}
		path := renderPath(doc, loc)
		if covered(path) {
			continue
		}
		key := strings.ToLower(p.Email)
		if j, dup := firstByEmail[key]; dup {
			rules = append(rules, Problem{Path: path, Persona: i, space: -1, loc: loc,
				Message: fmt.Sprintf("duplicate of personas[%d].email (%s)", j, p.Email)})
			continue
		}
		firstByEmail[key] = i
	}
	for s, space := range c.SharedSpaces {
		for m, email := range space.Members {
			loc := []string{"sharedSpaces", strconv.Itoa(s), "members", strconv.Itoa(m)}
			path := renderPath(doc, loc)
			if covered(path) {
				continue
			}
			if _, ok := c.Lookup(email); !ok {
				rules = append(rules, Problem{Path: path, Persona: -1, space: s, loc: loc,
					Message: fmt.Sprintf("no persona with email %q in this catalog", email)})
			}
		}
	}
	probs = append(probs, rules...)

	slices.SortStableFunc(probs, func(a, b Problem) int {
		if d := a.order() - b.order(); d != 0 {
			return d
		}
		return compareLoc(a.loc, b.loc)
	})
	probs = slices.CompactFunc(probs, func(a, b Problem) bool { return a.Path == b.Path && a.Message == b.Message })
	if len(probs) == 0 {
		return nil
	}
	return probs
}

// encode turns a catalog built in Go into the document the schema judges.
// JSON has no NaN or infinity, so non-finite weights are reported here and
// left out of the document.
func (c *Catalog) encode() (map[string]any, []Problem) {
	var probs []Problem
	cp := *c
	cp.Personas = slices.Clone(c.Personas)
	for i, p := range cp.Personas {
		var mix map[string]float64
		for module, w := range p.ModuleMix {
			if math.IsNaN(w) || math.IsInf(w, 0) {
				loc := []string{"personas", strconv.Itoa(i), "moduleMix", module}
				probs = append(probs, Problem{Message: "weight must be a finite number", Persona: i, space: -1, loc: loc})
				continue
			}
			if mix == nil {
				mix = make(map[string]float64, len(p.ModuleMix))
			}
			mix[module] = w
		}
		cp.Personas[i].ModuleMix = mix
	}
	data, err := json.Marshal(&cp)
	if err != nil {
		panic(fmt.Sprintf("catalog: encode for validation: %v", err)) // only finite numbers and strings remain
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		panic(fmt.Sprintf("catalog: decode own encoding: %v", err))
	}
	for i := range probs {
		probs[i].Path = renderPath(doc, probs[i].loc)
	}
	return doc, probs
}

// ProblemsByPersona groups problems by persona index; document and
// shared-space problems are under -1.
func ProblemsByPersona(probs []Problem) map[int][]Problem {
	out := make(map[int][]Problem)
	for _, p := range probs {
		out[p.Persona] = append(out[p.Persona], p)
	}
	return out
}

// order sorts top-level problems first, then personas, then shared spaces,
// each by index.
func (p Problem) order() int {
	switch {
	case p.Persona >= 0:
		return 1<<20 + p.Persona
	case p.space >= 0:
		return 2<<20 + p.space
	default:
		return 0
	}
}

// compareLoc orders locations token by token, array indexes numerically. A
// value's own problem ("at least one weight must be positive") sums up those
// of its members, so it follows them.
func compareLoc(a, b []string) int {
	for i := range min(len(a), len(b)) {
		x, errX := strconv.Atoi(a[i])
		y, errY := strconv.Atoi(b[i])
		if errX == nil && errY == nil {
			if x != y {
				return x - y
			}
			continue
		}
		if d := strings.Compare(a[i], b[i]); d != 0 {
			return d
		}
	}
	return len(b) - len(a)
}
