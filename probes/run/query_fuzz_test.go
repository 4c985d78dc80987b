package run

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
)

// FuzzAPIQuery feeds query strings, as any client of the daemon's port may
// send them, to every API endpoint: never a panic, never a 500; every
// answer is a known status with a JSON body (an error's with a message).
func FuzzAPIQuery(f *testing.F) {
	for _, q := range []string{
		"name=ok.example.com", "name=OK.Example.COM.", "name=xn--bcher-kva.example", "name=b%C3%BCcher.example",
		"name=ok.example.com&since=2026-03-01T12:00:00Z&limit=2", "since=yesterday", "limit=-1", "limit=99999999999999999999",
		"name=" + string(make([]byte, 400)), "name=%00", "name=..", "name=*.example.com", "name=a&name=b", "%zz", ";;;",
	} {
		f.Add("observations", q)
		f.Add("report", q)
		f.Add("reprobe", q)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: "us", Kind: "external", RIR: "ARIN"}}
	s.Targets = []probes.Target{{Name: "ok.example.com", Challenge: "http-01"}, {Name: "bad.example.com", Challenge: "http-01"},
		{Name: "new.example.com", Challenge: "dns-01"}}
	p, err := probes.Build(s, probes.BuildOptions{})
	if err != nil {
		f.Fatal(err)
	}
	srv := newAPIServer(zap.NewNop(), prometheus.NewRegistry(), testStore(t0), func() bool { return true },
		func() *probes.Plan { return p }, "test", p.Settings.API)
	srv.reprobe = func(string) bool { return false }
	h := srv.handler()
	f.Fuzz(func(t *testing.T, endpoint, query string) {
		method := http.MethodGet
		switch endpoint {
		case "observations", "report":
		case "reprobe":
			method = http.MethodPost
		default:
			return
		}
		u := &url.URL{Path: "/api/v1/" + endpoint, RawQuery: query}
		req := httptest.NewRequest(method, "http://daemon.test/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusNotFound, http.StatusTooManyRequests:
		default:
			t.Fatalf("%s %s: status %d: %s", method, u, rec.Code, rec.Body)
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: status %d, body not JSON: %v", method, u, rec.Code, err)
		}
		if rec.Code >= 400 {
			var e apiError
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Errorf("%s %s: status %d without a message: %s", method, u, rec.Code, rec.Body)
			}
		}
	})
}
