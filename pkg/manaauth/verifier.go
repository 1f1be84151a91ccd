package manaauth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Verifier errors. Callers map ErrInvalidToken to 401 and ErrKeysUnavailable
// to 503: the first is the token's fault, the second is mana-auth's (no
// signing key could be fetched, so no token can be judged).
var (
	ErrInvalidToken    = errors.New("manaauth: invalid token")
	ErrKeysUnavailable = errors.New("manaauth: signing keys unavailable")
)

// Claims are the verified claims of a mana-auth JWT.
type Claims struct {
	Subject   string    // sub: the user id
	Email     string    // email
	Role      string    // role: "admin" for admins (see CONTRACT.md for the upstream quirk)
	SessionID string    // sid
	Tier      string    // tier: the user's access tier
	IssuedAt  time.Time // iat, zero if absent
	ExpiresAt time.Time // exp
}

// IsAdmin reports whether the token carries role "admin". Authorisation is
// the caller's decision; Verify only says the token is genuine and current.
func (c *Claims) IsAdmin() bool { return c != nil && IsAdminRole(c.Role) }

// maxTokenLen bounds what Verify parses; mana-auth tokens are ~600 bytes.
const maxTokenLen = 8 << 10

// keySource yields the current key set; refetch asks for a fresh one.
type keySource interface {
	keys(ctx context.Context) (jwk.Set, error)
	refetch(ctx context.Context) (jwk.Set, error)
}

// Verifier checks admin JWTs issued by mana-auth. Keys come only from
// mana-auth's JWKS; the algorithm is always EdDSA whatever the token's header
// claims; the token must be in the one form mana-auth mints (tokenform.go);
// iss, aud and exp are checked with a small clock skew. Verified tokens are
// cached (WithTokenCache), so a token sent with every request is checked
// in full once.
//
// Safe for concurrent use. Construction never blocks on mana-auth: when it
// is down, Verify returns ErrKeysUnavailable and Ready an error until a
// fetch succeeds.
type Verifier struct {
	src      keySource
	issuer   string
	audience string
	skew     time.Duration
	clock    func() time.Time
	log      *slog.Logger
	close    func()
	cache    *tokenCache // nil: no caching

	fullChecks atomic.Int64 // verifications that reached the signature check
}

// WithIssuer sets the expected iss (Verifier). Default: the auth base URL.
func WithIssuer(iss string) Option { return func(o *options) { o.issuer = iss } }

// WithAudience sets the expected aud (Verifier). Default DefaultAudience.
func WithAudience(aud string) Option { return func(o *options) { o.audience = aud } }

// WithClockSkew sets the tolerance for exp, nbf and iat (Verifier).
// Default DefaultClockSkew.
func WithClockSkew(d time.Duration) Option { return func(o *options) { o.skew = d } }

// WithRefreshInterval sets how often the JWKS is refreshed in the
// background (Verifier, at least one second). Default DefaultRefreshInterval.
func WithRefreshInterval(d time.Duration) Option {
	return func(o *options) { o.refreshInterval = d }
}

// WithRefetchInterval sets the minimum time between two on-demand JWKS
// fetches, triggered by an unknown kid or by missing keys (Verifier).
// Default DefaultRefetchInterval. It keeps a flood of forged kids from
// turning into a flood of requests to mana-auth.
func WithRefetchInterval(d time.Duration) Option {
	return func(o *options) { o.refetchInterval = d }
}

