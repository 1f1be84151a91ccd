package jsondec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
	"github.com/mana/personas/pkg/jsondec"
)

// readers wraps an input in the readers every case is run through, so that
// tokens split across reads are covered.
var readers = map[string]func(string) io.Reader{
	"whole":   func(s string) io.Reader { return strings.NewReader(s) },
	"onebyte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
	"half":    func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	"dataerr": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
}

func skipAll(r io.Reader) error {
	d := jsondec.New(r, nil)
	d.Skip()
	return d.End()
}

func problems(p *errs.Problems) map[string]string {
	m := map[string]string{}
	for _, fe := range p.List() {
		m[fe.Field] = fe.Message
	}
	return m
}

func TestSyntax(t *testing.T) {
	t.Parallel()
	// err is "" for valid JSON, else a part of the SyntaxError's message.
	cases := []struct {
		name, in, err string
	}{
		{"Empty", "", "empty body"},
		{"Spaces", " \t\r\n", "empty body"},
		{"Null", "null", ""},
		{"True", " true ", ""},
		{"False", "false", ""},
		{"BadLiteral", "nul", "unexpected end"},
		{"BadLiteral2", "nulL", "invalid literal"},
		{"TrueX", "truex", "after top-level value"},
		{"Zero", "0", ""},
		{"NegZero", "-0", ""},
		{"Int", "-1234567890", ""},
		{"Frac", "1.5", ""},
		{"Exp", "1e10", ""},
		{"ExpSign", "1E+10", ""},
		{"ExpNeg", "1.25e-10", ""},
		{"LeadingZero", "01", "after top-level value"},
		{"LeadingZeroNeg", "-01", "after top-level value"},
		{"Plus", "+1", "unexpected character"},
		{"DotFirst", ".5", "unexpected character"},
		{"DotLast", "1.", "end of input in number"},
		{"DotNoDigit", "1.e5", "digit after decimal point"},
		{"MinusAlone", "-", "end of input in number"},
		{"MinusLetter", "-a", "digit after '-'"},
		{"ExpAlone", "1e", "end of input in number"},
		{"ExpSignAlone", "1e+", "end of input in number"},
		{"ExpLetter", "1ex", "digit in exponent"},
		{"NaN", "NaN", "unexpected character"},
		{"Infinity", "-Infinity", "digit after '-'"},
		{"Hex", "0x10", "after top-level value"},
		{"String", `"abc"`, ""},
		{"Escapes", `"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"`, ""},
		{"BadEscape", `"\a"`, "invalid escape"},
		{"BadHex", `"\u12G4"`, "invalid \\u escape"},
		{"ShortHex", `["\u12"]`, "invalid \\u escape"},
		{"LoneHigh", `"\uD83D"`, "lone surrogate"},
		{"LoneHighThenChar", `"\uD83Dx"`, "lone surrogate"},
		{"HighHigh", `"\uD83D\uD83D"`, "lone surrogate"},
		{"LoneLow", `"\uDE00"`, "lone surrogate"},
		{"LoneInKey", `{"\uDE00":1}`, "lone surrogate"},
		{"LoneInSkipped", `[{"a":"\uD800"}]`, "lone surrogate"},
		{"NulEscape", `"\u0000"`, ""},
		{"ControlChar", "\"a\x01b\"", "control character"},
		{"RawNewline", "\"a\nb\"", "control character"},
		{"Tab", "\"a\tb\"", "control character"},
		{"Unterminated", `"abc`, "end of input in string"},
		{"UTF8", "\"é中😀\"", ""},
		{"UTF8Max", "\"\xf4\x8f\xbf\xbf\"", ""},           // U+10FFFF
		{"UTF8AboveMax", "\"\xf4\x90\x80\x80\"", "UTF-8"}, // U+110000
		{"UTF8Overlong2", "\"\xc0\xaf\"", "UTF-8"},
		{"UTF8Overlong3", "\"\xe0\x80\xaf\"", "UTF-8"},
		{"UTF8Overlong4", "\"\xf0\x80\x80\xaf\"", "UTF-8"},
		{"UTF8Surrogate", "\"\xed\xa0\x80\"", "UTF-8"},
		{"UTF8Truncated", "\"\xe4\xb8\"", "UTF-8"},
		{"UTF8TruncatedEOF", "\"\xe4\xb8", "UTF-8"},
		{"UTF8Continuation", "\"\x80\"", "UTF-8"},
		{"UTF8FFFD", "\"\xef\xbf\xbd\"", ""},
		{"UTF8InKey", "{\"\xff\":1}", "UTF-8"},
		{"UTF8Outside", "\xff", "unexpected character"},
		{"BOM", "\xef\xbb\xbf{}", "unexpected character"},
		{"EmptyObject", "{}", ""},
		{"EmptyArray", "[ ]", ""},
		{"Nested", `{"a":[1,{"b":null},"c"],"d":{}}`, ""},
		{"TrailingCommaArray", "[1,]", "unexpected character ']'"},
		{"TrailingCommaObject", `{"a":1,}`, "expected string for object key"},
		{"MissingColon", `{"a" 1}`, "expected ':'"},
		{"MissingComma", `[1 2]`, "expected ',' or ']'"},
		{"MissingCommaObject", `{"a":1 "b":2}`, "expected ',' or '}'"},
		{"NumberKey", `{1:2}`, "expected string for object key"},
		{"Unclosed", `[1,2`, "unexpected end of input"},
		{"UnclosedObject", `{"a":1`, "unexpected end of input"},
		{"Mismatched", `[1}`, "expected ',' or ']'"},
		{"TwoValues", `{} {}`, "after top-level value"},
		{"Depth64", strings.Repeat("[", 64) + strings.Repeat("]", 64), ""},
		{"Depth65", strings.Repeat("[", 65) + strings.Repeat("]", 65), "nesting deeper than 64"},
		{"Depth65Objects", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), "nesting deeper than 64"},
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				err := skipAll(mk(c.in))
				if c.err == "" {
					require.NoError(t, err)
					return
				}
				var se *jsondec.SyntaxError
				require.ErrorAs(t, err, &se)
				require.Contains(t, se.Msg, c.err)
				require.Equal(t, json.Valid([]byte(c.in)) && !strings.Contains(c.err, "surrogate") &&
					!strings.Contains(c.err, "UTF-8") && !strings.Contains(c.err, "nesting"), false,
					"encoding/json disagrees")
			})
		}
	}
}

