// Command keytool manages the keys of the SSH-style trust model for TLS:
// an identity per daemon and per client, the client keys a server
// authorizes, and the host keys a client trusts. See docs/cli.md.
//
// The command line itself is the package internal/cli; this is its core
// build.
package main

import (
	"os"

	"github.com/keytool/keytool/internal/cli"
)

// The man pages in man/ are made from what --help shows (internal/cli/man.go).
//go:generate go run . __man ../../man

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
