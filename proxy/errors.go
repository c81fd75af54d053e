package proxy

import (
	"errors"
	"fmt"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by
// Serve on a proxy already shut down.
var ErrServerClosed = errors.New("proxy: closed")

// ErrServing is returned by Serve on a proxy that is already serving a
// listener: a proxy serves one listener in its life.
var ErrServing = errors.New("proxy: already serving a listener")

// OptionError is an option that NewServer or NewClient cannot work with.
type OptionError struct {
	Option string // the field of ServerOptions or ClientOptions
	Reason string
}

func (e *OptionError) Error() string { return fmt.Sprintf("proxy: %s: %s", e.Option, e.Reason) }

// TargetError is the client-mode target failing Client.CheckTarget: its
// key is not the one pinned for it (a *knownhosts error inside), it is not
// trusted under the policy, or it refused this client's key (a TLS alert).
// Connecting again will not help.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return fmt.Sprintf("proxy: target %s: %v", e.Target, e.Err) }

func (e *TargetError) Unwrap() error { return e.Err }
