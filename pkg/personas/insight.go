package personas

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// Insight: the product-wide views. Everything here but FeedbackFeed reads
// the rollups (rollups.go), so its cost follows the window asked for, not
// the history stored. Windows over rollups are whole UTC days: a window of
// N days is today (so far) and the N−1 days before; the previous window is
// the N days before that. Means, their confidence intervals and the change
// between windows are computed from counts, sums and sums of squares.

// Window is a span of recent history: "24h", "7d" or "28d".
type Window struct {
	Name string
	Days int
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return time.Duration(w.Days) * 24 * time.Hour }

var windows = map[string]int{"24h": 1, "7d": 7, "28d": 28}

// ParseWindow reads a window among allowed ("" is def); anything else is a
// validation problem on field.
func ParseWindow(field, v, def string, allowed ...string) (Window, error) {
	if v == "" {
		v = def
	}
	if !slices.Contains(allowed, v) {
		return Window{}, Invalid(field, "must be one of "+strings.Join(allowed, ", "))
	}
	return Window{Name: v, Days: windows[v]}, nil
}

// TagFilter narrows an aggregate by persona tags: personas with any of
// Exclude are left out; with Include set, only personas with one of them
// count.
type TagFilter struct {
	Include []string
	Exclude []string
}

func (f TagFilter) check(p *Problems) {
	CheckTags(p, "includeTag", f.Include)
	CheckTags(p, "excludeTag", f.Exclude)
}

// sql is the filter as a condition on personas alias p: ?inc and ?exc are
// replaced by the given placeholders, bound to args().
func (f TagFilter) sql(inc, exc string) string {
	return "(cardinality(" + inc + "::text[]) = 0 OR p.tags && " + inc + "::text[]) AND NOT (p.tags && " + exc + "::text[])"
}

func (f TagFilter) args() (inc, exc any) {
	return pgdialect.Array(normTags(f.Include)), pgdialect.Array(normTags(f.Exclude))
}

// Distribution counts ratings by value "1".."5".
type Distribution map[string]int

func distribution(r1, r2, r3, r4, r5 int64) Distribution {
	return Distribution{"1": int(r1), "2": int(r2), "3": int(r3), "4": int(r4), "5": int(r5)}
}

// moments are the sufficient statistics of a set of ratings.
type moments struct {
	N     int64 `bun:"n"`
	Sum   int64 `bun:"sum"`
	SumSq int64 `bun:"sum_sq"`
}

func (m moments) add(o moments) moments {
	return moments{N: m.N + o.N, Sum: m.Sum + o.Sum, SumSq: m.SumSq + o.SumSq}
}

func (m moments) mean() float64 { return float64(m.Sum) / float64(m.N) }

// variance is the sample variance (n−1), 0 below 2 ratings.
func (m moments) variance() float64 {
	if m.N < 2 {
		return 0
	}
	n := float64(m.N)
	v := (float64(m.SumSq) - float64(m.Sum)*float64(m.Sum)/n) / (n - 1)
	return math.Max(v, 0)
}

// Interval is a 95% confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// ci is the 95% interval of the mean (t distribution, n−1 degrees of
// freedom); nil below 2 ratings.
func (m moments) ci() *Interval {
	if m.N < 2 {
		return nil
	}
	h := tQuantile975(float64(m.N-1)) * math.Sqrt(m.variance()/float64(m.N))
	mu := m.mean()
	// Clamped to the rating scale: with few ratings the t interval reaches
	// past 1 or 5, where no mean can lie. Clamping keeps every comparison
	// of two intervals (the verdict's "non-overlapping") as it was.
	return &Interval{Low: math.Max(mu-h, 1), High: math.Min(mu+h, 5)}
}

// Change is the difference of a mean against the previous window's, with
// a Welch 95% interval of the difference.
type Change struct {
	Delta        float64  `json:"delta"`
	PreviousMean float64  `json:"previousMean"`
	PreviousN    int64    `json:"previousCount"`
	CI           Interval `json:"ci"`
	// Significant: the interval excludes 0.
	Significant bool `json:"significant"`
}

// welch compares cur with prev; nil when either has fewer than 2 ratings.
func welch(cur, prev moments) *Change {
	if cur.N < 2 || prev.N < 2 {
		return nil
	}
	a, b := cur.variance()/float64(cur.N), prev.variance()/float64(prev.N)
	se := math.Sqrt(a + b)
	df := math.Inf(1)
	if a+b > 0 {
		df = (a + b) * (a + b) / (a*a/float64(cur.N-1) + b*b/float64(prev.N-1))
	}
	d := cur.mean() - prev.mean()
	h := tQuantile975(df) * se
	return &Change{Delta: d, PreviousMean: prev.mean(), PreviousN: prev.N, CI: Interval{Low: d - h, High: d + h},
		Significant: d-h > 0 || d+h < 0}
}

// tQuantile975 is the 97.5% quantile of Student's t with df degrees of
// freedom (table to 30, then the normal's 1.96 corrected by 2.4/df).
func tQuantile975(df float64) float64 {
	table := []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
		2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
		2.048, 2.045, 2.042}
	switch {
	case math.IsInf(df, 1) || math.IsNaN(df):
		return 1.96
	case df < 1:
		return table[1]
	case df <= 30:
		return table[int(df)] // rounding df down is conservative
	}
	return 1.96 + 2.4/df
}

// ---- modules ------------------------------------------------------------

// ModulesQuery asks for the modules table.
type ModulesQuery struct {
	Window Window // 7d or 28d
	Tags   TagFilter
}

// ModuleSummary is one module over the window.
type ModuleSummary struct {
	Module       string       `json:"module"`
	Mean         float64      `json:"mean"`
	Count        int64        `json:"count"`
	CI           *Interval    `json:"ci"`
	Distribution Distribution `json:"distribution"`
	Personas     int          `json:"personas"` // distinct personas that rated it in the window
	LastRatedAt  time.Time    `json:"lastRatedAt"`
	// Change against the previous window; nil unless both have ≥ 2 ratings.
	Change *Change `json:"change"`
}

// ModulesResult is the modules table with the days it covers.
type ModulesResult struct {
	Window  string          `json:"window"`
	From    string          `json:"from"` // first UTC day (YYYY-MM-DD)
	To      string          `json:"to"`   // today
	Modules []ModuleSummary `json:"modules"`
}

