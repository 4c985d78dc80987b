package run

import (
	"net/http"

	"github.com/acmediag/acmediag/reports"
)

// CertificateSource gives the renewal timeline of a cert-manager
// Certificate: the informer-backed store of the cert-manager watch in the
// daemon, a fixed set in tests.
type CertificateSource interface {
	// Timeline is the Certificate's timeline; false when the source does
	// not know it.
	Timeline(namespace, name string) (reports.Timeline, bool)
	// Timelines are the first limit Certificates' (of all), for the report
	// page, ordered as the page should show them; nil when the source has
	// none.
	Timelines(limit int) []reports.Timeline
}

// SetCertificates makes the daemon serve GET /api/v1/certificates and
// draw the timelines on its page from src (nil: neither).
func (d *Daemon) SetCertificates(src CertificateSource) { d.api.setCertificates(src) }

func (s *apiServer) setCertificates(src CertificateSource) {
	s.certsMu.Lock()
	defer s.certsMu.Unlock()
	s.certs = src
}

func (s *apiServer) certificates() CertificateSource {
	s.certsMu.Lock()
	defer s.certsMu.Unlock()
	return s.certs
}

// maxPageTimelines bounds the timelines drawn on the page; the API has
// every one.
const maxPageTimelines = 200

// pageTimelines are the timelines the page draws.
func (s *apiServer) pageTimelines() []reports.Timeline {
	src := s.certificates()
	if src == nil {
		return nil
	}
	return src.Timelines(maxPageTimelines)
}

// certificate serves GET /api/v1/certificates?namespace=&name=: the
// renewal timeline of one cert-manager Certificate (reports.Timeline as
// JSON): its requests, orders and challenges with times, states and
// reasons. 404 when the daemon does not watch cert-manager or does not
// know the Certificate.
func (s *apiServer) certificate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, name := q.Get("namespace"), q.Get("name")
	switch {
	case ns == "" || name == "":
		writeJSONError(w, http.StatusBadRequest, "namespace and name are required: /api/v1/certificates?namespace=NS&name=NAME")
		return
	case len(ns) > 63 || len(name) > 253:
		writeJSONError(w, http.StatusBadRequest, "namespace or name: too long for a Kubernetes object")
		return
	}
	src := s.certificates()
	if src == nil {
		writeJSONError(w, http.StatusNotFound, "this daemon does not watch cert-manager Certificates")
		return
	}
	tl, ok := src.Timeline(ns, name)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "no Certificate "+truncate(ns, 63)+"/"+truncate(name, 253)+" is known to this daemon")
		return
	}
	writeJSON(w, http.StatusOK, tl)
}
