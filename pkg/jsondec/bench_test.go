package jsondec_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/errs"
)

// wireAction is the struct the handlers' goccy fast path decodes into.
type wireAction struct {
	TickID       *string `json:"tickId"`
	Seq          *int    `json:"seq"`
	ToolName     *string `json:"toolName"`
	InputHash    *string `json:"inputHash"`
	Result       *string `json:"result"`
	ErrorMessage *string `json:"errorMessage"`
	LatencyMs    *int    `json:"latencyMs"`
}

type wireBatch struct {
	Actions []wireAction `json:"actions"`
}

// actionsBatch is a realistic batch of 20 rows.
func actionsBatch() []byte {
	var b bytes.Buffer
	b.WriteString(`{"actions":[`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		errMsg := "null"
		result := "ok"
		if i%5 == 4 {
			result = "error"
			errMsg = `"tool timed out after 30s: upstream \"calendar\" did not answer"`
		}
		b.WriteString(`{"tickId":"tick-2024-05-01T10:00:00Z-persona-42","seq":` + strconv.Itoa(i) +
			`,"toolName":"calendar.list_events","inputHash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"` +
			`,"result":"` + result + `","errorMessage":` + errMsg + `,"latencyMs":` + strconv.Itoa(100+i*7) + `}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func BenchmarkActionsBatch(b *testing.B) {
	body := actionsBatch()
	b.Run("jsondec", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var p errs.Problems
			rows, err := readActions(bytes.NewReader(body), &p, 500)
			if err != nil || len(rows) != 20 || p.Len() != 0 {
				b.Fatal(err, len(rows), p.List())
			}
		}
	})
	b.Run("jsondec_here", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var p errs.Problems
			rows, err := readActionsHere(bytes.NewReader(body), &p, 500)
			if err != nil || len(rows) != 20 || p.Len() != 0 {
				b.Fatal(err, len(rows), p.List())
			}
		}
	})
	b.Run("goccy", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var batch wireBatch
			if err := gojson.Unmarshal(body, &batch); err != nil || len(batch.Actions) != 20 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var batch wireBatch
			if err := json.Unmarshal(body, &batch); err != nil || len(batch.Actions) != 20 {
				b.Fatal(err)
			}
		}
	})
}

func TestActionsBatchAgrees(t *testing.T) {
	t.Parallel()
	body := actionsBatch()
	var p errs.Problems
	rows, err := readActions(bytes.NewReader(body), &p, 500)
	require.NoError(t, err)
	var batch wireBatch
	require.NoError(t, json.Unmarshal(body, &batch))
	require.Len(t, rows, len(batch.Actions))
	for i, w := range batch.Actions {
		r := rows[i]
		require.Equal(t, *w.TickID, r.TickID)
		require.Equal(t, int64(*w.Seq), *r.Seq)
		require.Equal(t, *w.ToolName, r.ToolName)
		require.Equal(t, w.InputHash, r.InputHash)
		require.Equal(t, *w.Result, r.Result)
		require.Equal(t, w.ErrorMessage, r.ErrorMessage)
		require.Equal(t, int64(*w.LatencyMs), *r.LatencyMs)
	}
}