func TestSyntaxErrorOffset(t *testing.T) {
	t.Parallel()
	err := skipAll(strings.NewReader(`{"a": tru}`))
	var se *jsondec.SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, int64(6), se.Offset)
	require.Equal(t, "invalid JSON at byte 6: invalid literal (want true)", se.Error())
}

func TestString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		keep     int
		want     string
		ok       bool
		problem  bool
	}{
		{"Plain", `"abc"`, 10, "abc", true, false},
		{"Empty", `""`, 10, "", true, false},
		{"ExactKeep", `"abcd"`, 4, "abcd", true, false},
		{"Cut", `"abcdef"`, 4, "abcde", true, false},
		{"CutZero", `"abcdef"`, 0, "a", true, false},
		{"NegativeKeep", `"abcdef"`, -5, "a", true, false},
		{"CutRunes", `"éééééé"`, 2, "ééé", true, false},
		{"CutMixed", `"a中😀b\u00e9c"`, 3, "a中😀b", true, false},
		{"CutEscapes", `"\n\t\"\\xyz"`, 2, "\n\t\"", true, false},
		{"Escapes", `"\" \\ \/ \b \f \n \r \t"`, 100, "\" \\ / \b \f \n \r \t", true, false},
		{"Unicode", `"\u00e9\u4E2D\uD83D\uDE00"`, 100, "é中😀", true, false},
		{"Nul", `"a\u0000b"`, 100, "a\x00b", true, false},
		{"FFFD", "\"\xef\xbf\xbd\"", 100, "\ufffd", true, false},
		{"Max", "\"\xf4\x8f\xbf\xbf\"", 100, "\U0010FFFF", true, false},
		{"Null", `null`, 10, "", false, false},
		{"Number", `12`, 10, "", false, true},
		{"Bool", `true`, 10, "", false, true},
		{"Object", `{"a":"b"}`, 10, "", false, true},
		{"Array", `["a"]`, 10, "", false, true},
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				var p errs.Problems
				d := jsondec.New(mk(c.in), &p)
				s, ok := d.String("", c.keep)
				require.NoError(t, d.End())
				require.Equal(t, c.want, s)
				require.Equal(t, c.ok, ok)
				if c.problem {
					require.Equal(t, map[string]string{"body": "must be a string"}, problems(&p))
				} else {
					require.Zero(t, p.Len())
				}
			})
		}
	}
}

