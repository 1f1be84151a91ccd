package catalog

import (
	"fmt"
	"math"
	"net/mail"
	"sort"
	"strings"
	"unicode/utf8"
)

// MinPromptLength is the shortest system prompt accepted, in characters.
const MinPromptLength = 20

// Problem is one defect of a catalog, located by its path in the document.
type Problem struct {
	// Path locates the defect, e.g. `personas[3].email`.
	Path    string `json:"path"`
	Message string `json:"message"`
	// Persona is the index of the persona the problem belongs to, or -1 for
	// a problem of the document or of a shared space. Seeding uses it to
	// skip only the broken entries.
	Persona int `json:"-"`

	space int // index of the shared space, or -1
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

// Validate checks every rule and returns all problems, in document order
// (top level, then personas by index, then shared spaces), or nil.
//
// Rules: each email is a plain, lowercase address in the mana.test domain and
// unique; name and archetype are not blank; the system prompt has at least
// MinPromptLength characters; the module mix names at least one module, every
// weight is a finite number ≥ 0 and at least one is positive; the cadence, if
// given, is daily, weekdays or hourly; a shared space has a kind and at least
// two distinct members, each naming a persona of the catalog.
func (c *Catalog) Validate() []Problem {
	probs := append([]Problem(nil), c.decodeProblems...)
	// A field that could not be decoded already has its problem; a rule
	// would only repeat it ("must be a string", then "is required").
	undecodable := make(map[string]bool, len(c.decodeProblems))
	for _, p := range c.decodeProblems {
		undecodable[p.Path] = true
	}
	covered := func(path string) bool {
		for p := range undecodable {
			if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
				return true
			}
		}
		return false
	}
	add := func(i int, path, msg string) {
		if !covered(path) {
			probs = append(probs, Problem{Path: path, Message: msg, Persona: i, space: -1})
		}
	}

	firstByEmail := make(map[string]int, len(c.Personas))
	for i, p := range c.Personas {
		base := fmt.Sprintf("personas[%d]", i)
		if msg := checkEmail(p.Email); msg != "" {
			add(i, base+".email", msg)
		} else if j, dup := firstByEmail[strings.ToLower(p.Email)]; dup {
			add(i, base+".email", fmt.Sprintf("duplicate of personas[%d].email (%s)", j, p.Email))
		} else {
			firstByEmail[strings.ToLower(p.Email)] = i
		}
		if strings.TrimSpace(p.Name) == "" {
			add(i, base+".name", "is required")
		}
		if strings.TrimSpace(p.Archetype) == "" {
			add(i, base+".archetype", "is required")
		}
		if n := utf8.RuneCountInString(strings.TrimSpace(p.SystemPrompt)); n == 0 {
			add(i, base+".systemPrompt", "is required")
		} else if n < MinPromptLength {
			add(i, base+".systemPrompt", fmt.Sprintf("must be at least %d characters (has %d)", MinPromptLength, n))
		}
		if p.TickCadence != "" && !p.TickCadence.Valid() {
			add(i, base+".tickCadence", fmt.Sprintf("must be one of %s (got %q)", cadenceList(), string(p.TickCadence)))
		}
		for _, mp := range checkMix(i, base+".moduleMix", p.ModuleMix) {
			add(i, mp.Path, mp.Message)
		}
	}

	for s, space := range c.SharedSpaces {
		base := fmt.Sprintf("sharedSpaces[%d]", s)
		addSpace := func(path, msg string) {
			if !covered(path) {
				probs = append(probs, Problem{Path: path, Message: msg, Persona: -1, space: s})
			}
		}
		if strings.TrimSpace(space.Kind) == "" {
			addSpace(base+".kind", "is required")
		}
		if len(space.Members) < 2 {
			addSpace(base+".members", fmt.Sprintf("must name at least two personas (has %d)", len(space.Members)))
		}
		seen := make(map[string]int, len(space.Members))
		for m, email := range space.Members {
			path := fmt.Sprintf("%s.members[%d]", base, m)
			key := strings.ToLower(email)
			switch {
			case strings.TrimSpace(email) == "":
				addSpace(path, "is required")
			case hasKey(seen, key):
				addSpace(path, fmt.Sprintf("duplicate of %s.members[%d]", base, seen[key]))
			default:
				seen[key] = m
				if _, ok := c.Lookup(email); !ok {
					addSpace(path, fmt.Sprintf("no persona with email %q in this catalog", email))
				}
			}
		}
	}

	sort.SliceStable(probs, func(a, b int) bool { return probs[a].order() < probs[b].order() })
	if len(probs) == 0 {
		return nil
	}
	return probs
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
// each by index; SliceStable keeps discovery order within one entry.
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

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// checkEmail returns why email is not acceptable, or "".
func checkEmail(email string) string {
	switch {
	case email == "":
		return "is required"
	case strings.TrimSpace(email) != email:
		return "must not have leading or trailing spaces"
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email {
		return fmt.Sprintf("%q is not a plain email address", email)
	}
	if !strings.HasSuffix(strings.ToLower(email), "@"+EmailDomain) {
		return "must end in @" + EmailDomain
	}
	if strings.ToLower(email) != email {
		// The password is derived from the exact bytes of the address, and
		// mana-auth stores it lowercased: a mixed-case entry would derive a
		// password nobody can log in with.
		return "must be lowercase"
	}
	return ""
}

func checkMix(i int, path string, mix map[string]float64) []Problem {
	var probs []Problem
	add := func(p, msg string) {
		probs = append(probs, Problem{Path: p, Message: msg, Persona: i, space: -1})
	}
	if len(mix) == 0 {
		add(path, "must name at least one module")
		return probs
	}
	positive := false
	for _, module := range sortedKeys(mix) {
		w := mix[module]
		switch {
		case strings.TrimSpace(module) == "":
			add(path, "module names must not be blank")
		case math.IsNaN(w) || math.IsInf(w, 0):
			add(path+"."+module, "weight must be a finite number")
		case w < 0:
			add(path+"."+module, fmt.Sprintf("weight must not be negative (got %g)", w))
		case w > 0:
			positive = true
		}
	}
	if !positive {
		add(path, "at least one weight must be positive")
	}
	return probs
}
