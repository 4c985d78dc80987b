package renewals

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the watch's series. A removed Certificate's go with it.
type metrics struct {
	failures     *prometheus.CounterVec
	up           *prometheus.GaugeVec
	certificates prometheus.Gauge
	events       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmediag_renewal_failures_total",
			Help: "Failed cert-manager renewal attempts seen, by the root cause the correlation ranked first (renewal.failed when no vantage saw one)."},
			[]string{"namespace", "certificate", "code"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "acmediag_certmanager_watch_up",
			Help: "1 while the watch of a cert-manager resource type works, 0 while it fails (CRDs missing, forbidden, API server away)."},
			[]string{"resource"}),
		certificates: prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmediag_certmanager_certificates",
			Help: "cert-manager Certificates watched."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmediag_certmanager_events_total",
			Help: "RenewalDiagnosis Events: created, already there (written before a restart), failed (tried again)."},
			[]string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.failures, m.up, m.certificates, m.events)
	}
	return m
}

// forget drops the series of a removed Certificate.
func (m *metrics) forget(namespace, name string) {
	m.failures.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "certificate": name})
}
