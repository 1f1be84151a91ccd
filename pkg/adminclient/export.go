package adminclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ExportFilter narrows GET /export/{kind}; empty fields are left out. From
// and To are RFC 3339 times or days (YYYY-MM-DD), checked by the server.
type ExportFilter struct {
	From, To string
	Persona  string
	Module   string
	Format   string // "ndjson" (the server's default) or "csv"
}

// Export starts an export of kind ("actions", "feedback" or "ticks") and
// returns the response body, streamed: the caller reads it to its end and
// closes it. A read error other than io.EOF (io.ErrUnexpectedEOF when the
// server broke the stream off) means the export is incomplete.
//
// Only getting the answer's status is retried; once rows flow the stream
// cannot be resumed, and no per-attempt deadline applies (ctx bounds it).
func (c *Client) Export(ctx context.Context, kind string, f ExportFilter) (io.ReadCloser, error) {
	q := url.Values{}
	for k, v := range map[string]string{"from": f.From, "to": f.To, "persona": f.Persona, "module": f.Module, "format": f.Format} {
		if v != "" {
			q.Set(k, v)
		}
	}
	cl := call{method: http.MethodGet, path: "/export/" + url.PathEscape(kind), query: q, idempotent: true}
	policy := c.policy
	policy.PerAttempt = 0
	attempts := 0
	res, err := policy.Do(ctx, true, func(actx context.Context) (*http.Response, error) {
		attempts++
		req, err := c.newRequest(actx, cl, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/x-ndjson, text/csv, application/json")
		return c.httpClient.Do(req)
	})
	if err != nil {
		return nil, failed(attempts, fmt.Errorf("adminclient: %s %s: %w", cl.method, BasePath+cl.path, err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		defer func() { _ = res.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
		return nil, failed(attempts, newAPIError(cl.method, BasePath+cl.path, res.StatusCode, body))
	}
	return res.Body, nil
}
