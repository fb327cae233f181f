package otlp

import "github.com/prometheus/client_golang/prometheus"

// Registry returns the exporter's Prometheus metrics (coconutd serves them
// on /metrics beside the broker's): the lag in rows, the acknowledged
// seq and the export counters, each read from Status when scraped.
func (e *Exporter) Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	f := func(g func(Status) float64) func() float64 { return func() float64 { return g(e.Status()) } }
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coconut_export_otlp_lag_rows",
			Help: "Audit rows appended but not yet acknowledged by the OTLP collector."}, f(func(s Status) float64 { return float64(s.Lag) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coconut_export_otlp_acked_seq",
			Help: "The last audit seq the OTLP collector acknowledged."}, f(func(s Status) float64 { return float64(s.AckedSeq) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coconut_export_otlp_rows_total",
			Help: "Audit rows acknowledged by the OTLP collector since coconutd started."}, f(func(s Status) float64 { return float64(s.Exported) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coconut_export_otlp_resent_rows_total",
			Help: "Audit rows sent again after a failed export call."}, f(func(s Status) float64 { return float64(s.Resent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coconut_export_otlp_failures_total",
			Help: "Export calls that failed (collector unreachable, refused, or a partial success)."}, f(func(s Status) float64 { return float64(s.Failures) })),
	)
	return reg
}
