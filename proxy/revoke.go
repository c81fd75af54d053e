package proxy

import (
	"github.com/keytool/keytool/tlsbridge"
)

// msgNoLongerAdmitted is the line of a connection closed because its key
// stopped being admitted.
const msgNoLongerAdmitted = tlsbridge.MsgNoLongerAdmitted

// startLive starts live revocation for a Serve, unless it is off: the
// mechanism is tlsbridge.LiveConns (docs/design.md, "Live revocation"),
// told of the store's changes from Serve until the last connection has
// ended (stopLive). It holds no goroutine.
func (l *listener) startLive() {
	if l.newLive == nil {
		return
	}
	var changes tlsbridge.Changes
	if l.store != nil {
		changes = l.store
	}
	lc := l.newLive(tlsbridge.LiveOptions{Changes: changes, Logger: l.log})
	l.mu.Lock()
	l.live = lc
	l.mu.Unlock()
}

// stopLive stops live revocation once no connection is left.
func (l *listener) stopLive() {
	l.stopLiveOnce.Do(func() {
		l.mu.Lock()
		lc := l.live
		l.mu.Unlock()
		if lc != nil {
			lc.Close()
		}
	})
}

// liveConns is the live revocation of the connections being served, nil
// when it is off.
func (l *listener) liveConns() *tlsbridge.LiveConns {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live
}
