package proxy

import (
	"net/http"
	"slices"
	"testing"
)

// TestRemoveForged: every spelling of an identity header is removed —
// other cases (as HTTP/2 and raw header maps carry them), underscores for
// dashes, unknown X-Keytool-* names, X-Forwarded-* and Forwarded — from
// headers and trailers alike; the three X-Forwarded-* that the proxy set
// itself stay in the headers; other headers are untouched.
func TestRemoveForged(t *testing.T) {
	h := http.Header{
		"X-Keytool-Name": {"admin"}, "x-keytool-fingerprint": {"SHA256:forged"}, "X_Keytool_Key_Id": {"x"},
		"X-Keytool-Role": {"admin"}, "X-Forwarded-Client-Cert": {"Hash=00"}, "x_forwarded_client_cert": {"Hash=00"},
		"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Host": {"h"}, "X-Forwarded-Proto": {"https"},
		"X_Forwarded_For": {"6.6.6.6"}, "X-Forwarded-Port": {"1"}, "Forwarded": {"for=6.6.6.6"}, "FORWARDED": {"for=6.6.6.6"},
		"Accept": {"*/*"}, "X-Request-Id": {"abc"},
	}
	trailer := http.Header{"X-Keytool-Name": {"admin"}, "X-Forwarded-For": {"6.6.6.6"}, "X-Checksum": {"1"}}
	removeForged(h, true)
	removeForged(trailer, false)
	keys := func(h http.Header) []string {
		var k []string
		for name := range h {
			k = append(k, name)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(h), []string{"Accept", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id"}; !slices.Equal(got, want) {
		t.Errorf("headers left: %v, want %v", got, want)
	}
	if got, want := keys(trailer), []string{"X-Checksum"}; !slices.Equal(got, want) {
		t.Errorf("trailers left: %v, want %v", got, want)
	}
}
