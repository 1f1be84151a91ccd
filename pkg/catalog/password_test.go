package catalog_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/pkg/catalog"
)

// passwordVectors: the first two are the platform's published vectors
// (shared with the runner and the browser tests); the rest were produced with
// `printf %s EMAIL | openssl dgst -sha256 -hmac KEY -binary | openssl base64 -A`
// and are also re-derived with openssl on every run.
var passwordVectors = []struct {
	name, secret, email, want string
}{
	{"DesignAnnaDevSecret", catalog.DevSeedSecret, "persona.anna@mana.test", "1FJ7w8KbjK5CWVa8NqfobexAFNuQKxiA"},
	{"DesignMayaShortSecret", "s3cr3t", "persona.maya@mana.test", "So7vRZV0MW8PIvhsoOJVZQx212XZ7kkh"},
	{"DevSecretOtherEmail", catalog.DevSeedSecret, "persona.ben@mana.test", "UQ4j64WupivIkoy7XxwPFgA9cQVKXKsW"},
	{"MixedCaseSecret", "prod-Secret-42", "persona.marcus@mana.test", "jegsuYOPEoH8tzxeTHdrRZ8piRbveHpU"},
	{"NonASCIISecret", "schlüssel-ünïcödé", "persona.kai@mana.test", "dyT3KjN7Nny0EKXsQsGryjgIJzYmKpkQ"},
	{"OneByteSecret", "a", "persona.paul@mana.test", "7BkUzEGoIAcAhwZbP2G0F9rToyzk3c3u"},
	{"SecretWithBase64Symbols", "key with spaces and / + = signs", "persona.lena@mana.test", "H5efrTgXg3sfPQRH1h7CP9M7SugZ8kBX"},
	{"SecretLongerThanHMACBlock", strings.Repeat("x", 100), "persona.julia@mana.test", "vq7cDUlliQBGhAfuVj091XjKu5tGiOIY"},
	{"SameSecretOtherEmail", "s3cr3t", "persona.sofia@mana.test", "wdm6LRdyXMqtMULkOJqNC0QE8DXlE4wZ"},
}

func TestPassword(t *testing.T) {
	t.Parallel()
	for _, v := range passwordVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			got := catalog.Password(v.secret, v.email)
			require.Equal(t, v.want, got)
			require.Len(t, got, catalog.PasswordLength)
			require.Regexp(t, `^[A-Za-z0-9]+$`, got)
		})
	}
}

// TestPasswordMatchesOpenSSL re-derives every vector, plus the whole
// catalog's addresses under two secrets, with OpenSSL's HMAC and base64, and
// the filter written differently (a regexp), so the Go code is checked
// against an independent implementation rather than against itself.
func TestPasswordMatchesOpenSSL(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("openssl")
	require.NoError(t, err, "openssl is needed to cross-check the password derivation; install it (e.g. apt-get install openssl)")

	type pair struct{ secret, email string }
	pairs := make([]pair, 0, len(passwordVectors)+20)
	for _, v := range passwordVectors {
		pairs = append(pairs, pair{v.secret, v.email})
	}
	for _, name := range []string{"anna", "ben", "marcus", "lena", "sofia", "tom", "kai", "julia", "paul", "maya"} {
		pairs = append(pairs, pair{catalog.DevSeedSecret, "persona." + name + "@mana.test"}, pair{"rotated-2024", "persona." + name + "@mana.test"})
	}
	for _, p := range pairs {
		t.Run(p.email+"/"+p.secret, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, opensslPassword(t, p.secret, p.email), catalog.Password(p.secret, p.email))
		})
	}
}

var notAlnum = regexp.MustCompile(`[^A-Za-z0-9]`)

func opensslPassword(t *testing.T, secret, email string) string {
	t.Helper()
	dgst := exec.Command("openssl", "dgst", "-sha256", "-hmac", secret, "-binary")
	dgst.Stdin = strings.NewReader(email)
	mac, err := dgst.Output()
	require.NoError(t, err, "openssl dgst")
	require.Len(t, mac, 32)

	enc := exec.Command("openssl", "base64", "-A")
	enc.Stdin = bytes.NewReader(mac)
	b64, err := enc.Output()
	require.NoError(t, err, "openssl base64")

	clean := notAlnum.ReplaceAllString(strings.TrimSpace(string(b64)), "")
	if len(clean) > 32 {
		clean = clean[:32]
	}
	return clean
}

func TestSeedSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, nodeEnv, secret string
		want                  string
		wantDev               bool
		wantErr               bool
	}{
		{"DevelopmentUnsetFallsBack", "", "", catalog.DevSeedSecret, true, false},
		{"DevelopmentBlankFallsBack", "development", "  ", catalog.DevSeedSecret, true, false},
		{"DevelopmentRealSecretUsedVerbatim", "test", " s3cr3t ", " s3cr3t ", false, false},
		{"DevelopmentExplicitDevSecretIsDev", "", catalog.DevSeedSecret, catalog.DevSeedSecret, true, false},
		{"ProductionUnsetRefused", "production", "", "", false, true},
		{"ProductionBlankRefused", "production", " \t", "", false, true},
		{"ProductionDevDefaultRefused", "production", catalog.DevSeedSecret, "", false, true},
		{"ProductionDevDefaultWithSpacesRefused", "production", catalog.DevSeedSecret + "\n", "", false, true},
		{"ProductionAnyCaseRefused", " Production ", "", "", false, true},
		{"ProductionRealSecretAccepted", "production", "s3cr3t", "s3cr3t", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, dev, err := catalog.SeedSecret(tc.nodeEnv, tc.secret)
			if tc.wantErr {
				require.ErrorIs(t, err, catalog.ErrNoProductionSecret)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantDev, dev)
		})
	}
}
