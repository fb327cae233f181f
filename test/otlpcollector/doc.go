// Package otlpcollector tests the audit chain's OTLP export
// (internal/export/otlp) against the OpenTelemetry Collector's own OTLP
// receiver, embedded in the test. It is a module of its own because the
// collector's modules pull a large tree (and newer go-tpm, protobuf and
// others) that coconutd must not build with; run it with
// `make test-otlp` or `cd test/otlpcollector && go test ./...`.
package otlpcollector
