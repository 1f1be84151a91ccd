package devauth

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestSignedValueWithPlusVerifiesDecoded: a signature with '+' in it (a
// third of base64 signatures have one) verifies in both spellings; the
// decoded one was once unescaped again, which turned '+' into a space.
func TestSignedValueWithPlusVerifiesDecoded(t *testing.T) {
	t.Parallel()
	j := newCookieJar([]byte("key"), false)
	for i := 0; i < 1000; i++ {
		value := "token" + strconv.Itoa(i)
		if !strings.Contains(j.signature(value), "+") {
			continue
		}
		encoded := j.sign(value)
		decoded, err := url.QueryUnescape(encoded)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{encoded, decoded} {
			if got, ok := j.verify(v); !ok || got != value {
				t.Fatalf("verify(%q) = %q, %v; want %q", v, got, ok, value)
			}
		}
		return
	}
	t.Fatal("no signature with '+' in 1000 tries")
}
