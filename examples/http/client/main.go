// Command client is a net/http client wrapped with keytool: it presents
// its own key and checks the server's against HOME/trusted_hosts.d, asking
// on the terminal about a host it does not know yet. Compared with a plain
// client, keytool adds the six lines marked below and changes one.
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

	// Added: the identity, the pinned host keys, the checking client.
	id, err := tlsbridge.LoadHomeIdentity(*home, tlsbridge.CertOptions{})
	check(err)
	hosts := knownhosts.Open(context.Background(), knownhosts.HomeOptions(*home))
	cli, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Ask, Prompt: tlsbridge.Terminal{}})
	check(err)

	// Changed: was http.DefaultClient.
	client := &http.Client{Transport: cli.Transport()}
	resp, err := client.Get(flag.Arg(0))
	check(err)
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