func TestStringLong(t *testing.T) {
	t.Parallel()
	for _, unit := range []string{"a", "é", `\n`, "😀", `\uD83D\uDE00`} {
		t.Run(unit, func(t *testing.T) {
			t.Parallel()
			long := `"` + strings.Repeat(unit, 100_000) + `"`
			for rname, mk := range readers {
				d := jsondec.New(mk(long), nil)
				s, ok := d.String("", 1000)
				require.NoError(t, d.End(), rname)
				require.True(t, ok)
				require.Equal(t, 1001, len([]rune(s)), rname)
				var want string
				require.NoError(t, json.Unmarshal([]byte(long), &want))
				require.Equal(t, string([]rune(want)[:1001]), s)
			}
		})
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"12", 12, true},
		{"-3", -3, true},
		{"5.0", 5, true},
		{"5.000", 5, true},
		{"1e3", 1000, true},
		{"1E+3", 1000, true},
		{"-2.5e1", -25, true},
		{"1500e-3", 0, false},
		{"15000e-3", 15, true},
		{"0.0", 0, true},
		{"0e999999999999", 0, true},
		{"0.000e-5", 0, true},
		{"123456789012345", 123456789012345, true},
		{"9007199254740992", 1 << 53, true},
		{"-9007199254740992", -(1 << 53), true},
		{"9007199254740993", 0, false},
		{"9007199254740993.0", 0, false},
		{"9.007199254740992e15", 1 << 53, true},
		{"1e16", 0, false},
		{"1e999999999999999999", 0, false},
		{"99999999999999999999", 0, false},
		{"4.5", 0, false},
		{"3.0000000000000000001", 0, false},
		{"1e-1", 0, false},
		{"1e400", 0, false},
		{`"12"`, 0, false},
		{"true", 0, false},
		{"[1]", 0, false},
		{"{}", 0, false},
		{"1" + strings.Repeat("0", 2000) + "e-2000", 0, false}, // too long to keep
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.in[:min(len(c.in), 30)]+"/"+rname, func(t *testing.T) {
				t.Parallel()
				var p errs.Problems
				d := jsondec.New(mk(`{"n":`+c.in+`}`), &p)
				var v int64
				var ok bool
				d.Object("", func(key string) { v, ok = d.Int(jsondec.Field("", key)) })
				require.NoError(t, d.End())
				require.Equal(t, c.want, v)
				require.Equal(t, c.ok, ok)
				if c.ok {
					require.Zero(t, p.Len())
				} else {
					require.Equal(t, map[string]string{"n": "must be an integer"}, problems(&p))
				}
			})
		}
	}
	t.Run("Null", func(t *testing.T) {
		t.Parallel()
		var p errs.Problems
		d := jsondec.New(strings.NewReader("null"), &p)
		_, ok := d.Int("x")
		require.False(t, ok)
		require.NoError(t, d.End())
		require.Zero(t, p.Len())
	})
}

func TestNumber(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", math.Copysign(0, -1), true},
		{"1.5", 1.5, true},
		{"-2.5e-3", -0.0025, true},
		{"1e308", 1e308, true},
		{"1e400", 0, false},
		{"-1e400", 0, false},
		{"1e-400", 0, true},
		{"123456789012345678901234567890", 123456789012345678901234567890, true},
		{"0.1", 0.1, true},
		{`"1"`, 0, false},
		{"true", 0, false},
		{"null", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			t.Parallel()
			var p errs.Problems
			d := jsondec.New(strings.NewReader(c.in), &p)
			v, ok := d.Number("")
			require.NoError(t, d.End())
			require.Equal(t, c.ok, ok)
			require.Equal(t, math.Float64bits(c.want), math.Float64bits(v))
			if !c.ok && c.in != "null" {
				require.Equal(t, map[string]string{"body": "must be a number"}, problems(&p))
			} else {
				require.Zero(t, p.Len())
			}
		})
	}
}

func TestBool(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in        string
		want, ok  bool
		isProblem bool
	}{
		{"true", true, true, false},
		{"false", false, true, false},
		{"null", false, false, false},
		{"1", false, false, true},
		{`"true"`, false, false, true},
		{"[true]", false, false, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			t.Parallel()
			var p errs.Problems
			d := jsondec.New(strings.NewReader(`{"a":{"b":`+c.in+`}}`), &p)
			var v, ok bool
			d.Object("", func(string) {
				d.Object("a", func(string) { v, ok = d.Bool("a.b") })
			})
			require.NoError(t, d.End())
			require.Equal(t, c.want, v)
			require.Equal(t, c.ok, ok)
			if c.isProblem {
				require.Equal(t, map[string]string{"a.b": "must be true or false"}, problems(&p))
			} else {
				require.Zero(t, p.Len())
			}
		})
	}
}

// action is one row of the internal API's actions batch.
type action struct {
	TickID, ToolName, Result string
	InputHash, ErrorMessage  *string
	Seq, LatencyMs           *int64
}

