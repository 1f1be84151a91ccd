package catalog

import (
	"bytes"
	_ "embed" // the catalog's JSON Schema
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaJSON is personas.schema.json, the one definition of a catalog's
// shape. Editors find the same file through the catalog's "$schema".
//
//go:embed personas.schema.json
var schemaJSON []byte

// SchemaJSON returns the catalog's JSON Schema, as embedded in the binary.
func SchemaJSON() []byte { return slices.Clone(schemaJSON) }

// compiledSchema is the schema compiled once, with its raw document kept to
// read the `errorMessage` annotations the validator does not know.
type compiledSchema struct {
	schema *jsonschema.Schema
	doc    any
}

var loadSchema = sync.OnceValue(func() compiledSchema {
	cs, err := compileSchema(schemaJSON, "https://mana.test/schemas/personas-catalog.json") // the schema's $id
	if err != nil {
		panic(fmt.Sprintf("catalog: embedded personas.schema.json: %v", err)) // a test compiles it
	}
	return cs
})

func compileSchema(data []byte, url string) (compiledSchema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return compiledSchema{}, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return compiledSchema{}, err
	}
	sch, err := c.Compile(url)
	if err != nil {
		return compiledSchema{}, err
	}
	return compiledSchema{schema: sch, doc: doc}, nil
}

// schemaProblems validates doc against the schema and turns each failure
// into a Problem in the catalog's path style.
func schemaProblems(doc map[string]any) []Problem {
	return loadSchema().problems(doc)
}

func (cs compiledSchema) problems(doc map[string]any) []Problem {
	err := cs.schema.Validate(any(doc))
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []Problem{{Path: "(document)", Message: err.Error(), Persona: -1, space: -1}}
	}
	r := reporter{schema: cs.doc, doc: doc}
	r.walk(verr, nil)
	return r.probs
}

type reporter struct {
	schema any
	doc    map[string]any
	probs  []Problem
}

// walk collects the leaf failures of e; parent is the location of the
// error that holds e.
func (r *reporter) walk(e *jsonschema.ValidationError, parent []string) {
	loc := e.InstanceLocation
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.Reference, *kind.AnyOf, *kind.OneOf:
		for _, cause := range e.Causes {
			r.walk(cause, loc)
		}
	case *kind.AllOf:
		// The schema's allOf lists checks in priority order: the first that
		// fails is the one worth reading.
		if len(e.Causes) > 0 {
			r.walk(e.Causes[0], loc)
		}
	case *kind.PropertyNames:
		// v6.0.3 gives a propertyNames error the validator's own location
		// slice, which later siblings overwrite. The error that holds it is
		// at the same object (the schema reaches every propertyNames through
		// a $ref, so a Reference error always encloses it) and has a copy.
		for _, cause := range e.Causes {
			r.walkName(cause, parent, k.Property)
		}
	case *kind.Required:
		for _, name := range k.Missing {
			msg := r.custom(e.SchemaURL, "properties", name, "errorMessage", "required")
			if msg == "" {
				msg = r.custom(e.SchemaURL, "errorMessage", "required")
			}
			if msg == "" {
				msg = "is required"
			}
			r.add(append(slices.Clip(loc), name), msg)
		}
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			r.add(append(slices.Clip(loc), name), "unknown field")
		}
	case *kind.UniqueItems:
		first, dup := min(k.Duplicates[0], k.Duplicates[1]), max(k.Duplicates[0], k.Duplicates[1])
		r.add(append(slices.Clip(loc), strconv.Itoa(dup)), "duplicate of "+renderPath(r.doc, append(slices.Clip(loc), strconv.Itoa(first))))
	default:
		r.add(loc, r.message(e, loc))
	}
}

// walkName reports the failures of a property name at the object holding it.
func (r *reporter) walkName(e *jsonschema.ValidationError, loc []string, name string) {
	switch e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.Reference, *kind.AllOf, *kind.AnyOf, *kind.OneOf:
		for _, cause := range e.Causes {
			r.walkName(cause, loc, name)
		}
	default:
		msg := r.message(e, loc)
		if r.customFor(e) == "" {
			msg = fmt.Sprintf("property name %q %s", name, msg)
		}
		r.add(loc, msg)
	}
}

func (r *reporter) add(loc []string, msg string) {
	p := Problem{Path: renderPath(r.doc, loc), Message: msg, Persona: -1, space: -1, loc: loc}
	if len(loc) >= 2 {
		if i, err := strconv.Atoi(loc[1]); err == nil {
			switch loc[0] {
			case "personas":
				p.Persona = i
			case "sharedSpaces":
				p.space = i
			}
		}
	}
	r.probs = append(r.probs, p)
}

