module github.com/keytool/keytool/bench

go 1.26.8

require (
	github.com/docker/libtrust v0.0.0-20160708172513-aabc10ec26b7
	github.com/keytool/keytool v0.0.0
	golang.org/x/image v0.47.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
	github.com/fsnotify/fsnotify v1.10.1 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/miekg/dns v1.1.73 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da // indirect
)

replace github.com/keytool/keytool => ../

tool golang.org/x/perf/cmd/benchstat
