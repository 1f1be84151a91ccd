package adminclient

import (
	"context"
	"net/url"
	"time"
)

// ModuleSummary is one module of GET /modules.
type ModuleSummary struct {
	Module       string         `json:"module"`
	Mean         float64        `json:"mean"`
	Count        int64          `json:"count"`
	Distribution map[string]int `json:"distribution"`
	Personas     int            `json:"personas"`
	LastRatedAt  time.Time      `json:"lastRatedAt"`
	Change       *struct {
		Delta        float64 `json:"delta"`
		PreviousMean float64 `json:"previousMean"`
		Significant  bool    `json:"significant"`
	} `json:"change"`
}

// Modules is the answer of GET /modules.
type Modules struct {
	Window  string          `json:"window"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Modules []ModuleSummary `json:"modules"`
}

// Modules returns every module rated in window ("7d" or "28d"; "" for the
// server's default).
func (c *Client) Modules(ctx context.Context, window string) (*Modules, error) {
	q := url.Values{}
	if window != "" {
		q.Set("window", window)
	}
	var out Modules
	if err := c.do(ctx, call{method: "GET", path: "/modules", query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrendBucket is one bucket of a module's trend.
type TrendBucket struct {
	Start   string   `json:"start"`
	Mean    *float64 `json:"mean"`
	Count   int64    `json:"count"`
	Partial bool     `json:"partial"`
}

// Trend is the answer of GET /modules/:module/trend.
type Trend struct {
	Module  string        `json:"module"`
	Bucket  string        `json:"bucket"`
	Buckets []TrendBucket `json:"buckets"`
	Verdict struct {
		Flagged      bool     `json:"flagged"`
		Since        *string  `json:"since"`
		Buckets      int      `json:"buckets"`
		BaselineMean *float64 `json:"baselineMean"`
		RunMean      *float64 `json:"runMean"`
		Drop         *float64 `json:"drop"`
	} `json:"verdict"`
}

// ModuleTrend returns a module's weekly trend with its regression verdict.
func (c *Client) ModuleTrend(ctx context.Context, module string) (*Trend, error) {
	var out Trend
	cl := call{method: "GET", path: "/modules/" + url.PathEscape(module) + "/trend", query: url.Values{"bucket": {"week"}}, idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FlaggedModule is a module whose regression verdict is flagged.
type FlaggedModule struct {
	Module string  `json:"module"`
	Since  string  `json:"since"`
	Weeks  int     `json:"weeks"`
	Drop   float64 `json:"drop"`
}

// FlaggedModules returns the overview's flagged modules.
func (c *Client) FlaggedModules(ctx context.Context) ([]FlaggedModule, error) {
	var out struct {
		FlaggedModules []FlaggedModule `json:"flaggedModules"`
	}
	if err := c.do(ctx, call{method: "GET", path: "/overview", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.FlaggedModules, nil
}