// WithClock replaces time.Now (Verifier); for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// NewVerifier returns a Verifier for the mana-auth at authURL, whose JWKS is
// <authURL>/api/auth/jwks and whose issuer is authURL unless WithIssuer says
// otherwise. The first fetch starts in the background; ctx bounds the
// background refresh, as does Close.
func NewVerifier(ctx context.Context, authURL string, opts ...Option) (*Verifier, error) {
	base, err := normalizeBaseURL(authURL)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if o.issuer == "" {
		o.issuer = base
	}
	// The jwk cache fetches without a context: the client's own timeout is
	// what keeps a hanging mana-auth from pinning it.
	hc := &http.Client{Timeout: o.timeout}
	refresh := o.refreshInterval
	if refresh < time.Second {
		refresh = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	log := o.logger
	tc := newTokenCache(o.tokenCacheSize, MaxTokenCacheAge)
	cache := jwk.NewCache(ctx,
		jwk.WithRefreshWindow(refresh),
		jwk.WithErrSink(errSink(func(err error) {
			log.WarnContext(ctx, "mana-auth JWKS refresh failed", "err", err)
		})),
	)
	url := base + JWKSPath
	if err := cache.Register(url,
		jwk.WithHTTPClient(hc),
		jwk.WithRefreshInterval(refresh),
		jwk.WithPostFetcher(jwk.PostFetchFunc(func(_ string, set jwk.Set) (jwk.Set, error) {
			log.DebugContext(ctx, "mana-auth JWKS fetched", "keys", set.Len())
			// A key that left the JWKS (revoked, or past its rotation
			// grace period) takes the tokens it verified with it.
			if n := tc.retain(inSet(set)); n > 0 {
				log.InfoContext(ctx, "dropped cached tokens whose signing key left the JWKS", "tokens", n)
			}
			return set, nil
		})),
	); err != nil {
		cancel()
		return nil, fmt.Errorf("manaauth: registering JWKS URL: %w", err)
	}
	src := &cachedKeys{
		cache: cache, url: url, timeout: o.timeout,
		minGap: o.refetchInterval, clock: o.clock, log: log,
	}
	// Warm the cache without blocking construction.
	go func() {
		fctx, fcancel := context.WithTimeout(ctx, o.timeout)
		defer fcancel()
		if _, err := src.keys(fctx); err != nil {
			log.WarnContext(fctx, "mana-auth JWKS not available at start; will retry on demand", "url", url, "err", err)
		}
	}()
	return newVerifier(src, o, cancel, tc), nil
}

// inSet reports whether set still holds kid with the key pub.
func inSet(set jwk.Set) func(kid string, pub ed25519.PublicKey) bool {
	return func(kid string, pub ed25519.PublicKey) bool {
		key, ok := set.LookupKeyID(kid)
		if !ok {
			return false
		}
		cur, err := edKey(key)
		return err == nil && samePublicKey(cur, pub)
	}
}

// NewStaticVerifier returns a Verifier over a fixed key set, for a process
// that holds mana-auth's keys itself (the development stand-in) and for
// tests. issuer is the expected iss.
func NewStaticVerifier(keys jwk.Set, issuer string, opts ...Option) (*Verifier, error) {
	if keys == nil {
		return nil, fmt.Errorf("manaauth: static verifier: nil key set")
	}
	o := buildOptions(opts)
	if o.issuer == "" {
		o.issuer = issuer
	}
	if o.issuer == "" {
		return nil, fmt.Errorf("manaauth: static verifier: empty issuer")
	}
	tc := newTokenCache(o.tokenCacheSize, MaxTokenCacheAge)
	return newVerifier(staticKeys{keys}, o, func() {}, tc), nil
}

func newVerifier(src keySource, o options, cancel func(), tc *tokenCache) *Verifier {
	return &Verifier{
		src: src, issuer: o.issuer, audience: o.audience, skew: o.skew,
		clock: o.clock, log: o.logger, close: cancel, cache: tc,
	}
}

// Close stops the background refresh.
func (v *Verifier) Close() { v.close() }

// Ready reports whether signing keys are available, fetching them (subject
// to the refetch rate limit) if none are cached. The error wraps
// ErrKeysUnavailable.
func (v *Verifier) Ready(ctx context.Context) error {
	set, err := v.src.keys(ctx)
	if err == nil && set.Len() > 0 {
		return nil
	}
	if set, err = v.src.refetch(ctx); err == nil && set.Len() > 0 {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("JWKS holds no keys")
	}
	return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Verify checks token and returns its claims. Errors wrap ErrInvalidToken
// or ErrKeysUnavailable; their text never contains the token.
//
// The token is taken as is: surrounding whitespace, like any other byte
// outside the compact form, makes it invalid (callers strip the "Bearer "
// scheme and the header's own whitespace).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, invalid("empty token")
	}
	if len(token) > maxTokenLen {
		return nil, invalid("token longer than %d bytes", maxTokenLen)
	}
	if c, ok := v.cached(ctx, token); ok {
		return c, nil
	}
	form, err := parseCompact(token)
	if err != nil {
		return nil, err
	}
	kid := form.kid
	pub, err := v.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKey(jwa.EdDSA, pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithAcceptableSkew(v.skew),
		jwt.WithClock(jwt.ClockFunc(v.clock)),
	)
	v.fullChecks.Add(1)
	if err != nil {
		// Say which issuer or audience the token carried: a mismatch is
		// usually configuration (MANA_AUTH_ISSUER), and neither is secret.
		if errors.Is(err, jwt.ErrInvalidIssuer()) || errors.Is(err, jwt.ErrInvalidAudience()) {
			if unverified, perr := jwt.ParseInsecure([]byte(token)); perr == nil {
				return nil, invalid("%v (token iss %q aud %q; want iss %q aud %q)", err,
					unverified.Issuer(), unverified.Audience(), v.issuer, v.audience)
			}
		}
		return nil, invalid("%v", err)
	}
	c := &Claims{
		Subject:   tok.Subject(),
		IssuedAt:  tok.IssuedAt(),
		ExpiresAt: tok.Expiration(),
	}
	priv := tok.PrivateClaims()
	var bad []string
	for name, dst := range map[string]*string{"email": &c.Email, "role": &c.Role, "sid": &c.SessionID, "tier": &c.Tier} {
		raw, ok := priv[name]
		if !ok || raw == nil {
			continue
		}
		s, ok := raw.(string)
		if !ok {
			bad = append(bad, name)
			continue
		}
		*dst = s
	}
	if len(bad) > 0 {
		return nil, invalid("claims %v are not strings", bad)
	}
	// parseCompact and jwx read the same bytes; should they ever disagree
	// on exp, trust neither.
	if c.ExpiresAt.Unix() != form.exp || c.Subject == "" {
		return nil, invalid("claims read inconsistently")
	}
	out := *c
	v.cache.put(token, kid, pub, &out, v.clock())
	return c, nil
}

