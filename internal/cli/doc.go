// Package cli is the keytool command line: its commands, flags, help, man
// pages, completion and the advice that turns the library's typed errors
// into what to type next. It manages the keys of the SSH-style trust model
// for TLS — an identity per daemon and per client, the client keys a server
// authorizes, the host keys a client trusts — on top of the library
// packages (authkeys, knownhosts, tlsbridge, proxy, enroll); see docs/cli.md.
//
// It is a package rather than the body of cmd/keytool so that more than one
// binary can be built from the same command-line code: cmd/keytool, the core
// build, and the etcd module's keytool, which adds a trust source the core
// module does not depend on. Each calls Main.
//
// The tests run the command line as real processes: TestMain makes the test
// binary act as keytool, and the testscript files in testdata/script double
// as documentation of each command.
package cli
