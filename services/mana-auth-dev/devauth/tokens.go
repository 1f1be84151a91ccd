package devauth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// signer mints JWTs the way Better Auth's jwt plugin does: header
// {"alg":"EdDSA","kid":...} without typ, aud the plain string "mana", no
// nbf and no jti. The compact form is assembled by hand so the header is
// exactly that.
type signer struct {
	kid      string
	key      ed25519.PrivateKey
	issuer   string
	audience string
	ttl      time.Duration
}

type tokenClaims struct {
	Sub   string `json:"sub"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Sid   string `json:"sid"`
	Tier  string `json:"tier"`
	Iat   int64  `json:"iat"`
	Iss   string `json:"iss"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
}

func (s *signer) mint(u *user, sessionID string, now time.Time) (string, error) {
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"EdDSA", s.kid})
	if err != nil {
		return "", err
	}
	iat := now.Unix()
	payload, err := json.Marshal(tokenClaims{
		Sub: u.ID, Email: u.Email, Role: u.Role, Sid: sessionID, Tier: u.AccessTier,
		Iat: iat, Iss: s.issuer, Aud: s.audience, Exp: iat + int64(s.ttl/time.Second),
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload)
	sig := ed25519.Sign(s.key, []byte(input))
	return input + "." + enc.EncodeToString(sig), nil
}

// publicJWK is one JWKS entry in Better Auth's shape: alg, crv, x, kty, kid
// and no use.
type publicJWK struct {
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
}

func (s *signer) jwks() map[string][]publicJWK {
	pub := s.key.Public().(ed25519.PublicKey)
	return map[string][]publicJWK{"keys": {{
		Alg: "EdDSA", Crv: "Ed25519", Kty: "OKP", Kid: s.kid,
		X: base64.RawURLEncoding.EncodeToString(pub),
	}}}
}

// keySet is the JWKS as a jwx set, for verifying our own tokens.
func (s *signer) keySet() (jwk.Set, error) {
	raw, err := json.Marshal(s.jwks())
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing own JWKS: %w", err)
	}
	return set, nil
}
