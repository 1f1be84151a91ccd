package jsonin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/jsonin"
)

func TestHasCaseVariant(t *testing.T) {
	t.Parallel()
	names := []string{"actions", "tickId", "toolName"}
	cases := map[string]bool{
		`{"actions":[{"tickId":"t","toolName":"x"}]}`: false,
		`{"ACTIONS":[]}`:                                      true,
		`{"actions":[{"TickId":"t"}]}`:                        true,
		`{"actions":[{"tickid" : "t"}]}`:                      true,
		`{"actions":[{"note":"TickId","other":"tickID"}]}`:    false, // values, not keys
		`{"actions":[{"x":"a\"TickId\":"}]}`:                  false, // inside a string
		`{"act\u0069ons":[]}`:                                 true,  // escaped key: slow path
		`{"unrelated":1,"actions":[{"tickId":"TICKID:"}]}`:    false,
		`{"actions":[{"tickId":"t","extraField":"ignored"}]}`: false,
	}
	for body, want := range cases {
		require.Equal(t, want, jsonin.HasCaseVariant([]byte(body), names...), body)
	}
}

type problems []string

func (p *problems) Add(field, format string, _ ...any) { *p = append(*p, field+": "+format) }

func TestIntegers(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{ // body → accepted
		`{"n":5}`: true, `{"n":5.0}`: true, `{"n":1e1}`: true, `{"n":-0}`: true,
		`{"n":4.5}`: false, `{"n":"5"}`: false, `{"n":1e400}`: false, `{"n":true}`: false,
		`{"n":99999999999999999999}`: false, `{"n":11}`: false, `{"n":-1}`: false,
	}
	for body, ok := range cases {
		var p problems
		obj, isObj, err := jsonin.ParseObject([]byte(body), &p)
		require.NoError(t, err, body)
		require.True(t, isObj, body)
		obj.Int("n", -0, 10)
		require.Equal(t, ok, len(p) == 0, "%s: %v", body, p)
	}
}
