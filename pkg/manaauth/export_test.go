package manaauth

// FullChecks reports how many tokens v verified in full (signature and
// claims) rather than from its token cache.
func FullChecks(v *Verifier) int64 { return v.fullChecks.Load() }

// CachedTokens reports how many verified tokens v holds.
func CachedTokens(v *Verifier) int { return v.cache.len() }
