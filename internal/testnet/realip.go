package testnet

import (
	"net"
	"net/http"
	"strings"
)

// RealIP is middleware as Go applications put in front of their handlers
// (chi's middleware.RealIP, gorilla's handlers.ProxyHeaders): it sets
// r.RemoteAddr from the first address in the request's header — which
// the client writes — keeping the connection's port when the header has
// none, so that code parsing host:port goes on working.
func RealIP(header string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, _, _ := strings.Cut(r.Header.Get(header), ","); v != "" {
			v = strings.TrimSpace(v)
			if _, _, err := net.SplitHostPort(v); err != nil {
				_, port, _ := net.SplitHostPort(r.RemoteAddr)
				v = net.JoinHostPort(v, port)
			}
			r.RemoteAddr = v
		}
		next.ServeHTTP(w, r)
	})
}
