// Command keytool is keytool's command line with etcd trust stores: the
// core keytool's commands (internal/cli), and --store etcd://… and
// etcds://… for authorize, revoke, trust-host, proxy and sync
// (docs/fleet.md, "Command line"). It lives in the etcd module so that the
// core keytool does not depend on etcd and gRPC. Build it from a checkout:
//
//	cd etcd && go build -o keytool ./cmd/keytool
package main

import (
	"os"

	"github.com/keytool/keytool/internal/cli"
)

func init() { cli.RegisterStore(backend) }

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
