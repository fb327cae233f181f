// Package loadgen drives `coconut bench broker`: tenants that send
// OpenAI-style requests over real HTTP (a flooder in a closed loop with
// heavy-tailed output lengths, light tenants with Poisson arrivals and
// fixed-size requests), the per-request records they produce, and the
// statistics the benchmark reports (percentiles, Jain's index, the maximum
// service difference between backlogged tenants).
//
// The workload and the statistics know nothing of the broker; bench.go
// puts a broker between the tenants and a backend.
package loadgen
