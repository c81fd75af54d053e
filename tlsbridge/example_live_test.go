package tlsbridge_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// Live revocation for an HTTP server: the connection of a client whose
// key is revoked while it is open is closed within a second, and logged
// ("closing: key no longer admitted", with the key and the reason).
func ExampleServer_Live() {
	ctx := context.Background()
	serverHome, serverID := mustHome()
	clientHome, clientID := mustHome()
	defer os.RemoveAll(serverHome)
	defer os.RemoveAll(clientHome)

	clients := authkeys.Open(ctx, authkeys.HomeOptions(serverHome))
	defer clients.Close()
	srv, err := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		log.Fatal(err)
	}
	// Decide the open connections again on each change of the store and
	// every second; close those of keys no longer admitted.
	live := srv.Live(tlsbridge.LiveOptions{Changes: clients, Logger: slog.New(slog.DiscardHandler)})
	defer live.Close()

	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a stream that never ends on its own
	})
	ts := httptest.NewUnstartedServer(srv.RequireAuthenticated(stream))
	ts.TLS = srv.TLSConfig()
	ts.Config.ConnState = live.ConnState // HTTP/1.1 and HTTP/2 alike
	ts.Config.ConnContext = tlsbridge.ConnContext
	ts.StartTLS()
	defer ts.Close()

	if _, err := clients.Add(clientID.Key.PublicKey(), "alice", authkeys.AddNew); err != nil {
		log.Fatal(err)
	}
	hosts := knownhosts.Open(ctx, knownhosts.HomeOptions(clientHome))
	defer hosts.Close()
	if _, err := hosts.Add(ts.Listener.Addr().String(), serverID.Key.PublicKey()); err != nil {
		log.Fatal(err)
	}
	cli, err := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := (&http.Client{Transport: cli.Transport(), Timeout: 5 * time.Second}).Get(ts.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	line, _ := body.ReadString('\n')
	fmt.Print(line)

	// What `keytool revoke` does; the open connection ends.
	if _, err := clients.Revoke(clientID.Key.PublicKey()); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	_, err = body.ReadString('\n')
	fmt.Println("stream ended:", err != nil, "within a second:", time.Since(start) < time.Second)
	// Output:
	// hello, alice
	// stream ended: true within a second: true
}