// days returns today and the first day of the window and of the previous one.
func (s *Store) days(w Window) (today, from, prevFrom time.Time) {
	now := s.Now()
	today = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from = today.AddDate(0, 0, -(w.Days - 1))
	return today, from, from.AddDate(0, 0, -w.Days)
}

// ModulesSummary returns every module rated in the window, by module name:
// mean, count, interval, distribution, personas, last rating and the change
// against the previous window.
func (s *Store) ModulesSummary(ctx context.Context, q ModulesQuery) (ModulesResult, error) {
	var p Problems
	q.Tags.check(&p)
	if q.Window.Days == 0 {
		p.Add("window", "is required")
	}
	if err := p.Err(); err != nil {
		return ModulesResult{}, err
	}
	today, from, prevFrom := s.days(q.Window)
	inc, exc := q.Tags.args()
	var rows []struct {
		Module   string    `bun:"module"`
		N        int64     `bun:"n"`
		Sum      int64     `bun:"sum"`
		SumSq    int64     `bun:"sum_sq"`
		R1       int64     `bun:"r1"`
		R2       int64     `bun:"r2"`
		R3       int64     `bun:"r3"`
		R4       int64     `bun:"r4"`
		R5       int64     `bun:"r5"`
		Personas int       `bun:"personas"`
		LastAt   time.Time `bun:"last_at"`
		PN       int64     `bun:"pn"`
		PSum     int64     `bun:"psum"`
		PSumSq   int64     `bun:"psum_sq"`
	}
	// Everyone: the sums from the fleet rollup. With tags: from the
	// per-persona rows of the personas kept. The personas rating a module
	// and its last rating come from module_raters (modulesRaters).
	sums, raters := `personas.rating_fleet_daily AS r WHERE r.day >= ?0 AND r.day <= ?2`, "true"
	if len(q.Tags.Include) > 0 || len(q.Tags.Exclude) > 0 {
		sums = `personas.rating_daily AS r JOIN personas.personas AS p ON p.user_id = r.persona_id
         WHERE r.day >= ?0 AND r.day <= ?2 AND ` + q.Tags.sql("?3", "?4")
		raters = `EXISTS (SELECT 1 FROM personas.personas AS p WHERE p.user_id = m.persona_id AND ` + q.Tags.sql("?3", "?4") + `)`
	}
	err := s.db.NewRaw(`
SELECT f.module, f.n, f.sum, f.sum_sq, f.r1, f.r2, f.r3, f.r4, f.r5, COALESCE(d.personas, 0) AS personas, d.last_at,
       f.pn, f.psum, f.psum_sq
  FROM (SELECT r.module,
               COALESCE(sum(r.n) FILTER (WHERE r.day >= ?1), 0) AS n,
               COALESCE(sum(r.sum) FILTER (WHERE r.day >= ?1), 0) AS sum,
               COALESCE(sum(r.sum_sq) FILTER (WHERE r.day >= ?1), 0) AS sum_sq,
               COALESCE(sum(r.r1) FILTER (WHERE r.day >= ?1), 0) AS r1, COALESCE(sum(r.r2) FILTER (WHERE r.day >= ?1), 0) AS r2,
               COALESCE(sum(r.r3) FILTER (WHERE r.day >= ?1), 0) AS r3, COALESCE(sum(r.r4) FILTER (WHERE r.day >= ?1), 0) AS r4,
               COALESCE(sum(r.r5) FILTER (WHERE r.day >= ?1), 0) AS r5,
               COALESCE(sum(r.n) FILTER (WHERE r.day < ?1), 0) AS pn,
               COALESCE(sum(r.sum) FILTER (WHERE r.day < ?1), 0) AS psum,
               COALESCE(sum(r.sum_sq) FILTER (WHERE r.day < ?1), 0) AS psum_sq
          FROM `+sums+`
         GROUP BY r.module
        HAVING sum(r.n) FILTER (WHERE r.day >= ?1) > 0) AS f
  LEFT JOIN (`+modulesRaters(raters)+`) AS d ON d.module = f.module
 ORDER BY f.module`, prevFrom, from, today, inc, exc, today.AddDate(0, 0, 1)).Scan(ctx, &rows)
	if err != nil {
		return ModulesResult{}, fmt.Errorf("modules summary: %w", translate(err))
	}
	out := ModulesResult{Window: q.Window.Name, From: from.Format(time.DateOnly), To: today.Format(time.DateOnly),
		Modules: make([]ModuleSummary, len(rows))}
	for i, r := range rows {
		cur := moments{N: r.N, Sum: r.Sum, SumSq: r.SumSq}
		out.Modules[i] = ModuleSummary{
			Module: r.Module, Mean: cur.mean(), Count: r.N, CI: cur.ci(),
			Distribution: distribution(r.R1, r.R2, r.R3, r.R4, r.R5), Personas: r.Personas, LastRatedAt: r.LastAt.UTC(),
			Change: welch(cur, moments{N: r.PN, Sum: r.PSum, SumSq: r.PSumSq}),
		}
	}
	return out, nil
}

// modulesRaters selects, per module, the personas who rated it in the
// window from ?1 to ?5 (the end of today) and the last rating, from
// module_raters: a persona's latest rating of a module lies in a window
// that ends now exactly when it rated the module in the window. cond
// (alias m) keeps the personas counted.
func modulesRaters(cond string) string {
	return `SELECT m.module, count(*) AS personas, max(m.last_at) AS last_at
               FROM personas.module_raters AS m
              WHERE m.last_at >= ?1::timestamptz AND m.last_at < ?5::timestamptz AND ` + cond + `
              GROUP BY m.module`
}

// ---- trend and regression -----------------------------------------------

// Bucket sizes of a trend.
const (
	BucketDay  = "day"
	BucketWeek = "week"
)

// Defaults and bounds of the regression verdict.
const (
	DefaultRunLength  = 3   // K: consecutive bad buckets
	DefaultDelta      = 0.5 // δ: drop of the mean
	DefaultMinRatings = 5   // n: ratings per bucket
	MaxRunLength      = 52
	// verdictHorizon is how many complete buckets the verdict looks at
	// (at least 2K): runs up to half of it, each with a baseline as long.
	verdictHorizon = 24
	// MaxTrendBuckets bounds a trend's range.
	MaxTrendBuckets = 400
)

