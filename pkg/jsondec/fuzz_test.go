package jsondec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
)

// strictValid is RFC 8259 validity: encoding/json's json.Valid, which also
// accepts invalid UTF-8 and lone surrogate escapes, narrowed to exclude
// those, and to the reader's nesting limit.
func strictValid(b []byte) bool {
	return json.Valid(b) && utf8.Valid(b) && !hasLoneSurrogate(b) && depth(b) <= jsondec.MaxDepth
}

// hasLoneSurrogate reports a \u escape of a surrogate not in a pair, in a
// document json.Valid accepts.
func hasLoneSurrogate(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch {
		case !in:
			in = b[i] == '"'
		case b[i] == '"':
			in = false
		case b[i] == '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hexRune(b[i+2 : i+6])
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return true
			case r >= 0xD800 && r <= 0xDBFF:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return true
				}
				lo := hexRune(b[i+8 : i+12])
				if lo < 0xDC00 || lo > 0xDFFF {
					return true
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return false
}

func hexRune(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// depth is the deepest nesting of a document json.Valid accepts.
func depth(b []byte) int {
	in, d, deepest := false, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == '[' || c == '{'):
			d++
			deepest = max(deepest, d)
		case !in && (c == ']' || c == '}'):
			d--
		}
	}
	return deepest
}

// check is the property both the fuzz target and the random test hold the
// reader to.
func check(t *testing.T, in []byte) {
	valid := strictValid(in)

	// Skip+End agrees with encoding/json (narrowed to RFC 8259).
	skipErr := skipAll(bytes.NewReader(in))
	if valid {
		require.NoError(t, skipErr, "valid JSON refused: %q", in)
	} else {
		require.Error(t, skipErr, "invalid JSON accepted: %q", in)
		var se *jsondec.SyntaxError
		require.ErrorAs(t, skipErr, &se)
		require.GreaterOrEqual(t, se.Offset, int64(0))
		require.LessOrEqual(t, se.Offset, int64(len(in)))
	}

	// The same result a byte at a time.
	require.Equal(t, skipErr, skipAll(iotest.OneByteReader(bytes.NewReader(in))), "%q", in)

	// A schema walk never panics, and fails exactly when the JSON is bad
	// (or stops at an array's maximum).
	var p errs.Problems
	d := jsondec.New(bytes.NewReader(in), &p)
	walk(d, "", 0)
	walkErr := d.End()
	switch {
	case errors.Is(walkErr, jsondec.ErrStopped):
	case valid:
		require.NoError(t, walkErr, "%q", in)
	default:
		require.Error(t, walkErr, "%q", in)
	}
	require.LessOrEqual(t, len(p.List()), errs.MaxProblems)

	// Strings and numbers decode as encoding/json decodes them.
	if valid {
		trimmed := bytes.TrimLeft(in, " \t\r\n")
		switch {
		case trimmed[0] == '"':
			var want string
			require.NoError(t, json.Unmarshal(in, &want))
			d := jsondec.New(bytes.NewReader(in), nil)
			got, ok := d.String("", len(in))
			require.True(t, ok)
			require.NoError(t, d.End())
			require.Equal(t, want, got, "%q", in)
		case trimmed[0] == '-' || trimmed[0] >= '0' && trimmed[0] <= '9':
			var want float64
			werr := json.Unmarshal(in, &want)
			d := jsondec.New(bytes.NewReader(in), nil)
			got, ok := d.Number("")
			require.NoError(t, d.End())
			if len(bytes.TrimSpace(in)) <= 1024 {
				require.Equal(t, werr == nil, ok, "%q", in)
				require.Equal(t, want, got, "%q", in)
			}
		}
	}
}

// seeds are inputs of the tests, for the fuzz corpus and the random test.
var seeds = []string{
	``, ` `, `null`, `true`, `false`, `0`, `-0`, `1.5e-3`, `01`, `1.`, `.5`, `+1`, `-`, `1e`, `NaN`,
	`""`, `"abc"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\uD83D"`, `"\uDE00"`, `"\uD83Dx"`,
	"\"\xed\xa0\x80\"", "\"\xf4\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"", "\"\xc0\xaf\"", "\"\x01\"", "\"\xff\"",
	`{}`, `[]`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `[1 2]`, `{} {}`, `[1}`,
	`{"s":"abcdefghijkl","i":5.0,"n":1e3,"b":true,"k":[1,{"x":"y"}],"o":{"s":1,"i":"x"},"a":[{},"abcdef",{"i":4.5},"x",{}]}`,
	`{"actions":[{"tickId":"t","seq":1,"toolName":"x","result":"ok","latencyMs":5}]}`,
	`{"i":1,"i":2,"s":null,"s":"x"}`, `{"a":[1,2,3,4,5,6]}`, `{"o":{"o":{"o":{"i":1e999}}}}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
}

func FuzzReader(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		check(t, in)
	})
}

// TestRandomDocuments runs the fuzz property on mutations of the seeds
// (deterministic, so it runs in every go test).
func TestRandomDocuments(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]:,"\ u0123456789abcdefABCDEF.eE+-tfnrl` + "\x00\x1f\x7f\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80")
	for range 20_000 {
		in := []byte(seeds[rng.IntN(len(seeds))])
		for range rng.IntN(4) {
			switch k := rng.IntN(3); {
			case k == 0 || len(in) == 0: // insert
				i := rng.IntN(len(in) + 1)
				in = append(in[:i:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, in[i:]...)...)
			case k == 1: // delete
				i := rng.IntN(len(in))
				in = append(in[:i:i], in[i+1:]...)
			default: // replace
				in[rng.IntN(len(in))] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		check(t, in)
	}
}
