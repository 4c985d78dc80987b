package run

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// memCertificates is an in-memory CertificateSource.
type memCertificates map[string]reports.Timeline

func (m memCertificates) Timeline(ns, name string) (reports.Timeline, bool) {
	t, ok := m[ns+"/"+name]
	return t, ok
}

func (m memCertificates) Timelines(limit int) []reports.Timeline {
	var out []reports.Timeline
	for _, t := range m {
		if len(out) == limit {
			break
		}
		out = append(out, t)
	}
	return out
}

func TestAPIServerCertificates(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ended := t0.Add(time.Minute)
	www := reports.Timeline{Namespace: "shop", Certificate: "www", DNSNames: []string{"www.example.com"}, Ready: "False", Reason: "Failed",
		Attempts: []reports.TimelineAttempt{{Revision: 2, Request: "www-2", Created: t0, Ended: &ended, Outcome: reports.OutcomeFailed,
			Order: &reports.TimelineOrder{Name: "www-2-1", State: "invalid", Challenges: []reports.TimelineChallenge{
				{Name: "www-2-1-0", DNSName: "www.example.com", Type: reports.HTTP01, State: "invalid", Reason: "Timeout during connect (likely firewall problem)"}}}}}}
	s := newTestServer(t, testPlan(t, nil), testStore(t0), func() bool { return true })
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/api/v1/certificates?namespace=shop&name=www"); code != http.StatusNotFound || !strings.Contains(body, "does not watch cert-manager") {
		t.Errorf("without a source: %d %s", code, body)
	}
	s.setCertificates(memCertificates{"shop/www": www})
	cases := []struct {
		desc     string
		path     string
		wantCode int
		want     string
	}{
		{desc: "a known Certificate", path: "/api/v1/certificates?namespace=shop&name=www", wantCode: 200},
		{desc: "an unknown one", path: "/api/v1/certificates?namespace=shop&name=api", wantCode: 404, want: "no Certificate shop/api"},
		{desc: "the namespace matters", path: "/api/v1/certificates?namespace=other&name=www", wantCode: 404, want: "no Certificate other/www"},
		{desc: "no namespace", path: "/api/v1/certificates?name=www", wantCode: 400, want: "namespace and name are required"},
		{desc: "a name longer than Kubernetes allows", path: "/api/v1/certificates?namespace=shop&name=" + strings.Repeat("a", 300), wantCode: 400, want: "too long"},
	}
	for _, tc := range cases {
		code, body := get(tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.desc, code, body)
			continue
		}
		if code == 200 {
			var got reports.Timeline
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, www) {
				t.Errorf("%s: got %+v", tc.desc, got)
			}
		}
	}
	code, page := get("/")
	if code != 200 || !strings.Contains(page, "Renewal timelines") || !strings.Contains(page, "Timeout during connect (likely firewall problem)") {
		t.Errorf("the page does not draw the timeline: %d", code)
	}
}
