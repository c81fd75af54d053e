package etcd

import (
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/internal/termtext"
)

// Kind is one of the three kinds of entry under a prefix.
type Kind int

// The kinds of entry, named as the .d directories of a keytool home.
const (
	Authorized   Kind = iota // PREFIX/authorized_keys/NAME: client keys a server lets in
	Revoked                  // PREFIX/revoked_keys/NAME: keys refused everywhere
	TrustedHosts             // PREFIX/trusted_hosts/NAME: host keys a client trusts
	numKinds
)

var kindDirs = [numKinds]string{"authorized_keys", "revoked_keys", "trusted_hosts"}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindDirs[k]
	}
	return "invalid kind"
}

// Key returns the etcd key of entry name of kind k under prefix: what an
// administrator Puts. It does not check name (the stores report a bad one).
func Key(prefix string, k Kind, name string) string {
	return strings.TrimSuffix(prefix, "/") + "/" + k.String() + "/" + name
}

// ErrOutsideLayout means a key under the prefix is none of
// PREFIX/{authorized_keys,revoked_keys,trusted_hosts}/NAME.
var ErrOutsideLayout = errors.New("etcd: key outside the layout PREFIX/{authorized_keys,revoked_keys,trusted_hosts}/NAME: ignored")

// OutsideKeyError means a list or the watch of the prefix answered a key
// outside it. A list is refused whole (the view stays as it was, and
// turns stale if etcd keeps answering so); a watch's event is ignored,
// the others of its answer applied. Neither is read as the prefix's.
type OutsideKeyError struct {
	Prefix, Key string
	Watch       bool // the watch answered it, not a list
}

func (e *OutsideKeyError) Error() string {
	if e.Watch {
		return fmt.Sprintf("etcd: the watch of %s answered the key %q, outside it: event ignored", e.Prefix, e.Key)
	}
	return fmt.Sprintf("etcd: the list of %s answered the key %q, outside it: list refused", e.Prefix, e.Key)
}

// NoHeaderError means etcd answered a request without its response
// header, which every answer of etcd's has (its revision, its cluster):
// a proxy or a member gone wrong. Such an answer is refused, as one with
// a key outside the prefix is: a list is refused whole (the view stays
// as it was), a read that would confirm the view confirms nothing (the
// view turns stale if etcd keeps answering so), and keytool's commands
// fail; none reads a revision of zero into it.
type NoHeaderError struct {
	Request string // what was asked: "list", "read", "write"…
	Key     string // of what: the key, or the prefix, read or written
}

func (e *NoHeaderError) Error() string {
	return fmt.Sprintf("etcd: the %s of %q was answered without a response header (no revision, no cluster): answer refused", e.Request, e.Key)
}

// CountAt is the read of how many keys are under prefix at revision rev
// (0: now), counted on the server, keys only: what tells a history that
// lost a removal (a restore) from the one a count was taken in, where no
// key's ModRevision can (a removal leaves none). A Source checks its
// list's count so, and keytool's mirror its mark's.
func CountAt(prefix string, rev int64) clientv3.Op {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	return clientv3.OpGet(strings.TrimSuffix(prefix, "/")+"/", opts...)
}

// TooLargeError is a value larger than Options.MaxValue.
type TooLargeError struct {
	Key       string
	Size, Max int
}

func (e *TooLargeError) Error() string {
	// The key is etcd's bytes: quoted if they are not plain text, so that
	// the message is one line (TestProblemsOneLine).
	return fmt.Sprintf("etcd: value of %s is %d bytes, more than the %d an entry may hold: ignored", termtext.Safe(e.Key), e.Size, e.Max)
}

// classify splits a key relative to the prefix ("authorized_keys/alice")
// into its kind and entry name; ok is false outside the layout. A name
// that is not a valid file name is left to the stores' name rule
// (keydir.CheckFileName), which reports it by key.
func classify(rel string) (k Kind, name string, ok bool) {
	dir, name, found := strings.Cut(rel, "/")
	if !found {
		return 0, "", false
	}
	for k, d := range kindDirs {
		if d == dir {
			return Kind(k), name, true
		}
	}
	return 0, "", false
}
