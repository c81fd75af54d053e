package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// cgiName is a header's name as lighttpd's CGI and FastCGI (every byte
// but a letter or digit becomes "_") and PHP (which turns the "." and " "
// of a variable's name into "_" besides CGI's "-") hand it to the
// application: HTTP_X_KEYTOOL_NAME for X-Keytool-Name, X.Keytool.Name
// and X~Keytool~Name alike.
func cgiName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "HTTP_" + string(b)
}

// headersThrough starts a proxy in HTTP mode, alice's key authorized,
// before a target that hands back the headers of each request. send
// writes req, a raw request, as alice on a connection of its own, checks
// that it was answered 200, and returns the headers the target got.
func headersThrough(t *testing.T) (send func(req string) http.Header) {
	got := make(chan http.Header, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(target.Close)
	w := startWatchedWith(t, strings.TrimPrefix(target.URL, "http://"), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	return func(req string) http.Header {
		t.Helper()
		conn := dialTLS(t, alice, w.addr)
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %s", req, resp.Status)
		}
		return <-got
	}
}

// TestHTTPIdentityOtherSpellings: a client sends identity headers spelled
// with other separators than "-" and "_" — ".", "~", "+", "!", all token
// characters Go's server accepts in a name — and the identity headers of
// identity-aware proxies a target may have been set up behind. A target that reads headers
// through CGI or FastCGI (lighttpd), or PHP ($_SERVER), sees each of them
// as the header it imitates, and the last one of a name wins there:
// X.Keytool.Name sorts after X-Keytool-Name, so the proxy's own value is
// overwritten by the client's. Every header the target receives that
// reads as an identity header that way must be the proxy's own.
func TestHTTPIdentityOtherSpellings(t *testing.T) {
	send := headersThrough(t)
	forged := []string{
		"X.Keytool.Name", "X~Keytool~Name", "X-Keytool.Name", "X+Keytool+Fingerprint", "X!Keytool!Key!Id",
		"X.Forwarded.Client.Cert", "X.Forwarded.For", "X.Real.Ip", "Remote.User", "X.Remote.User",
		"X.Ssl.Client.S.Dn", "Client.Cert", "X`Keytool`Role", "X|Auth|Request|User", "X'Keytool'Name",
		// The address, certificate and user as WebLogic's plug-in, IIS ARR,
		// Azure App Service, Google IAP, AWS ALB's OIDC, Cloudflare Access
		// and Grafana's auth proxy pass them to the application behind.
		"WL-Proxy-Client-IP", "Proxy-Client-IP", "WL-Proxy-Client-Cert", "WL-Proxy-SSL", "X-ARR-ClientCert",
		"X-MS-Client-Principal-Name", "X-MS-Client-Principal", "X-Goog-Authenticated-User-Email",
		"X-Goog-IAP-JWT-Assertion", "X-Amzn-Oidc-Identity", "Cf-Access-Authenticated-User-Email",
		"X-WEBAUTH-USER", "X-Original-Forwarded-For", "X-Originating-IP",
	}
	var req strings.Builder
	req.WriteString("GET / HTTP/1.1\r\nHost: app.example\r\n")
	for _, name := range forged {
		fmt.Fprintf(&req, "%s: admin\r\n", name)
	}
	req.WriteString("\r\n")
	hdr := send(req.String())
	own := map[string]bool{}
	for _, name := range []string{HeaderName, HeaderFingerprint, HeaderKeyID, HeaderClientCert, "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		own[name] = true
	}
	for name, v := range hdr {
		if own[name] {
			continue
		}
		for _, f := range forged {
			if cgiName(name) == cgiName(f) {
				t.Errorf("the target got %q: %q, which a CGI or PHP target reads as %s", name, v, cgiName(f))
				break
			}
		}
	}
	if v := hdr.Values(HeaderName); len(v) != 1 || v[0] != "alice" {
		t.Errorf("%s: %q, want alice", HeaderName, v)
	}
}

// TestHTTPForwardedHostIsOneElement: the Host a client sends ends up in
// the Forwarded header the proxy writes (host="…"). Go's server accepts
// a Host holding "," and "=", so "app.example,for=6.6.6.6" made
// Forwarded read for=127.0.0.1;host="app.example,for=6.6.6.6";proto=https,
// which a parser that splits the elements at "," before it reads quotes
// — and takes the last element, the nearest proxy's — reads as a
// request from 6.6.6.6. The Forwarded header must stay one element
// whatever the Host, and its for= the client's address.
func TestHTTPForwardedHostIsOneElement(t *testing.T) {
	send := headersThrough(t)
	for _, host := range []string{"app.example,for=6.6.6.6", "app.example:443", "[::1]:8443"} {
		fwd := send(fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)).Values("Forwarded")
		if len(fwd) != 1 || strings.Contains(fwd[0], ",") || !strings.HasPrefix(fwd[0], "for=127.0.0.1;") {
			t.Errorf("Host %q: Forwarded %q, want one element for 127.0.0.1", host, fwd)
		}
		if !strings.Contains(host, ",") && !strings.Contains(fwd[0], `host="`+host+`"`) {
			t.Errorf("Host %q: Forwarded %q, want the host in it", host, fwd)
		}
	}
}
