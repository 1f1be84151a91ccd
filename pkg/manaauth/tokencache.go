package manaauth

import (
	"bytes"
	"container/list"
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
	"time"
)

// Token cache defaults. An admin UI sends the same JWT with every request
// for its 15-minute life; the cache lets all but the first skip the
// signature check and the claim parsing.
const (
	// DefaultTokenCacheSize is the default bound on cached tokens.
	DefaultTokenCacheSize = 10_000
	// MaxTokenCacheAge is the longest a verified token is trusted without
	// being checked again, even if its exp is later.
	MaxTokenCacheAge = 5 * time.Minute
)

// WithTokenCache bounds the Verifier's cache of verified tokens to
// maxEntries (the oldest entry is evicted first); 0 or less turns the
// cache off. Default DefaultTokenCacheSize.
//
// A cached token is served until the first of its exp and MaxTokenCacheAge
// after it was verified, and only while the JWKS still lists its kid with
// the same key: entries whose kid left the JWKS are dropped when the key
// set is fetched again. Only tokens that passed verification are cached, so
// forged tokens can neither fill the cache nor evict its entries.
func WithTokenCache(maxEntries int) Option {
	return func(o *options) { o.tokenCacheSize = maxEntries }
}

type tokenKey [sha256.Size]byte

// tokenCache holds verified tokens by the SHA-256 of their exact text
// (tokens are in canonical form, so one token has one key). Safe for
// concurrent use.
type tokenCache struct {
	maxEntries int
	maxAge     time.Duration

	mu      sync.Mutex
	entries map[tokenKey]*list.Element
	order   *list.List // of *cacheEntry, oldest insertion first
}

type cacheEntry struct {
	key    tokenKey
	kid    string
	pub    ed25519.PublicKey // the key that verified it
	claims Claims
	from   time.Time // verified at
	until  time.Time // served while now < until
}

// newTokenCache returns nil (no caching) if maxEntries < 1.
func newTokenCache(maxEntries int, maxAge time.Duration) *tokenCache {
	if maxEntries < 1 {
		return nil
	}
	return &tokenCache{
		maxEntries: maxEntries, maxAge: maxAge,
		entries: make(map[tokenKey]*list.Element), order: list.New(),
	}
}

// get returns a copy of the cached claims of token if they may still be
// served at now, and the kid and key that verified them. The caller checks
// that the key is still current.
func (c *tokenCache) get(token string, now time.Time) (claims *Claims, kid string, pub ed25519.PublicKey, ok bool) {
	if c == nil {
		return nil, "", nil, false
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, "", nil, false
	}
	e := el.Value.(*cacheEntry)
	// A clock that went back before the verification is as suspect as one
	// past the deadline: verify again.
	if !now.Before(e.until) || now.Before(e.from) {
		c.removeLocked(el)
		return nil, "", nil, false
	}
	cl := e.claims
	return &cl, e.kid, e.pub, true
}

// put caches claims of token, verified at now with pub (named kid).
func (c *tokenCache) put(token, kid string, pub ed25519.PublicKey, claims *Claims, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(c.maxAge)
	if claims.ExpiresAt.Before(until) {
		until = claims.ExpiresAt
	}
	if !now.Before(until) {
		return // accepted within the clock skew after exp: not worth keeping
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
	for c.order.Len() >= c.maxEntries {
		c.removeLocked(c.order.Front())
	}
	e := &cacheEntry{key: key, kid: kid, pub: pub, claims: *claims, from: now, until: until}
	c.entries[key] = c.order.PushBack(e)
}

// drop forgets token.
func (c *tokenCache) drop(token string) {
	if c == nil {
		return
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
}

// retain drops every entry whose kid and key current no longer vouches
// for, and reports how many it dropped.
func (c *tokenCache) retain(current func(kid string, pub ed25519.PublicKey) bool) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dropped := 0
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*cacheEntry)
		if !current(e.kid, e.pub) {
			c.removeLocked(el)
			dropped++
		}
		el = next
	}
	return dropped
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *tokenCache) removeLocked(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.order.Remove(el)
}

func samePublicKey(a, b ed25519.PublicKey) bool {
	return len(a) == ed25519.PublicKeySize && bytes.Equal(a, b)
}
