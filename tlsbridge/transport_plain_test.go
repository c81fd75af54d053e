package tlsbridge

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// The transports of a Client and of its LiveConns make only TLS
// connections whose server key they check: a request to an http:// URL —
// typed by mistake, or a redirect from a pinned server to one — is
// refused before anything is dialled. Before, net/http dialled it in
// plain text with its default dialer: no pin checked, the request (with
// the headers a same-host redirect keeps: Authorization, cookies) sent to
// whoever answered, and the answer taken as the pinned server's.
func TestTransportRefusesPlainHTTP(t *testing.T) {
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var plainAsked atomic.Int32
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainAsked.Add(1)
		_, _ = w.Write([]byte("not the pinned server\n"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = plain.Serve(plainLn) }()
	t.Cleanup(func() { _ = plain.Close() })
	plainURL := "http://" + plainLn.Addr().String() + "/"

	srvHome, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvHome.authorize(t, "c", cli.id.Key)
	srv := mustServer(t, srvHome, ServerOptions{})
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pinned := &http.Server{Handler: srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plainURL, http.StatusFound)
	})), TLSConfig: srv.TLSConfig(), ConnContext: ConnContext, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = pinned.ServeTLS(tlsLn, "", "") }()
	t.Cleanup(func() { _ = pinned.Close() })
	cli.pin(t, tlsLn.Addr().String(), srvHome.id.Key)

	c := cli.client(t, ClientOptions{})
	live := c.Live(LiveOptions{})
	defer live.Close()
	for name, tr := range map[string]*http.Transport{"Client.Transport": c.Transport(), "LiveConns.Transport": live.Transport()} {
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for what, url := range map[string]string{"an http:// URL": plainURL, "a pinned server's redirect to one": "https://" + tlsLn.Addr().String() + "/"} {
			resp, err := hc.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			var plainErr *PlainTextError
			if !errors.As(err, &plainErr) || !strings.Contains(err.Error(), plainLn.Addr().String()) {
				t.Errorf("%s, %s: %v, want a *PlainTextError naming %s", name, what, err, plainLn.Addr())
			}
		}
		tr.CloseIdleConnections()
	}
	if n := plainAsked.Load(); n != 0 {
		t.Errorf("the plain-text server was asked %d times", n)
	}
}

// A Proxy set on a keytool transport by its caller is refused at every
// dial, an http:// proxy's (net/http dials it with DialContext) as an
// https:// one's (DialTLSContext: keytool's dial, which checks only the
// proxy's key — after CONNECT, net/http would make the server's TLS
// connection itself, with no pin: found by review), and nothing is
// connected to. The error says the Proxy is why (it blamed an http://
// URL for an https:// request).
func TestTransportRefusesAProxySetOnIt(t *testing.T) {
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	testnet.ServeEach(t, proxyLn, func(net.Conn) { accepted.Add(1) })
	cli := newHome(t, jwk.EC256)
	c := cli.client(t, ClientOptions{})
	live := c.Live(LiveOptions{})
	defer live.Close()
	for name, tr := range map[string]*http.Transport{"Client.Transport": c.Transport(), "LiveConns.Transport": live.Transport()} {
		for _, scheme := range []string{"http", "https"} {
			proxyURL, err := url.Parse(scheme + "://" + proxyLn.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			tr.Proxy = http.ProxyURL(proxyURL)
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			resp, err := hc.Get("https://127.0.0.1:1/")
			if err == nil {
				resp.Body.Close()
			}
			var proxyErr *ProxySetError
			if !errors.As(err, &proxyErr) || proxyErr.Addr != proxyLn.Addr().String() || !strings.Contains(err.Error(), "Proxy is set") {
				t.Errorf("%s through an %s:// Proxy set on it: %v, want a *ProxySetError naming %s", name, scheme, err, proxyLn.Addr())
			}
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the proxy was connected to %d times", n)
	}
}
