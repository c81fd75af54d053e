// Command client is a net/http client wrapped with keytool: it presents
// its own key and checks the server's against HOME/trusted_hosts.d, asking
// on the terminal about a host it does not know yet. Compared with a plain
// client, keytool adds the lines marked below and changes one. A
// connection to a server whose key stops being trusted while it is open —
// its pin removed, its key revoked, another key pinned for the address —
// is closed within a second (live revocation), and logged: a response
// still streaming ends with an error.
//
//	keytool -H /tmp/cli gen
//	go run ./examples/http/client -home /tmp/cli https://127.0.0.1:8443/
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

func main() {
	home := flag.String("home", "", "keytool home of the client")
	flag.Parse()

	// Added: the identity, the watched pinned host keys, the checking client.
	id, err := tlsbridge.LoadHomeIdentity(*home, tlsbridge.CertOptions{})
	check(err)
	hosts := knownhosts.Open(context.Background(), knownhosts.HomeOptions(*home))
	cli, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Ask, Prompt: tlsbridge.Terminal{}})
	check(err)
	// Added: live revocation — the open connections to a server whose key
	// is no longer trusted are closed on each change of the store.
	live := cli.Live(tlsbridge.LiveOptions{Changes: hosts})
	defer live.Close()

	// Changed: was http.DefaultClient.
	client := &http.Client{Transport: live.Transport()}
	resp, err := client.Get(flag.Arg(0))
	check(err)
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	check(err)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