// TrendQuery asks for one module's trend. Zero values take the defaults
// (the last 12 weeks or 28 days; K, δ, n as above; chaos excluded from the
// verdict).
type TrendQuery struct {
	Module    string
	Bucket    string // day or week (default week)
	From, To  *time.Time
	Archetype string
	Cadence   Cadence
	Persona   string
	// Tags filters the buckets (everyone by default).
	Tags TagFilter
	// VerdictExclude: personas with these tags are left out of the verdict;
	// nil means DefaultVerdictExclude, empty means nobody.
	VerdictExclude []string
	K              int
	Delta          *float64
	MinRatings     *int
}

// DefaultVerdictExclude are the tags regression verdicts leave out.
var DefaultVerdictExclude = []string{"chaos"}

// TrendBucket is one bucket of a trend.
type TrendBucket struct {
	Start        string       `json:"start"` // YYYY-MM-DD (a Monday for weeks)
	Mean         *float64     `json:"mean"`  // nil without ratings
	Count        int64        `json:"count"`
	CI           *Interval    `json:"ci"`
	Distribution Distribution `json:"distribution"`
	// Partial: the bucket that contains today; shown, never judged.
	Partial bool `json:"partial"`
}

// Verdict says whether a module regressed. Flagged when each of at least
// K consecutive complete buckets ending at the newest complete one has
// ≥ MinRatings ratings and a mean below the baseline (the same number of
// buckets just before the run, pooled) by ≥ Delta, or with a confidence
// interval wholly below the baseline's. The longest such run is reported.
type Verdict struct {
	Flagged bool `json:"flagged"`
	// Since is the first bucket of the run; Buckets its length.
	Since   *string `json:"since"`
	Buckets int     `json:"buckets"`
	// BaselineMean and RunMean pool the ratings of baseline and run; Drop
	// is their difference (positive: worse).
	BaselineMean *float64 `json:"baselineMean"`
	RunMean      *float64 `json:"runMean"`
	Drop         *float64 `json:"drop"`
	// The rule as applied.
	K              int      `json:"k"`
	Delta          float64  `json:"delta"`
	MinRatings     int      `json:"minRatings"`
	ExcludedTags   []string `json:"excludedTags"`
	NewestComplete *string  `json:"newestComplete"`
}

// Trend is one module's buckets with the verdict.
type Trend struct {
	Module  string        `json:"module"`
	Bucket  string        `json:"bucket"`
	Buckets []TrendBucket `json:"buckets"`
	Verdict Verdict       `json:"verdict"`
}

func bucketStart(t time.Time, bucket string) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if bucket == BucketWeek {
		d = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	}
	return d
}

func nextBucket(t time.Time, bucket string) time.Time {
	if bucket == BucketWeek {
		return t.AddDate(0, 0, 7)
	}
	return t.AddDate(0, 0, 1)
}

// validate reports every problem with the query and fills in defaults.
func (q *TrendQuery) validate(now time.Time) error {
	var p Problems
	q.Check(&p, now)
	return p.Err()
}

// Check fills in the defaults and adds every problem with the query to p,
// by the admin API's parameter names (so a caller can merge them with its
// own parsing problems).
func (q *TrendQuery) Check(p *Problems, now time.Time) {
	checkText(p, "module", q.Module, 1, MaxModuleLen)
	if q.Bucket == "" {
		q.Bucket = BucketWeek
	}
	if q.Bucket != BucketDay && q.Bucket != BucketWeek {
		p.Add("bucket", "must be one of day, week")
	}
	checkText(p, "archetype", q.Archetype, 0, MaxArchetypeLen)
	checkText(p, "persona", q.Persona, 0, MaxUserIDLen)
	if q.Cadence != "" && !q.Cadence.Valid() {
		p.Add("cadence", "must be one of daily, weekdays, hourly")
	}
	q.Tags.check(p)
	if q.VerdictExclude == nil {
		q.VerdictExclude = DefaultVerdictExclude
	}
	CheckTags(p, "excludeTag", q.VerdictExclude)
	if q.K == 0 {
		q.K = DefaultRunLength
	}
	if q.K < 1 || q.K > MaxRunLength {
		p.Add("k", "must be an integer from 1 to %d", MaxRunLength)
	}
	if q.Delta == nil {
		d := DefaultDelta
		q.Delta = &d
	}
	if math.IsNaN(*q.Delta) || *q.Delta < 0 || *q.Delta > 4 {
		p.Add("delta", "must be a number from 0 to 4")
	}
	if q.MinRatings == nil {
		n := DefaultMinRatings
		q.MinRatings = &n
	}
	if *q.MinRatings < 1 || *q.MinRatings > 1_000_000 {
		p.Add("n", "must be an integer from 1 to 1000000")
	}
	if q.Bucket == BucketDay || q.Bucket == BucketWeek {
		to := bucketStart(now, q.Bucket)
		if q.To != nil {
			to = bucketStart(*q.To, q.Bucket)
		}
		from := to.AddDate(0, 0, -27)
		if q.Bucket == BucketWeek {
			from = to.AddDate(0, 0, -7*11)
		}
		if q.From != nil {
			from = bucketStart(*q.From, q.Bucket)
		}
		switch {
		case from.After(to):
			p.Add("from", "must not be after to")
		case bucketCount(from, to, q.Bucket) > MaxTrendBuckets:
			p.Add("from", "at most %d buckets per trend", MaxTrendBuckets)
		}
		q.From, q.To = &from, &to
	}
}

func bucketCount(from, to time.Time, bucket string) int {
	days := int(to.Sub(from).Hours()/24) + 1
	if bucket == BucketWeek {
		return days/7 + 1
	}
	return days
}

type bucketRow struct {
	Start time.Time `bun:"start"`
	moments
	R1, R2, R3, R4, R5 int64
	// The verdict's population (tags excluded).
	VN     int64 `bun:"vn"`
	VSum   int64 `bun:"vsum"`
	VSumSq int64 `bun:"vsum_sq"`
}