// cached returns the claims of token if it was verified before and may
// still be served: before the first of its exp and MaxTokenCacheAge, and
// while the current key set holds the same key under its kid.
func (v *Verifier) cached(ctx context.Context, token string) (*Claims, bool) {
	c, kid, pub, ok := v.cache.get(token, v.clock())
	if !ok {
		return nil, false
	}
	// The background refresh drops entries whose key left the JWKS; this
	// also covers a Verify that raced with that refresh.
	set, err := v.src.keys(ctx)
	if err != nil || !inSet(set)(kid, pub) {
		v.cache.drop(token)
		return nil, false
	}
	return c, true
}

// lookup finds the Ed25519 public key named kid, refetching the JWKS once
// (rate-limited) when the kid is unknown, e.g. after a key rotation.
func (v *Verifier) lookup(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	set, err := v.src.keys(ctx)
	if err == nil {
		if key, ok := set.LookupKeyID(kid); ok {
			return edKey(key)
		}
	}
	fresh, rerr := v.src.refetch(ctx)
	if rerr == nil {
		if key, ok := fresh.LookupKeyID(kid); ok {
			v.log.InfoContext(ctx, "mana-auth signing key found after refetch", "kid", kid)
			return edKey(key)
		}
		return nil, invalid("unknown kid %q", kid)
	}
	if err != nil {
		// Nothing cached and nothing fetchable: not the token's fault.
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, rerr)
	}
	// Keys are cached, the kid is not among them and a refetch was not
	// possible (rate-limited or failed): judge the token by what we have.
	return nil, invalid("unknown kid %q", kid)
}

// edKey accepts only Ed25519 signing keys that do not declare another
// algorithm or use.
func edKey(key jwk.Key) (ed25519.PublicKey, error) {
	if key.KeyType() != "OKP" {
		return nil, invalid("key type %q is not OKP", key.KeyType())
	}
	if alg := key.Algorithm(); alg != nil && alg.String() != "" && alg.String() != jwa.EdDSA.String() {
		return nil, invalid("key declares algorithm %q", alg)
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, invalid("key use %q is not sig", use)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, invalid("unusable key: %v", err)
	}
	pub, ok := raw.(ed25519.PublicKey)
	if !ok {
		return nil, invalid("key is not Ed25519 (%T)", raw)
	}
	return pub, nil
}

type errSink func(error)

func (f errSink) Error(err error) { f(err) }

type staticKeys struct{ set jwk.Set }

func (s staticKeys) keys(context.Context) (jwk.Set, error)    { return s.set, nil }
func (s staticKeys) refetch(context.Context) (jwk.Set, error) { return s.set, nil }

// cachedKeys wraps jwx's jwk.Cache: background refresh is the cache's, the
// on-demand refetch is rate-limited here.
type cachedKeys struct {
	cache   *jwk.Cache
	url     string
	timeout time.Duration
	minGap  time.Duration
	clock   func() time.Time
	log     *slog.Logger

	mu          sync.Mutex
	lastRefetch time.Time
}

var errRateLimited = errors.New("JWKS refetch rate-limited")

func (c *cachedKeys) keys(ctx context.Context) (jwk.Set, error) {
	return c.call(ctx, c.cache.Get)
}

func (c *cachedKeys) refetch(ctx context.Context) (jwk.Set, error) {
	c.mu.Lock()
	now := c.clock()
	if !c.lastRefetch.IsZero() && now.Sub(c.lastRefetch) < c.minGap {
		c.mu.Unlock()
		return nil, errRateLimited
	}
	c.lastRefetch = now
	c.mu.Unlock()
	c.log.DebugContext(ctx, "refetching mana-auth JWKS", "url", c.url)
	return c.call(ctx, c.cache.Refresh)
}

// call runs a cache operation without letting it outlive ctx or the fetch
// timeout: the cache serialises fetches of one URL, so a caller could
// otherwise wait behind a fetch that hangs.
func (c *cachedKeys) call(ctx context.Context, f func(context.Context, string) (jwk.Set, error)) (jwk.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type result struct {
		set jwk.Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		set, err := f(ctx, c.url)
		done <- result{set, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		if r.set == nil || r.set.Len() == 0 {
			return nil, fmt.Errorf("JWKS at %s holds no keys", c.url)
		}
		return r.set, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fetching JWKS: %w", ctx.Err())
	}
}

// JWKS fetches mana-auth's public signing keys once (retried like any GET).
// A Verifier keeps its own cache; this is for inspection and contract tests.
func (c *Client) JWKS(ctx context.Context) (jwk.Set, error) {
	var raw json.RawMessage
	if err := c.do(ctx, request{op: "jwks", method: http.MethodGet, path: JWKSPath, idempotent: true}, &raw); err != nil {
		return nil, err
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, &UpstreamError{Op: "jwks", Status: http.StatusOK, Body: excerpt(raw), Err: fmt.Errorf("parsing JWKS: %w", err)}
	}
	return set, nil
}