// readActions is the shape of a real caller: the batch of POST /actions.
func readActions(r io.Reader, p *errs.Problems, maxRows int) ([]action, error) {
	d := jsondec.New(r, p)
	var rows []action
	optString := func(path string, keep int) *string {
		if s, ok := d.String(path, keep); ok {
			return &s
		}
		return nil
	}
	optInt := func(path string) *int64 {
		if v, ok := d.Int(path); ok {
			return &v
		}
		return nil
	}
	d.Object("", func(key string) {
		if key != "actions" {
			return
		}
		_, over, _ := d.Array("actions", maxRows, func(i int) {
			row := jsondec.Index("actions", i)
			var a action
			d.Object(row, func(key string) {
				f := jsondec.Field(row, key)
				switch key {
				case "tickId":
					a.TickID, _ = d.String(f, 128)
				case "seq":
					a.Seq = optInt(f)
				case "toolName":
					a.ToolName, _ = d.String(f, 128)
				case "inputHash":
					a.InputHash = optString(f, 256)
				case "result":
					a.Result, _ = d.String(f, 16)
				case "errorMessage":
					a.ErrorMessage = optString(f, 4000)
				case "latencyMs":
					a.LatencyMs = optInt(f)
				}
			})
			rows = append(rows, a)
		})
		if over {
			p.Add("actions", "at most %d actions per request", maxRows)
		}
	})
	return rows, d.End()
}

func TestObjectPaths(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		problems map[string]string
		rows     int
	}{
		{"Good", `{"actions":[{"tickId":"t","seq":1,"toolName":"x","result":"ok","latencyMs":5.0}]}`, map[string]string{}, 1},
		{"UnknownKeysSkipped", `{"v":[1,{"a":[]}],"actions":[{"tickId":"t","extra":{"deep":[1,2,{"x":"y"}]}}]}`, map[string]string{}, 1},
		{"NullsNoProblem", `{"actions":[{"tickId":null,"seq":null,"inputHash":null}]}`, map[string]string{}, 1},
		{"NotObject", `[1]`, map[string]string{"body": "must be a JSON object"}, 0},
		{"StringRoot", `"x"`, map[string]string{"body": "must be a JSON object"}, 0},
		{"NullRoot", `null`, map[string]string{}, 0},
		{"ActionsNotArray", `{"actions":{"a":1}}`, map[string]string{"actions": "must be an array"}, 0},
		{"RowNotObject", `{"actions":[{"tickId":"a"},5,"x",{}]}`, map[string]string{
			"actions[1]": "must be a JSON object", "actions[2]": "must be a JSON object"}, 4},
		{"WrongTypes", `{"actions":[{},{"tickId":5,"seq":"1","toolName":[],"inputHash":{},"result":true,"errorMessage":1.5,"latencyMs":4.5}]}`,
			map[string]string{
				"actions[1].tickId": "must be a string", "actions[1].seq": "must be an integer",
				"actions[1].toolName": "must be a string", "actions[1].inputHash": "must be a string",
				"actions[1].result": "must be a string", "actions[1].errorMessage": "must be a string",
				"actions[1].latencyMs": "must be an integer",
			}, 2},
		{"Duplicate", `{"actions":[{"tickId":"a","tickId":"b","seq":1,"seq":"x"}]}`, map[string]string{
			"actions[0].tickId": "appears more than once", "actions[0].seq": "appears more than once"}, 1},
		{"DuplicateArray", `{"actions":[],"actions":[{}]}`, map[string]string{"actions": "appears more than once"}, 0},
		{"DuplicateOfNull", `{"actions":null,"actions":[{}]}`, map[string]string{"actions": "appears more than once"}, 0},
		{"DuplicateUnknownIgnored", `{"x":1,"x":2,"actions":[]}`, map[string]string{}, 0},
		{"SameKeyOtherObject", `{"actions":[{"tickId":"a"},{"tickId":"b"}]}`, map[string]string{}, 2},
	}
	for _, c := range cases {
		for rname, mk := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				var p errs.Problems
				rows, err := readActions(mk(c.in), &p, 500)
				require.NoError(t, err)
				require.Equal(t, c.problems, problems(&p))
				require.Len(t, rows, c.rows)
			})
		}
	}
}

func TestDuplicateKeepsFirst(t *testing.T) {
	t.Parallel()
	var p errs.Problems
	rows, err := readActions(strings.NewReader(`{"actions":[{"tickId":"first","tickId":"second"}]}`), &p, 10)
	require.NoError(t, err)
	require.Equal(t, "first", rows[0].TickID)
}

func TestDuplicateManyKeys(t *testing.T) {
	t.Parallel()
	// A generic map: past 16 keys the reader switches to a set.
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	b.WriteString(`"kaa":2,"kzc":3}`)
	var p errs.Problems
	d := jsondec.New(strings.NewReader(b.String()), &p)
	got := map[string]int64{}
	d.Object("m", func(key string) { got[key], _ = d.Int(jsondec.Field("m", key)) })
	require.NoError(t, d.End())
	require.Len(t, got, 100)
	require.Equal(t, int64(1), got["kaa"])
	require.Equal(t, map[string]string{"m.kaa": "appears more than once", "m.kzc": "appears more than once"}, problems(&p))
}

func TestLongKeyCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 10_000)
	d := jsondec.New(strings.NewReader(`{"`+long+`":1}`), nil)
	var keys []string
	d.Object("", func(key string) { keys = append(keys, key) })
	require.NoError(t, d.End())
	require.Equal(t, []string{long[:jsondec.KeyKeep+1]}, keys)
}

func TestArray(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in   string
		max        int
		n          int
		over, ok   bool
		err        error
		problemMsg string
	}{
		{"Empty", `[]`, 3, 0, false, true, nil, ""},
		{"UnderMax", `[1,2]`, 3, 2, false, true, nil, ""},
		{"AtMax", `[1,2,3]`, 3, 3, false, true, nil, ""},
		{"OverMax", `[1,2,3,4]`, 3, 3, true, true, jsondec.ErrStopped, ""},
		{"OverMaxGarbageAfter", `[1,2,3,4,,,,`, 3, 3, true, true, jsondec.ErrStopped, ""},
		{"MaxZero", `[1]`, 0, 0, true, true, jsondec.ErrStopped, ""},
		{"NoMax", `[1,2,3,4]`, -1, 4, false, true, nil, ""},
		{"Null", `null`, 3, 0, false, false, nil, ""},
		{"Object", `{"a":[1]}`, 3, 0, false, false, nil, "must be an array"},
		{"String", `"[]"`, 3, 0, false, false, nil, "must be an array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var p errs.Problems
			d := jsondec.New(strings.NewReader(c.in), &p)
			var seen []int
			n, over, ok := d.Array("list", c.max, func(i int) {
				seen = append(seen, i)
				if i%2 == 0 {
					d.Skip()
				} // odd elements are left for Array to skip
			})
			require.Equal(t, c.n, n)
			require.Equal(t, c.over, over)
			require.Equal(t, c.ok, ok)
			require.Len(t, seen, c.n)
			err := d.End()
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
			}
			if c.problemMsg != "" {
				require.Equal(t, map[string]string{"list": c.problemMsg}, problems(&p))
			} else {
				require.Zero(t, p.Len())
			}
		})
	}
}

// failAfter returns data, then err, and fails the test if read again after
// the error.
type failAfter struct {
	data []byte
	err  error
}

func (f *failAfter) Read(b []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(b, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestStopReadsNoFurther(t *testing.T) {
	t.Parallel()
	// Everything after the 4th element is poison: reading it is an error.
	r := io.MultiReader(strings.NewReader(`{"actions":[{},{},{},{}`), iotest.ErrReader(errors.New("read too far")))
	var p errs.Problems
	rows, err := readActions(r, &p, 3)
	require.ErrorIs(t, err, jsondec.ErrStopped)
	require.Len(t, rows, 3)
	require.Equal(t, map[string]string{"actions": "at most 3 actions per request"}, problems(&p))
}

type customErr struct{}

func (customErr) Error() string { return "custom" }

func TestReaderErrorPassthrough(t *testing.T) {
	t.Parallel()
	t.Run("Custom", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{``, `{"actions":[{"tickId":"abc`, `{"actions":[{"tickId":12`, `{"a":[[[tr`, `{} `, `{}`} {
			var p errs.Problems
			_, err := readActions(&failAfter{data: []byte(in), err: customErr{}}, &p, 10)
			var ce customErr
			require.ErrorAs(t, err, &ce, in)
			require.Equal(t, customErr{}, err, "returned as is")
		}
	})
	t.Run("MaxBytes", func(t *testing.T) {
		t.Parallel()
		body := `{"actions":[` + strings.Repeat(`{"tickId":"t"},`, 1000) + `{}]}`
		r := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(body)), 1000)
		var p errs.Problems
		_, err := readActions(r, &p, 5000)
		var mbe *http.MaxBytesError
		require.ErrorAs(t, err, &mbe)
		require.Equal(t, int64(1000), mbe.Limit)
	})
	t.Run("MaxBytesTrailing", func(t *testing.T) {
		t.Parallel()
		body := `{}` + strings.Repeat(" ", 2000)
		r := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(body)), 1000)
		var mbe *http.MaxBytesError
		require.ErrorAs(t, skipAll(r), &mbe)
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		err := skipAll(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader(`{"a":1}`))))
		require.ErrorIs(t, err, iotest.ErrTimeout)
	})
	t.Run("NoProgress", func(t *testing.T) {
		t.Parallel()
		require.ErrorIs(t, skipAll(zeroReader{}), io.ErrNoProgress)
	})
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestTerminalIsNoOp(t *testing.T) {
	t.Parallel()
	var p errs.Problems
	d := jsondec.New(strings.NewReader(`{"a":1,"b":x,"c":"s"}`), &p)
	var got []string
	ok := d.Object("", func(key string) {
		got = append(got, key)
		s, ok := d.String(key, 10)
		require.Empty(t, s)
		require.False(t, ok)
	})
	require.False(t, ok)
	require.Equal(t, []string{"a", "b"}, got)
	var se *jsondec.SyntaxError
	require.ErrorAs(t, d.Err(), &se)
	// Everything is a no-op now.
	v, ok := d.Int("x")
	require.Zero(t, v)
	require.False(t, ok)
	n, over, ok := d.Array("x", 1, func(int) { t.Fatal("called") })
	require.Zero(t, n)
	require.False(t, over || ok)
	require.False(t, d.Object("x", func(string) { t.Fatal("called") }))
	d.Skip()
	require.ErrorAs(t, d.End(), &se)
	require.Equal(t, map[string]string{"a": "must be a string"}, problems(&p))
}

