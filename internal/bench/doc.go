// Package bench is `coconut bench NAME`: the benchmarks docs/benchmarks.md
// describes (spawn, quota, audit, enforce, broker, center, notify), each
// printing a table or, with --json, one object with a headline. It lives
// apart from internal/cli so that the command line's own code stays small
// and the production packages do not carry load generators (loadgen, the
// broker's tenants, is here).
package bench
