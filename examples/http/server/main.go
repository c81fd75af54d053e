// Command server is a net/http server wrapped with keytool: it admits the
// clients whose keys are in HOME/authorized_keys.d and greets them by name.
// Compared with a plain server, keytool adds the ten lines marked below
// and changes two. A client whose key is removed, revoked or expires while
// connected is cut off within a second (live revocation), and logged.
//
//	keytool -H /tmp/srv gen
//	go run ./examples/http/server -home /tmp/srv -listen 127.0.0.1:8443
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/tlsbridge"
)

func main() {
	home := flag.String("home", "", "keytool home of the server")
	listen := flag.String("listen", "127.0.0.1:8443", "address to listen on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
	})

	// Added: the identity, the watched authorized keys, the checking server.
	id, err := tlsbridge.LoadHomeIdentity(*home, tlsbridge.CertOptions{})
	check(err)
	clients := authkeys.Open(context.Background(), authkeys.HomeOptions(*home))
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients})
	check(err)
	// Added: live revocation — the open connections of a key no longer
	// admitted are closed on each change of the store and every second.
	live := srv.Live(tlsbridge.LiveOptions{Changes: clients})
	defer live.Close()

	// Added: the listener, so that its connections are under the
	// handshake budget — a client may send 64 KiB before it is admitted,
	// where crypto/tls alone would buffer a certificate chain of 256 KiB
	// from anyone.
	ln, err := net.Listen("tcp", *listen)
	check(err)

	// Changed: Handler was mux, and ListenAndServe took no certificate
	// (and no listener). ConnContext: "from" networks are checked against
	// the connection's address, never r.RemoteAddr (which middleware
	// rewrites from headers).
	s := &http.Server{Handler: srv.RequireAuthenticated(mux), TLSConfig: srv.TLSConfig(), ConnState: live.ConnState, ConnContext: tlsbridge.ConnContext}
	log.Printf("listening on %s as %s", *listen, id.Key.Fingerprint())
	log.Fatal(s.ServeTLS(tlsbridge.BudgetListener(ln), "", ""))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