func TestMisuse(t *testing.T) {
	t.Parallel()
	t.Run("TwoValues", func(t *testing.T) {
		t.Parallel()
		d := jsondec.New(strings.NewReader(`{"a":1,"b":2}`), nil)
		d.Object("", func(key string) { d.Int(key); d.Int(key) })
		require.ErrorIs(t, d.End(), jsondec.ErrMisuse)
	})
	t.Run("AfterDocument", func(t *testing.T) {
		t.Parallel()
		d := jsondec.New(strings.NewReader(`1`), nil)
		d.Int("")
		d.Int("")
		require.ErrorIs(t, d.End(), jsondec.ErrMisuse)
	})
	t.Run("EndInside", func(t *testing.T) {
		t.Parallel()
		d := jsondec.New(strings.NewReader(`[1]`), nil)
		d.Array("", 5, func(int) { _ = d.End() })
		require.ErrorIs(t, d.Err(), jsondec.ErrMisuse)
	})
}

func TestPaths(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a", jsondec.Field("", "a"))
	require.Equal(t, "a.b", jsondec.Field("a", "b"))
	require.Equal(t, "items[3].tickId", jsondec.Field(jsondec.Index("items", 3), "tickId"))
	require.Equal(t, "[0]", jsondec.Index("", 0))
}

func TestProblemsCapped(t *testing.T) {
	t.Parallel()
	var p errs.Problems
	body := `{"actions":[` + strings.Repeat(`{"tickId":1},`, 199) + `{"tickId":1}]}`
	_, err := readActions(strings.NewReader(body), &p, 500)
	require.NoError(t, err)
	require.Equal(t, 200, p.Len())
	require.Len(t, p.List(), errs.MaxProblems)
}

func TestDeepNesting(t *testing.T) {
	t.Parallel()
	for _, unit := range []string{"[", `{"a":`, `[{"a":`} {
		t.Run(unit, func(t *testing.T) {
			t.Parallel()
			r := &repeatReader{unit: []byte(unit), n: 1_000_000}
			err := skipAll(r)
			var se *jsondec.SyntaxError
			require.ErrorAs(t, err, &se)
			require.Contains(t, se.Msg, "nesting deeper than 64")
			// The schema walk stops there too.
			r = &repeatReader{unit: []byte(unit), n: 1_000_000}
			d := jsondec.New(r, nil)
			walk(d, "", 0)
			require.ErrorAs(t, d.End(), &se)
		})
	}
}

// walk is a generic schema walk: a key's first letter says what its value
// should be; other values are left to the reader to skip.
func walk(d *jsondec.Reader, path string, depth int) {
	d.Object(path, func(key string) {
		f := jsondec.Field(path, key)
		switch {
		case key == "":
			d.Skip()
		case key[0] == 's':
			d.String(f, 8)
		case key[0] == 'i':
			d.Int(f)
		case key[0] == 'n':
			d.Number(f)
		case key[0] == 'b':
			d.Bool(f)
		case key[0] == 'k':
			d.Skip()
		case key[0] == 'a' || key[0] == '[' || key[0] == '{':
			d.Array(f, 4, func(i int) {
				if i%2 == 0 {
					walk(d, jsondec.Index(f, i), depth+1)
				} else {
					d.String(jsondec.Index(f, i), 3)
				}
			})
		case key[0] == 'o' || key[0] == '"':
			walk(d, f, depth+1)
		}
	})
}

// repeatReader yields prefix, then unit n times, then suffix, without
// holding the whole body.
type repeatReader struct {
	prefix, unit, suffix []byte
	n                    int
	i                    int // position in the current part
}

