//go:build !unix

package proxy

import (
	"net"
	"testing"
)

// listenBacklog0 is unix's: elsewhere the tests that need it skip.
func listenBacklog0(t *testing.T) net.Listener {
	t.Skip("no listener of backlog 0 here")
	return nil
}