// ModuleTrend returns a module's buckets from q.From to q.To (the bucket
// containing today marked partial) and its regression verdict, which
// always judges the buckets up to the newest complete one (before q.To's
// bucket when that is earlier), whatever q.From.
func (s *Store) ModuleTrend(ctx context.Context, q TrendQuery) (Trend, error) {
	now := s.Now()
	if err := q.validate(now); err != nil {
		return Trend{}, err
	}
	current := bucketStart(now, q.Bucket)
	newest := current.AddDate(0, 0, -1) // the last day of the previous bucket
	newest = bucketStart(newest, q.Bucket)
	if q.To.Before(current) {
		newest = *q.To
	}
	horizon := max(verdictHorizon, 2*q.K)
	vfrom := newest
	for range horizon - 1 {
		vfrom = bucketStart(vfrom.AddDate(0, 0, -1), q.Bucket)
	}
	lo := *q.From
	if vfrom.Before(lo) {
		lo = vfrom
	}
	hi := nextBucket(*q.To, q.Bucket).AddDate(0, 0, -1)
	if hi.Before(newest) {
		hi = newest
	}

	inc, exc := q.Tags.args()
	trunc := "r.day"
	if q.Bucket == BucketWeek {
		trunc = "date_trunc('week', r.day)::date"
	}
	vexc := pgdialect.Array(normTags(q.VerdictExclude))
	var rows []bucketRow
	var err error
	if q.Archetype == "" && q.Cadence == "" && q.Persona == "" && len(q.Tags.Include) == 0 {
		// No filter needs the persona: the fleet rollup, less the rows of
		// the personas left out of the buckets or the verdict (few; an
		// index-only scan per persona, migration 0012).
		err = s.db.NewRaw(`
SELECT `+strings.ReplaceAll(trunc, "r.", "x.")+` AS start,
       COALESCE(sum(x.n) FILTER (WHERE x.agg), 0) AS n, COALESCE(sum(x.sum) FILTER (WHERE x.agg), 0) AS sum,
       COALESCE(sum(x.sum_sq) FILTER (WHERE x.agg), 0) AS sum_sq,
       COALESCE(sum(x.r1) FILTER (WHERE x.agg), 0) AS r1, COALESCE(sum(x.r2) FILTER (WHERE x.agg), 0) AS r2,
       COALESCE(sum(x.r3) FILTER (WHERE x.agg), 0) AS r3, COALESCE(sum(x.r4) FILTER (WHERE x.agg), 0) AS r4,
       COALESCE(sum(x.r5) FILTER (WHERE x.agg), 0) AS r5,
       COALESCE(sum(x.n) FILTER (WHERE x.verdict), 0) AS vn, COALESCE(sum(x.sum) FILTER (WHERE x.verdict), 0) AS vsum,
       COALESCE(sum(x.sum_sq) FILTER (WHERE x.verdict), 0) AS vsum_sq
  FROM (SELECT f.day, f.n, f.sum, f.sum_sq, f.r1, f.r2, f.r3, f.r4, f.r5, true AS agg, true AS verdict
          FROM personas.rating_fleet_daily AS f
         WHERE f.module = ?0 AND f.day >= ?1 AND f.day <= ?2
        UNION ALL
        SELECT r.day, -r.n, -r.sum, -r.sum_sq, -r.r1, -r.r2, -r.r3, -r.r4, -r.r5, e.agg, e.verdict
          FROM (SELECT p.user_id, p.tags && ?3::text[] AS agg, p.tags && ?4::text[] AS verdict
                  FROM personas.personas AS p
                 WHERE p.tags && (?3::text[] || ?4::text[])) AS e
          JOIN personas.rating_daily AS r ON r.persona_id = e.user_id
         WHERE r.module = ?0 AND r.day >= ?1 AND r.day <= ?2) AS x
 GROUP BY 1
 ORDER BY 1`, q.Module, lo, hi, exc, vexc).Scan(ctx, &rows)
	} else {
		err = s.db.NewRaw(`
SELECT `+trunc+` AS start,
       COALESCE(sum(r.n) FILTER (WHERE f.agg), 0) AS n, COALESCE(sum(r.sum) FILTER (WHERE f.agg), 0) AS sum,
       COALESCE(sum(r.sum_sq) FILTER (WHERE f.agg), 0) AS sum_sq,
       COALESCE(sum(r.r1) FILTER (WHERE f.agg), 0) AS r1, COALESCE(sum(r.r2) FILTER (WHERE f.agg), 0) AS r2,
       COALESCE(sum(r.r3) FILTER (WHERE f.agg), 0) AS r3, COALESCE(sum(r.r4) FILTER (WHERE f.agg), 0) AS r4,
       COALESCE(sum(r.r5) FILTER (WHERE f.agg), 0) AS r5,
       COALESCE(sum(r.n) FILTER (WHERE f.verdict), 0) AS vn, COALESCE(sum(r.sum) FILTER (WHERE f.verdict), 0) AS vsum,
       COALESCE(sum(r.sum_sq) FILTER (WHERE f.verdict), 0) AS vsum_sq
  FROM personas.rating_daily AS r
  JOIN personas.personas AS p ON p.user_id = r.persona_id
 CROSS JOIN LATERAL (SELECT `+q.Tags.sql("?3", "?4")+` AS agg, NOT (p.tags && ?5::text[]) AS verdict) AS f
 WHERE r.module = ?0 AND r.day >= ?1 AND r.day <= ?2
   AND (?6 = '' OR p.archetype = ?6) AND (?7 = '' OR p.tick_cadence = ?7) AND (?8 = '' OR r.persona_id = ?8)
 GROUP BY 1
 ORDER BY 1`, q.Module, lo, hi, inc, exc, vexc, q.Archetype, string(q.Cadence), q.Persona).Scan(ctx, &rows)
	}
	if err != nil {
		return Trend{}, fmt.Errorf("module trend: %w", translate(err))
	}
	byStart := make(map[time.Time]bucketRow, len(rows))
	for _, r := range rows {
		byStart[r.Start.UTC()] = r
	}
	out := Trend{Module: q.Module, Bucket: q.Bucket, Buckets: []TrendBucket{}}
	for b := *q.From; !b.After(*q.To); b = nextBucket(b, q.Bucket) {
		r := byStart[b]
		tb := TrendBucket{Start: b.Format(time.DateOnly), Count: r.N, Distribution: distribution(r.R1, r.R2, r.R3, r.R4, r.R5),
			Partial: !b.Before(current)}
		if r.N > 0 {
			m := r.mean()
			tb.Mean, tb.CI = &m, r.ci()
		}
		out.Buckets = append(out.Buckets, tb)
	}
	series := make([]moments, 0, horizon)
	for b := vfrom; !b.After(newest); b = nextBucket(b, q.Bucket) {
		r := byStart[b]
		series = append(series, moments{N: r.VN, Sum: r.VSum, SumSq: r.VSumSq})
	}
	out.Verdict = judge(series, vfrom, q.Bucket, q.K, *q.Delta, *q.MinRatings)
	out.Verdict.ExcludedTags = normTags(q.VerdictExclude)
	nc := newest.Format(time.DateOnly)
	out.Verdict.NewestComplete = &nc
	return out, nil
}