func (r *repeatReader) Read(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		var part []byte
		switch {
		case len(r.prefix) > 0:
			part = r.prefix
		case r.n > 0:
			part = r.unit
		case len(r.suffix) > 0:
			part = r.suffix
		default:
			if written == 0 {
				return 0, io.EOF
			}
			return written, nil
		}
		k := copy(b[written:], part[r.i:])
		written += k
		r.i += k
		if r.i == len(part) {
			r.i = 0
			switch {
			case len(r.prefix) > 0:
				r.prefix = nil
			case r.n > 0:
				r.n--
			default:
				r.suffix = nil
			}
		}
	}
	return written, nil
}

func TestRepeatReader(t *testing.T) {
	t.Parallel()
	b, err := io.ReadAll(iotest.HalfReader(&repeatReader{prefix: []byte("<"), unit: []byte("ab"), suffix: []byte(">"), n: 3}))
	require.NoError(t, err)
	require.Equal(t, "<ababab>", string(b))
}

// TestMemoryFlat is not parallel: it measures the process's allocations.
func TestMemoryFlat(t *testing.T) { //nolint:paralleltest // measures global MemStats
	const size = 16 << 20
	type body struct {
		prefix, unit, suffix string
	}
	reps := func(b body) int { return size / len(b.unit) }
	cases := []struct {
		name string
		body body
		read func(d *jsondec.Reader)
		err  error
	}{
		{"HugeStringSkipped", body{`"`, "abcdefgh", `"`}, func(d *jsondec.Reader) { d.Skip() }, nil},
		{"HugeStringKept", body{`"`, "abcdéfg\\n", `"`}, func(d *jsondec.Reader) { d.String("", 4000) }, nil},
		{"HugeKey", body{`{"`, "abcdefgh", `":1}`}, func(d *jsondec.Reader) { walk(d, "", 0) }, nil},
		{"Ones", body{`[`, "1,", `1]`}, func(d *jsondec.Reader) { d.Skip() }, nil},
		{"OnesInts", body{`[`, "1,", `1]`}, func(d *jsondec.Reader) {
			d.Array("", -1, func(int) { d.Int("n") }) // a path per element would be the caller's allocation
		}, nil},
		{"HugeNumber", body{`[1`, "00000000", `]`}, func(d *jsondec.Reader) {
			d.Array("", -1, func(i int) { d.Int(jsondec.Index("", i)) })
		}, nil},
		{"EmptyObjects", body{`{"actions":[`, "{},", `{}]}`}, func(d *jsondec.Reader) {
			d.Object("", func(string) {
				d.Array("actions", 500, func(int) { d.Object("", func(string) {}) })
			})
		}, jsondec.ErrStopped},
		{"EmptyObjectsSkipped", body{`{"actions":[`, "{},", `{}]}`}, func(d *jsondec.Reader) { d.Skip() }, nil},
		{"ManyUnknownKeys", body{`{`, `"kkkkkk":1,`, `"k":1}`}, func(d *jsondec.Reader) {
			d.Object("", func(key string) {})
		}, nil},
		{"ManyDuplicates", body{`{`, `"iiiiii":1,`, `"k":1}`}, func(d *jsondec.Reader) { walk(d, "", 0) }, nil},
		{"Whitespace", body{`{}`, "        ", ``}, func(d *jsondec.Reader) { d.Skip() }, nil},
		{"Escapes", body{`"`, `\u00e9\n`, `"`}, func(d *jsondec.Reader) { d.String("", 100) }, nil},
		{"NestedArrays", body{`[`, `[[[[1]]]],`, `1]`}, func(d *jsondec.Reader) {
			d.Array("", -1, func(int) { d.Array("", -1, func(int) {}) })
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &repeatReader{prefix: []byte(c.body.prefix), unit: []byte(c.body.unit), suffix: []byte(c.body.suffix), n: reps(c.body)}
			runtime_GC()
			before := memStats()
			d := jsondec.New(r, nil)
			c.read(d)
			err := d.End()
			after := memStats()
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
				require.Zero(t, r.n, "body read to the end")
			}
			grew := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: allocated %d KiB reading a %d MiB body", c.name, grew>>10, size>>20)
			require.Less(t, grew, uint64(2<<20), "allocation must not grow with the body")
			require.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(2<<20))
		})
	}
}

