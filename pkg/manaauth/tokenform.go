package manaauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The token form the Verifier accepts, checked here before jwx sees the
// token (issue 9, D12). jwx is lenient where a verifier should not be: it
// decodes padded and standard-alphabet base64, skips line breaks, ignores
// the unused low bits of a segment's last character, accepts numeric dates
// written as strings, lets a repeated JSON key override the first and
// ignores header parameters it does not act on. Each leniency gives one
// signed token several spellings (or several meanings), which is wrong for
// a gate and for a cache keyed by the token string. The form is what
// mana-auth (Better Auth's jwt plugin) mints:
//
//   - exactly three segments, each canonical unpadded base64url: alphabet
//     A–Z a–z 0–9 - _ only, no '=', no whitespace, a length that unpadded
//     base64url can have and no stray bits in the last character, so
//     re-encoding the decoded bytes gives back the same segment;
//   - the header and the payload are UTF-8 JSON objects without repeated
//     keys and without trailing data;
//   - the header holds alg "EdDSA", a non-empty string kid and optionally
//     typ "JWT", nothing else: crit, jku, x5u, x5c, jwk, b64 and any other
//     parameter are refused, since each asks the verifier to do something
//     (fetch a key, trust an embedded one, change what is signed) that it
//     must not;
//   - the payload's exp (required), iat and nbf (optional) are JSON integers
//     of seconds: not strings, not fractions or exponents (mana-auth writes
//     whole seconds, and how a library rounds 1.9e9 or 900.5 is not
//     something an expiry check should depend on);
//   - sub is a non-empty string;
//   - the signature is 64 bytes, the size of an Ed25519 signature.
//
// Everything else (signature, iss, aud, exp against the clock) stays with
// jwx and Verify.

// compactToken is a token whose form has been checked.
type compactToken struct {
	kid string
	exp int64
}

const ed25519SignatureSize = 64

// maxNumericDateDigits bounds exp, iat and nbf: twelve digits reach the
// year 33658, and a bound keeps every value exact in an int64 and in jwx's
// own parsing.
const maxNumericDateDigits = 12

// refusedHeaders are header parameters named in the error when present:
// each would make the token, not the JWKS, say how to verify it.
var refusedHeaders = []string{"crit", "jku", "x5u", "x5c", "x5t", "x5t#S256", "jwk", "b64", "zip", "enc"}

// parseCompact checks token's form and returns what Verify needs from it.
// Errors wrap ErrInvalidToken and never quote the token.
func parseCompact(token string) (*compactToken, error) {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return nil, invalid("not a compact JWS: %d segments, want 3", len(segs))
	}
	header, err := decodeSegment("header", segs[0])
	if err != nil {
		return nil, err
	}
	payload, err := decodeSegment("payload", segs[1])
	if err != nil {
		return nil, err
	}
	sig, err := decodeSegment("signature", segs[2])
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519SignatureSize {
		return nil, invalid("signature is %d bytes, want %d", len(sig), ed25519SignatureSize)
	}
	ct := &compactToken{}
	if err := ct.checkHeader(header); err != nil {
		return nil, err
	}
	if err := ct.checkPayload(payload); err != nil {
		return nil, err
	}
	return ct, nil
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// decodeSegment decodes one canonical unpadded base64url segment.
func decodeSegment(name, seg string) ([]byte, error) {
	if seg == "" {
		return nil, invalid("empty %s segment", name)
	}
	for i := 0; i < len(seg); i++ {
		if !isBase64URL(seg[i]) {
			return nil, invalid("%s segment: byte %d is not unpadded base64url", name, i)
		}
	}
	if len(seg)%4 == 1 {
		return nil, invalid("%s segment: length %d is not a base64url length", name, len(seg))
	}
	// Strict: the unused low bits of the last character must be zero, or
	// 2^4 (or 2^2) spellings would decode to the same bytes.
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, invalid("%s segment: not canonical base64url", name)
	}
	return b, nil
}

func (ct *compactToken) checkHeader(raw []byte) error {
	hdr, err := jsonObject("header", raw)
	if err != nil {
		return err
	}
	for _, name := range refusedHeaders {
		if _, ok := hdr[name]; ok {
			return invalid("header parameter %q refused", name)
		}
	}
	for name := range hdr {
		switch name {
		case "alg", "kid", "typ":
		default:
			return invalid("header parameter %q not accepted", clip(name))
		}
	}
	alg, ok := jsonString(hdr["alg"])
	if !ok {
		return invalid("header alg missing or not a string")
	}
	// The algorithm is ours, not the token's: anything but EdDSA (none,
	// HS256 keyed with the public key, RS/ES...) is refused before any key
	// is touched.
	if alg != "EdDSA" {
		return invalid("algorithm %q not accepted", clip(alg))
	}
	if ct.kid, ok = jsonString(hdr["kid"]); !ok || ct.kid == "" {
		return invalid("no kid in header")
	}
	if raw, present := hdr["typ"]; present {
		if typ, ok := jsonString(raw); !ok || typ != "JWT" {
			return invalid("header typ is not \"JWT\"")
		}
	}
	return nil
}

func (ct *compactToken) checkPayload(raw []byte) error {
	claims, err := jsonObject("payload", raw)
	if err != nil {
		return err
	}
	if sub, ok := jsonString(claims["sub"]); !ok || sub == "" {
		return invalid("sub missing, empty or not a string")
	}
	exp, present, ok := numericDate(claims, "exp")
	if !present {
		return invalid("exp missing")
	}
	if !ok {
		return invalid("exp is not a JSON integer of seconds")
	}
	ct.exp = exp
	for _, name := range []string{"iat", "nbf"} {
		if _, present, ok := numericDate(claims, name); present && !ok {
			return invalid("%s is not a JSON integer of seconds", name)
		}
	}
	return nil
}

// jsonObject decodes a JSON object's members, refusing invalid UTF-8, a
// repeated key and anything after the closing brace.
func jsonObject(name string, data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, invalid("%s is not UTF-8", name)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, invalid("%s is not a JSON object", name)
	}
	obj := make(map[string]json.RawMessage, 12)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("%s is not valid JSON", name)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, invalid("%s is not valid JSON", name)
		}
		if _, dup := obj[key]; dup {
			return nil, invalid("%s repeats member %q", name, clip(key))
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, invalid("%s is not valid JSON", name)
		}
		obj[key] = val
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, invalid("%s is not valid JSON", name)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("%s has data after the JSON object", name)
	}
	return obj, nil
}

// jsonString reports raw as a Go string if it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate reads claims[name] as a non-negative JSON integer of at most
// maxNumericDateDigits digits, without sign, fraction, exponent or leading
// zero.
func numericDate(claims map[string]json.RawMessage, name string) (v int64, present, ok bool) {
	raw, present := claims[name]
	if !present {
		return 0, false, false
	}
	s := string(raw)
	if s == "" || len(s) > maxNumericDateDigits || (s[0] == '0' && len(s) > 1) {
		return 0, true, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, true, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, true, err == nil
}

// clip shortens a token-supplied string quoted in an error.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