// message renders a keyword failure: the schema's errorMessage for the
// keyword if it has one, with its placeholders filled in, or a plain English
// default.
func (r *reporter) message(e *jsonschema.ValidationError, loc []string) string {
	value := describeValue(lookup(r.doc, loc))
	def, got, want := defaultMessage(e.ErrorKind, value)
	tmpl := r.customFor(e)
	if tmpl == "" {
		return def
	}
	return strings.NewReplacer("{value}", value, "{got}", got, "{want}", want).Replace(tmpl)
}

func (r *reporter) customFor(e *jsonschema.ValidationError) string {
	kw := e.ErrorKind.KeywordPath()
	if _, ok := e.ErrorKind.(*kind.Not); ok {
		kw = []string{"not"} // v6 names no keyword for not
	}
	if len(kw) == 0 {
		return ""
	}
	return r.custom(e.SchemaURL, "errorMessage", kw[0])
}

// custom reads a string at path below the schema object schemaURL points at.
func (r *reporter) custom(schemaURL string, path ...string) string {
	_, frag, _ := strings.Cut(schemaURL, "#")
	var tokens []string
	if frag = strings.TrimPrefix(frag, "/"); frag != "" {
		for _, t := range strings.Split(frag, "/") {
			tokens = append(tokens, strings.NewReplacer("~1", "/", "~0", "~").Replace(t))
		}
	}
	s, _ := lookup(r.schema, append(tokens, path...)).(string)
	return s
}

// defaultMessage says what a failed keyword wants, with the got and want
// values a custom message may quote.
func defaultMessage(k jsonschema.ErrorKind, value string) (msg, got, want string) {
	switch k := k.(type) {
	case *kind.Type:
		names := make([]string, len(k.Want))
		for i, t := range k.Want {
			names[i] = article(t)
		}
		return "must be " + strings.Join(names, " or "), k.Got, strings.Join(k.Want, ", ")
	case *kind.Enum:
		vals := make([]string, 0, len(k.Want))
		for _, v := range k.Want {
			if s, ok := v.(string); ok {
				vals = append(vals, s)
			} else if v != nil {
				vals = append(vals, describeValue(v))
			}
		}
		want = strings.Join(vals, ", ")
		return fmt.Sprintf("must be one of %s (got %s)", want, value), value, want
	case *kind.Const:
		want = describeValue(k.Want)
		return "must be " + want, value, want
	case *kind.Pattern:
		return fmt.Sprintf("must match %s", k.Want), value, k.Want
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d items (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.MinProperties:
		return fmt.Sprintf("must have at least %d entries (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.MaxProperties:
		return fmt.Sprintf("must have at most %d entries (has %d)", k.Want, k.Got), strconv.Itoa(k.Got), strconv.Itoa(k.Want)
	case *kind.Minimum:
		want = ratString(k.Want)
		return fmt.Sprintf("must be at least %s (got %s)", want, value), value, want
	case *kind.Maximum:
		want = ratString(k.Want)
		return fmt.Sprintf("must be at most %s (got %s)", want, value), value, want
	case *kind.ExclusiveMinimum:
		want = ratString(k.Want)
		return fmt.Sprintf("must be greater than %s (got %s)", want, value), value, want
	case *kind.ExclusiveMaximum:
		want = ratString(k.Want)
		return fmt.Sprintf("must be less than %s (got %s)", want, value), value, want
	case *kind.Not, *kind.FalseSchema:
		return "is not allowed", value, ""
	default:
		return k.LocalizedString(message.NewPrinter(language.English)), value, ""
	}
}

func article(jsonType string) string {
	switch jsonType {
	case "object", "array", "integer":
		return "an " + jsonType
	case "null":
		return "null"
	default:
		return "a " + jsonType
	}
}

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// describeValue renders an instance value for a message: strings quoted,
// numbers as written, anything else as JSON.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case json.Number:
		return v.String()
	case nil:
		return "null"
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(data)
	}
}

// lookup follows JSON-pointer tokens into a decoded JSON value; nil when the
// path does not exist.
func lookup(v any, tokens []string) any {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			v = c[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// renderPath turns JSON-pointer tokens (/personas/3/email) into the path
// style of the catalog's messages (personas[3].email), reading doc to tell
// array indexes from object keys.
func renderPath(doc any, tokens []string) string {
	var b strings.Builder
	v := doc
	for _, t := range tokens {
		_, isArr := v.([]any)
		_, isObj := v.(map[string]any)
		if isArr || (!isObj && isIndex(t)) {
			b.WriteString("[" + t + "]")
		} else {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(t)
		}
		v = lookup(v, []string{t})
	}
	if b.Len() == 0 {
		return "(document)"
	}
	return b.String()
}

func isIndex(t string) bool {
	_, err := strconv.Atoi(t)
	return err == nil && t != "" && t[0] != '-' && t[0] != '+'
}