func TestAgainstEncodingJSON(t *testing.T) {
	t.Parallel()
	// Values decoded by the reader match encoding/json's.
	cases := []string{
		`"plain"`, `"\u00e9\u4e2d\ud83d\ude00\/\b\f\n\r\t\"\\"`, "\"mixed é \\n 中 😀\"",
		`0`, `-0.5`, `1e-7`, `123456789.123456789`, `2.2250738585072014e-308`, `1.7976931348623157e308`,
	}
	for _, in := range cases {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			var want any
			require.NoError(t, json.Unmarshal([]byte(in), &want))
			d := jsondec.New(iotest.OneByteReader(strings.NewReader(in)), nil)
			var got any
			if in[0] == '"' {
				got, _ = d.String("", 1000)
			} else {
				got, _ = d.Number("")
			}
			require.NoError(t, d.End())
			require.Equal(t, want, got)
		})
	}
}

func TestEquivalentAcrossReaders(t *testing.T) {
	t.Parallel()
	// A larger document crossing many buffer refills decodes the same way
	// whatever the read sizes.
	var b bytes.Buffer
	b.WriteString(`{"actions":[`)
	for i := range 500 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"tickId":"tick-\u00e9-` + strings.Repeat("x", i%40) + `","seq":` + string(rune('0'+i%10)) +
			`,"toolName":"tool😀","inputHash":null,"result":"ok","errorMessage":"` + strings.Repeat("é\\n", i%300) +
			`","latencyMs":1e2,"extra":[1.5e3,{"z":"\ud83d\ude00"}]}`)
	}
	b.WriteString(`]}`)
	var base []action
	for rname, mk := range readers {
		var p errs.Problems
		rows, err := readActions(mk(b.String()), &p, 500)
		require.NoError(t, err, rname)
		require.Zero(t, p.Len())
		require.Len(t, rows, 500)
		if base == nil {
			base = rows
		}
		require.Equal(t, base, rows, rname)
	}
	require.Equal(t, strings.Repeat("é\n", 299), *base[299].ErrorMessage)
	require.Equal(t, int64(100), *base[7].LatencyMs)
}

// readActionsHere is readActions with the path "" (here) everywhere: the
// Reader builds the paths, only for problems.
func readActionsHere(r io.Reader, p *errs.Problems, maxRows int) ([]action, error) {
	d := jsondec.New(r, p)
	var rows []action
	optString := func(keep int) *string {
		if s, ok := d.String("", keep); ok {
			return &s
		}
		return nil
	}
	optInt := func() *int64 {
		if v, ok := d.Int(""); ok {
			return &v
		}
		return nil
	}
	d.Object("", func(key string) {
		if key != "actions" {
			return
		}
		_, over, _ := d.Array("", maxRows, func(int) {
			var a action
			d.Object("", func(key string) {
				switch key {
				case "tickId":
					a.TickID, _ = d.String("", 128)
				case "seq":
					a.Seq = optInt()
				case "toolName":
					a.ToolName, _ = d.String("", 128)
				case "inputHash":
					a.InputHash = optString(256)
				case "result":
					a.Result, _ = d.String("", 16)
				case "errorMessage":
					a.ErrorMessage = optString(4000)
				case "latencyMs":
					a.LatencyMs = optInt()
				}
			})
			rows = append(rows, a)
		})
		if over {
			d.Problem("", "at most %d actions per request", maxRows)
		}
	})
	return rows, d.End()
}

func TestHerePaths(t *testing.T) {
	t.Parallel()
	// Every body of the path tests reports the same problems with "".
	bodies := []string{
		`{"actions":[{},{"tickId":5,"seq":"1","toolName":[],"inputHash":{},"result":true,"errorMessage":1.5,"latencyMs":4.5}]}`,
		`{"actions":[{"tickId":"a","tickId":"b","seq":1,"seq":"x"}]}`,
		`{"actions":[{"tickId":"a"},5,"x",{}]}`,
		`{"actions":{"a":1}}`, `[1]`, `"x"`, `{"actions":[],"actions":[{}]}`,
		`{"actions":[{},{},{},{}]}`,
	}
	for _, body := range bodies {
		var p1, p2 errs.Problems
		rows1, err1 := readActions(strings.NewReader(body), &p1, 3)
		rows2, err2 := readActionsHere(strings.NewReader(body), &p2, 3)
		require.Equal(t, err1, err2, body)
		require.Equal(t, rows1, rows2, body)
		require.NotZero(t, p1.Len(), body)
		require.Equal(t, p1.List(), p2.List(), body)
	}
	// Nested: explicit paths and here mix.
	var p errs.Problems
	d := jsondec.New(strings.NewReader(`{"a":[{"b":{"c":[1,"x"]}}],"d":{"e":[true]}}`), &p)
	d.Object("", func(string) {
		d.Array("", -1, func(int) {
			d.Object("", func(string) {
				d.Object("", func(string) {
					d.Array("custom", -1, func(int) { d.Int("") })
				})
			})
		})
	})
	require.NoError(t, d.End())
	require.Equal(t, map[string]string{"custom[1]": "must be an integer", "d": "must be an array"}, problems(&p))
}