// judge applies the regression rule to series (complete buckets, oldest
// first, the first starting at first; the last is the newest complete).
func judge(series []moments, first time.Time, bucket string, k int, delta float64, minN int) Verdict {
	v := Verdict{K: k, Delta: delta, MinRatings: minN, ExcludedTags: []string{}}
	m := len(series)
	for l := k; 2*l <= m; l++ {
		run := series[m-l:]
		var base, pooled moments
		for _, b := range series[m-2*l : m-l] {
			base = base.add(b)
		}
		if base.N < int64(minN) {
			break
		}
		bci := base.ci()
		ok := true
		for _, b := range run {
			pooled = pooled.add(b)
			if b.N < int64(minN) {
				ok = false
				break
			}
			below := base.mean()-b.mean() >= delta
			if ci := b.ci(); !below && ci != nil && bci != nil && ci.High < bci.Low {
				below = true
			}
			if !below {
				ok = false
				break
			}
		}
		if !ok {
			break
		}
		start := first
		for range m - l {
			start = nextBucket(start, bucket)
		}
		since := start.Format(time.DateOnly)
		bm, rm := base.mean(), pooled.mean()
		drop := bm - rm
		v.Flagged, v.Since, v.Buckets, v.BaselineMean, v.RunMean, v.Drop = true, &since, l, &bm, &rm, &drop
	}
	return v
}

// FlaggedModules judges every module over weekly buckets with the default
// rule (chaos excluded), the worst drop first: the overview's list.
func (s *Store) FlaggedModules(ctx context.Context) ([]FlaggedModule, error) {
	return s.flaggedModules(ctx)
}

func (s *Store) flaggedModules(ctx context.Context) ([]FlaggedModule, error) {
	now := s.Now()
	current := bucketStart(now, BucketWeek)
	newest := current.AddDate(0, 0, -7)
	// judge decides a run of K weeks from the last 2K; it needs older
	// weeks only to extend a run it found. So every module is judged on
	// 2K weeks first, and only those flagged there on the whole horizon.
	short := 2 * DefaultRunLength
	judged, err := s.weeklyVerdicts(ctx, newest, current, short, nil)
	if err != nil {
		return nil, err
	}
	var longer []string
	for module, v := range judged {
		if v.Flagged && 2*(v.Buckets+1) <= verdictHorizon {
			longer = append(longer, module)
		}
	}
	if len(longer) > 0 {
		more, err := s.weeklyVerdicts(ctx, newest, current, verdictHorizon, longer)
		if err != nil {
			return nil, err
		}
		for module, v := range more {
			judged[module] = v
		}
	}
	out := []FlaggedModule{}
	for module, v := range judged {
		if v.Flagged {
			out = append(out, FlaggedModule{Module: module, Since: *v.Since, Weeks: v.Buckets, Drop: *v.Drop,
				BaselineMean: *v.BaselineMean, RunMean: *v.RunMean})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Drop > out[j].Drop })
	return out, nil
}

// weeklyVerdicts judges modules (all when nil) on the weeks complete
// weeks ending with newest (before current), with the default rule.
func (s *Store) weeklyVerdicts(ctx context.Context, newest, current time.Time, weeks int, modules []string) (map[string]Verdict, error) {
	vfrom := newest.AddDate(0, 0, -7*(weeks-1))
	var rows []struct {
		Module string    `bun:"module"`
		Start  time.Time `bun:"start"`
		moments
	}
	// The fleet rollup less the excluded personas' own rows (few: the
	// chaos personas), per day.
	err := s.db.NewRaw(`
SELECT x.module, x.day AS start, sum(x.n) AS n, sum(x.sum) AS sum, sum(x.sum_sq) AS sum_sq
  FROM (SELECT f.module, f.day, f.n, f.sum, f.sum_sq
          FROM personas.rating_fleet_daily AS f
         WHERE f.day >= ?0 AND f.day < ?1 AND (?3::text[] IS NULL OR f.module = ANY(?3::text[]))
        UNION ALL
        SELECT r.module, r.day, -r.n, -r.sum, -r.sum_sq
          FROM personas.rating_daily AS r
         WHERE r.persona_id = ANY(ARRAY(SELECT p.user_id FROM personas.personas AS p WHERE p.tags && ?2::text[]))
           AND r.day >= ?0 AND r.day < ?1 AND (?3::text[] IS NULL OR r.module = ANY(?3::text[]))) AS x
 GROUP BY 1, 2`, vfrom, current, pgdialect.Array(DefaultVerdictExclude), pgdialect.Array(modules)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("flagged modules: %w", translate(err))
	}
	series := map[string][]moments{}
	for _, r := range rows {
		ser := series[r.Module]
		if ser == nil {
			ser = make([]moments, weeks)
			series[r.Module] = ser
		}
		// Rows are per day (cheaper to group than by week in SQL).
		i := int(r.Start.UTC().Sub(vfrom).Hours() / (24 * 7))
		if i >= 0 && i < weeks {
			ser[i] = ser[i].add(r.moments)
		}
	}
	out := make(map[string]Verdict, len(series))
	for module, ser := range series {
		out[module] = judge(ser, vfrom, BucketWeek, DefaultRunLength, DefaultDelta, DefaultMinRatings)
	}
	return out, nil
}

// FlaggedModule is a module whose weekly verdict (default rule) is flagged.
type FlaggedModule struct {
	Module       string  `json:"module"`
	Since        string  `json:"since"`
	Weeks        int     `json:"weeks"`
	Drop         float64 `json:"drop"`
	BaselineMean float64 `json:"baselineMean"`
	RunMean      float64 `json:"runMean"`
}

// ---- tools --------------------------------------------------------------

// ErrorGroup is a set of similar error messages.
type ErrorGroup struct {
	Sample string `json:"sample"` // one message of the group ("" for the overflow group)
	Count  int64  `json:"count"`
	Other  bool   `json:"other,omitempty"` // messages beyond the kept groups
}

