// Package bench compares keytool with its anchors — Go's standard
// CA-based mutual TLS and Docker's libtrust — at scale and under reload.
//
// It is a separate module so that the comparison-only dependencies
// (github.com/docker/libtrust, golang.org/x/perf's benchstat, the plotting
// code's fonts) never enter keytool's own go.mod. The benchmarks are
// ordinary `go test -bench` functions; ./run runs them all, keeps the raw
// output in out/, and has cmd/report rewrite the tables between the
// bench markers of ../docs/benchmarks.md and draw the plot.
//
// Every figure the report prints is a ratio against a baseline measured
// in the same run: the machines these run on are shared and noisy.
package bench
