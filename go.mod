module github.com/keytool/keytool

go 1.26.8

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	golang.org/x/crypto v0.58.0
)

require (
	github.com/miekg/dns v1.1.73 // indirect
	golang.org/x/net v0.60.0 // indirect
)

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/rogpeppe/go-internal v1.16.0
	github.com/spf13/pflag v1.0.10
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.48.0 // indirect
)