// ToolStats are one tool's (or module's) calls over the window.
type ToolStats struct {
	Name          string       `json:"name"`
	Calls         int64        `json:"calls"`
	Errors        int64        `json:"errors"`
	ErrorRate     float64      `json:"errorRate"`
	P95LatencyMs  *float64     `json:"p95LatencyMs"` // nil when no call reported a latency
	MeanLatencyMs *float64     `json:"meanLatencyMs"`
	TopErrors     []ErrorGroup `json:"topErrors"`
	// The previous window's calls and error rate (nil without calls), and
	// the change of the error rate.
	PreviousCalls     int64    `json:"previousCalls"`
	PreviousErrorRate *float64 `json:"previousErrorRate"`
	ErrorRateChange   *float64 `json:"errorRateChange"`

	hist         []int64
	latN, latSum int64
	prevErrors   int64
	groups       map[string]*ErrorGroup
}

// ToolsResult lists tools and modules (the part of a tool name before its
// first ".") over the window.
type ToolsResult struct {
	Window  string      `json:"window"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Tools   []ToolStats `json:"tools"`
	Modules []ToolStats `json:"modules"`
}

// TopErrorGroups is how many error groups a tool lists.
const TopErrorGroups = 5

// Tools returns per tool and per module: calls, error rate, p95 latency
// (from the histogram, interpolated geometrically within its bucket), the
// most frequent error groups and the change against the previous window.
func (s *Store) Tools(ctx context.Context, w Window) (ToolsResult, error) {
	if w.Days == 0 {
		return ToolsResult{}, Invalid("window", "is required")
	}
	today, from, prevFrom := s.days(w)
	var rows []struct {
		ToolName   string  `bun:"tool_name"`
		Cur        bool    `bun:"cur"`
		Calls      int64   `bun:"calls"`
		Errors     int64   `bun:"errors"`
		LatencyN   int64   `bun:"latency_n"`
		LatencySum int64   `bun:"latency_sum"`
		Hist       []int64 `bun:"hist,array"`
	}
	// The fleet rollup (no persona filter here); the histogram is summed
	// index by index, only over the window itself.
	err := s.db.NewRaw(`
SELECT d.tool_name, d.day >= ?1 AS cur, sum(d.calls) AS calls, sum(d.errors) AS errors,
       sum(d.latency_n) AS latency_n, sum(d.latency_sum) AS latency_sum,
       CASE WHEN d.day >= ?1 THEN `+histogramSum("d.latency_hist", "bigint")+` END AS hist
  FROM personas.action_fleet_daily AS d
 WHERE d.day >= ?0 AND d.day <= ?2
 GROUP BY 1, 2`, prevFrom, from, today).Scan(ctx, &rows)
	if err != nil {
		return ToolsResult{}, fmt.Errorf("tools: %w", translate(err))
	}
	tools := map[string]*ToolStats{}
	get := func(m map[string]*ToolStats, name string) *ToolStats {
		t := m[name]
		if t == nil {
			t = &ToolStats{Name: name, hist: make([]int64, len(LatencyThresholds)+1), groups: map[string]*ErrorGroup{}}
			m[name] = t
		}
		return t
	}
	for _, r := range rows {
		t := get(tools, r.ToolName)
		if !r.Cur {
			t.PreviousCalls += r.Calls
			t.prevErrors += r.Errors
			continue
		}
		t.Calls += r.Calls
		t.Errors += r.Errors
		t.latN += r.LatencyN
		t.latSum += r.LatencySum
		for i, c := range r.Hist {
			if i < len(t.hist) {
				t.hist[i] += c
			}
		}
	}
	var groups []struct {
		ToolName string `bun:"tool_name"`
		MsgHash  string `bun:"msg_hash"`
		Sample   string `bun:"sample"`
		N        int64  `bun:"n"`
	}
	err = s.db.NewRaw(`
SELECT e.tool_name, e.msg_hash, min(e.sample) AS sample, sum(e.n) AS n
  FROM personas.action_error_daily AS e
 WHERE e.day >= ?0 AND e.day <= ?1
 GROUP BY 1, 2`, from, today).Scan(ctx, &groups)
	if err != nil {
		return ToolsResult{}, fmt.Errorf("tool errors: %w", translate(err))
	}
	for _, g := range groups {
		t := get(tools, g.ToolName)
		t.groups[g.MsgHash] = &ErrorGroup{Sample: g.Sample, Count: g.N, Other: g.MsgHash == ""}
	}
	modules := map[string]*ToolStats{}
	for name, t := range tools {
		mod, _, _ := strings.Cut(name, ".")
		m := get(modules, mod)
		m.Calls += t.Calls
		m.Errors += t.Errors
		m.PreviousCalls += t.PreviousCalls
		m.prevErrors += t.prevErrors
		m.latN += t.latN
		m.latSum += t.latSum
		for i, c := range t.hist {
			m.hist[i] += c
		}
		for h, g := range t.groups {
			mg := m.groups[h]
			if mg == nil {
				mg = &ErrorGroup{Sample: g.Sample, Other: g.Other}
				m.groups[h] = mg
			}
			mg.Count += g.Count
		}
	}
	out := ToolsResult{Window: w.Name, From: from.Format(time.DateOnly), To: today.Format(time.DateOnly),
		Tools: finishTools(tools), Modules: finishTools(modules)}
	return out, nil
}

// finishTools derives rates, percentiles and top errors, dropping tools
// without calls in either window, by name.
func finishTools(m map[string]*ToolStats) []ToolStats {
	out := make([]ToolStats, 0, len(m))
	for _, t := range m {
		if t.Calls == 0 && t.PreviousCalls == 0 {
			continue
		}
		if t.Calls > 0 {
			t.ErrorRate = float64(t.Errors) / float64(t.Calls)
		}
		if t.PreviousCalls > 0 {
			r := float64(t.prevErrors) / float64(t.PreviousCalls)
			t.PreviousErrorRate = &r
			if t.Calls > 0 {
				d := t.ErrorRate - r
				t.ErrorRateChange = &d
			}
		}
		if t.latN > 0 {
			mean := float64(t.latSum) / float64(t.latN)
			t.MeanLatencyMs = &mean
			p := histogramQuantile(t.hist, 0.95)
			t.P95LatencyMs = &p
		}
		t.TopErrors = []ErrorGroup{}
		for _, g := range t.groups {
			t.TopErrors = append(t.TopErrors, *g)
		}
		sort.Slice(t.TopErrors, func(i, j int) bool {
			a, b := t.TopErrors[i], t.TopErrors[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			return a.Sample < b.Sample
		})
		if len(t.TopErrors) > TopErrorGroups {
			t.TopErrors = t.TopErrors[:TopErrorGroups]
		}
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// histogramQuantile reads quantile q from a latency histogram: the bucket
// holding it, interpolated geometrically between its bounds (linearly in
// the first, [0, 1) ms; the open last bucket reports its lower bound).
func histogramQuantile(hist []int64, q float64) float64 {
	var total int64
	for _, c := range hist {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			frac := (rank - seen) / float64(c)
			switch {
			case i == 0:
				return frac
			case i == len(LatencyThresholds):
				return float64(LatencyThresholds[i-1])
			}
			lo, hi := float64(LatencyThresholds[i-1]), float64(LatencyThresholds[i])
			return lo * math.Pow(hi/lo, frac)
		}
		seen += float64(c)
	}
	return float64(LatencyThresholds[len(LatencyThresholds)-1])
}

// histogramSum sums the latency histograms in column col index by index,
// as an array of typ (cheaper than unnesting them or an aggregate
// function).
func histogramSum(col, typ string) string {
	parts := make([]string, len(LatencyThresholds)+1)
	for i := range parts {
		parts[i] = "sum(" + col + "[" + strconv.Itoa(i+1) + "])"
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::" + typ + "[]"
}

// ---- overview -----------------------------------------------------------

// OverviewGrace is how long past its slot a persona counts as overdue in
// the overview.
const OverviewGrace = 2 * time.Hour

// MaxOverviewIDs bounds each id list of the overview.
const MaxOverviewIDs = 100

// PersonaCount is a number of personas with (up to MaxOverviewIDs of) their ids.
type PersonaCount struct {
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
}

// Overview is the Monday page.
type Overview struct {
	Window      string `json:"window"`
	Since       string `json:"since"` // ticks: finished since (RFC 3339)
	From        string `json:"from"`  // rollup figures: first UTC day
	FleetPaused bool   `json:"fleetPaused"`
	Personas    struct {
		Total       int          `json:"total"`
		Enabled     int          `json:"enabled"`
		Disabled    PersonaCount `json:"disabled"`
		Quarantined PersonaCount `json:"quarantined"`
		Overdue     PersonaCount `json:"overdue"`
	} `json:"personas"`
	Ticks struct {
		Finished    int            `json:"finished"`
		ByStatus    map[string]int `json:"byStatus"`
		SuccessRate *float64       `json:"successRate"` // (ok + empty) / finished
	} `json:"ticks"`
	FlaggedModules []FlaggedModule `json:"flaggedModules"`
	// ErrorRateRises: tools whose error rate rose most against the previous
	// window (at most 5, only rises).
	ErrorRateRises []ToolStats `json:"errorRateRises"`
	Ratings        struct {
		Rated      int64 `json:"rated"`
		Unparsable int64 `json:"unparsable"`
	} `json:"ratings"`
}

// Overview returns the fleet at a glance for window (24h or 7d).
func (s *Store) Overview(ctx context.Context, w Window) (Overview, error) {
	var o Overview
	if w.Days == 0 {
		return o, Invalid("window", "is required")
	}
	now := s.Now()
	since := now.Add(-w.Duration())
	today, from, _ := s.days(w)
	o.Window, o.Since, o.From = w.Name, since.Format(time.RFC3339), from.Format(time.DateOnly)

	args := append(statusArgs(now), MaxOverviewIDs)
	var ps struct {
		Total       int      `bun:"total"`
		Enabled     int      `bun:"enabled"`
		Disabled    int      `bun:"disabled"`
		Quarantined int      `bun:"quarantined"`
		Overdue     int      `bun:"overdue"`
		DisabledIDs []string `bun:"disabled_ids,array"`
		QuarIDs     []string `bun:"quar_ids,array"`
		OverdueIDs  []string `bun:"overdue_ids,array"`
		Paused      bool     `bun:"paused"`
	}
	err := s.db.NewRaw(`
SELECT count(*) AS total, count(*) FILTER (WHERE `+enabledSQL+`) AS enabled,
       count(*) FILTER (WHERE `+disabledSQL+`) AS disabled,
       count(*) FILTER (WHERE `+quarantinedSQL+`) AS quarantined,
       count(*) FILTER (WHERE `+overdueSQL+`) AS overdue,
       COALESCE((array_agg(user_id ORDER BY user_id) FILTER (WHERE `+disabledSQL+`))[1:?7], '{}') AS disabled_ids,
       COALESCE((array_agg(user_id ORDER BY user_id) FILTER (WHERE `+quarantinedSQL+`))[1:?7], '{}') AS quar_ids,
       COALESCE((array_agg(user_id ORDER BY user_id) FILTER (WHERE `+overdueSQL+`))[1:?7], '{}') AS overdue_ids,
       COALESCE((SELECT paused FROM personas.runner_state), false) AS paused
  FROM personas.personas`, args...).Scan(ctx, &ps)
	if err != nil {
		return o, fmt.Errorf("overview personas: %w", translate(err))
	}
	o.FleetPaused = ps.Paused
	o.Personas.Total, o.Personas.Enabled = ps.Total, ps.Enabled
	o.Personas.Disabled = PersonaCount{Count: ps.Disabled, IDs: nonNil(ps.DisabledIDs)}
	o.Personas.Quarantined = PersonaCount{Count: ps.Quarantined, IDs: nonNil(ps.QuarIDs)}
	o.Personas.Overdue = PersonaCount{Count: ps.Overdue, IDs: nonNil(ps.OverdueIDs)}

	var ticks []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	err = s.db.NewRaw(`SELECT status, count(*) AS n FROM personas.persona_ticks
 WHERE finished_at >= ?0 AND finished_at IS NOT NULL GROUP BY status`, since).Scan(ctx, &ticks)
	if err != nil {
		return o, fmt.Errorf("overview ticks: %w", translate(err))
	}
	o.Ticks.ByStatus = map[string]int{}
	ok := 0
	for _, t := range ticks {
		o.Ticks.ByStatus[t.Status] = t.N
		o.Ticks.Finished += t.N
		if TickStatus(t.Status).Success() {
			ok += t.N
		}
	}
	if o.Ticks.Finished > 0 {
		r := float64(ok) / float64(o.Ticks.Finished)
		o.Ticks.SuccessRate = &r
	}

	if o.FlaggedModules, err = s.flaggedModules(ctx); err != nil {
		return o, err
	}
	tools, err := s.Tools(ctx, w)
	if err != nil {
		return o, err
	}
	o.ErrorRateRises = []ToolStats{}
	for _, t := range tools.Tools {
		if t.ErrorRateChange != nil && *t.ErrorRateChange > 0 {
			o.ErrorRateRises = append(o.ErrorRateRises, t)
		}
	}
	sort.SliceStable(o.ErrorRateRises, func(i, j int) bool {
		return *o.ErrorRateRises[i].ErrorRateChange > *o.ErrorRateRises[j].ErrorRateChange
	})
	if len(o.ErrorRateRises) > 5 {
		o.ErrorRateRises = o.ErrorRateRises[:5]
	}

	err = s.db.NewRaw(`SELECT
  COALESCE((SELECT sum(n) FROM personas.rating_fleet_daily WHERE day >= ?0 AND day <= ?1), 0) AS rated,
  COALESCE((SELECT sum(n) FROM personas.rating_unparsable_daily WHERE day >= ?0 AND day <= ?1), 0) AS unparsable`,
		from, today).Scan(ctx, &o.Ratings.Rated, &o.Ratings.Unparsable)
	if err != nil {
		return o, fmt.Errorf("overview ratings: %w", translate(err))
	}
	return o, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---- notes feed ---------------------------------------------------------

// Limits of the notes feed.
const (
	DefaultFeedLimit = 50
	MaxFeedLimit     = 200
)

// FeedQuery filters and pages the notes feed. Zero values mean no filter.
type FeedQuery struct {
	Module    string
	Persona   string
	Archetype string
	MinRating int
	MaxRating int
	From, To  *time.Time // created_at in [From, To)
	Cursor    string
	Limit     int
}

// FeedItem is one rating with its persona.
type FeedItem struct {
	Feedback         `bun:",extend"`
	PersonaID        string `bun:"persona_id" json:"personaId"`
	PersonaName      string `bun:"persona_name" json:"personaName"`
	PersonaArchetype string `bun:"persona_archetype" json:"personaArchetype"`
}

type feedCursor struct {
	CreatedAt time.Time `json:"c"`
	PersonaID string    `json:"p"`
	ID        string    `json:"i"`
}

// FeedbackFeed returns ratings newest first with their persona's name and
// archetype, keyset-paginated (nextCursor empty on the last page). It reads
// persona_feedback through its feed indexes. Parse markers are included:
// these are the raw rows.
func (s *Store) FeedbackFeed(ctx context.Context, q FeedQuery) (items []FeedItem, nextCursor string, err error) {
	var p Problems
	cur := q.check(&p)
	if err := p.Err(); err != nil {
		return nil, "", err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultFeedLimit
	}
	return s.feed(ctx, q, cur, limit)
}

// Check adds every problem with the query to p by the admin API's
// parameter names (so a caller can merge them with its own).
func (q *FeedQuery) Check(p *Problems) { q.check(p) }

// check is Check, returning the decoded cursor.
func (q *FeedQuery) check(p *Problems) *feedCursor {
	checkText(p, "module", q.Module, 0, MaxModuleLen)
	checkText(p, "persona", q.Persona, 0, MaxUserIDLen)
	checkText(p, "archetype", q.Archetype, 0, MaxArchetypeLen)
	if q.MinRating != 0 && (q.MinRating < 1 || q.MinRating > 5) {
		p.Add("minRating", "must be an integer from 1 to 5")
	}
	if q.MaxRating != 0 && (q.MaxRating < 1 || q.MaxRating > 5) {
		p.Add("maxRating", "must be an integer from 1 to 5")
	}
	if q.MinRating != 0 && q.MaxRating != 0 && q.MinRating > q.MaxRating {
		p.Add("minRating", "must not exceed maxRating")
	}
	if q.From != nil && q.To != nil && q.From.After(*q.To) {
		p.Add("from", "must not be after to")
	}
	if q.Limit < 0 || q.Limit > MaxFeedLimit {
		p.Add("limit", "must be an integer from 1 to %d", MaxFeedLimit)
	}
	var cur *feedCursor
	if q.Cursor != "" {
		cur = new(feedCursor)
		raw, decErr := base64.RawURLEncoding.DecodeString(q.Cursor)
		if decErr != nil || json.Unmarshal(raw, cur) != nil || cur.ID == "" {
			p.Add("cursor", "is not a cursor returned by this API")
		}
	}
	return cur
}

func (s *Store) feed(ctx context.Context, q FeedQuery, cur *feedCursor, limit int) (items []FeedItem, nextCursor string, err error) {
	sel := s.db.NewSelect().
		TableExpr("personas.persona_feedback AS f").
		Join("JOIN personas.personas AS p ON p.user_id = f.persona_id").
		ColumnExpr("f.id, f.tick_id, f.module, f.rating, f.notes, f.created_at, f.persona_id").
		ColumnExpr("p.name AS persona_name, p.archetype AS persona_archetype").
		OrderExpr("f.created_at DESC, f.persona_id DESC, f.id DESC").
		Limit(int64(limit + 1))
	if q.Module != "" {
		sel = sel.Where("f.module = ?", q.Module)
	}
	if q.Persona != "" {
		sel = sel.Where("f.persona_id = ?", q.Persona)
	}
	if q.Archetype != "" {
		sel = sel.Where("p.archetype = ?", q.Archetype)
	}
	if q.MinRating != 0 {
		sel = sel.Where("f.rating >= ?", q.MinRating)
	}
	if q.MaxRating != 0 {
		sel = sel.Where("f.rating <= ?", q.MaxRating)
	}
	if q.From != nil {
		sel = sel.Where("f.created_at >= ?", *q.From)
	}
	if q.To != nil {
		sel = sel.Where("f.created_at < ?", *q.To)
	}
	if cur != nil {
		sel = sel.Where("(f.created_at, f.persona_id, f.id) < (?, ?, ?)", cur.CreatedAt, cur.PersonaID, cur.ID)
	}
	items = []FeedItem{}
	if err := sel.Scan(ctx, &items); err != nil {
		return nil, "", fmt.Errorf("feedback feed: %w", translate(err))
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[len(items)-1]
		raw, _ := json.Marshal(feedCursor{CreatedAt: last.CreatedAt, PersonaID: last.PersonaID, ID: last.ID})
		nextCursor = base64.RawURLEncoding.EncodeToString(raw)
	}
	return items, nextCursor, nil
}
