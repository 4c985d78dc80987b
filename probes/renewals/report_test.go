package renewals

import (
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acmediag/acmediag/reports"
)

// An attempt's Event name is the same in every process (dedup across
// restarts and leaders), differs between attempts, and is a valid name.
func TestEventName(t *testing.T) {
	a, b := eventName("www", "request/uid-1"), eventName("www", "request/uid-2")
	if a != eventName("www", "request/uid-1") || a == b {
		t.Errorf("names %q %q", a, b)
	}
	long := eventName(strings.Repeat("x", 253), "k")
	if len(long) > 253 || !strings.HasPrefix(long, strings.Repeat("x", 200)+".diag-") {
		t.Errorf("long name %q (%d)", long, len(long))
	}
}

// cert-manager's backoff: 1 h × 2^(n−1), at most 32 h, after the last failure.
func TestBackoff(t *testing.T) {
	last := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		n    int
		next time.Time
	}{{1, last.Add(time.Hour)}, {3, last.Add(4 * time.Hour)}, {6, last.Add(32 * time.Hour)}, {40, last.Add(32 * time.Hour)}} {
		lt := metav1.NewTime(last)
		crt := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}, Status: cmapi.CertificateStatus{FailedIssuanceAttempts: &tc.n, LastFailureTime: &lt}}
		fs := backoff(crt, last)
		if len(fs) != 1 || fs[0].Code != reports.CodeRenewalBackoff || fs[0].Evidence["next_attempt"] != tc.next.Format(time.RFC3339) {
			t.Errorf("n=%d: %+v", tc.n, fs)
		}
	}
	if fs := backoff(&cmapi.Certificate{}, last); fs != nil {
		t.Errorf("no failures: %+v", fs)
	}
}

// The message begins with the root-cause code, then the vantages and what
// they saw, then cert-manager's words; it never exceeds the bound.
func TestEventMessage(t *testing.T) {
	a := attempt{names: []string{"www.example.com"}, what: "Challenge ns/c (HTTP-01 for www.example.com) is invalid: " + strings.Repeat("é", 800)}
	causes := []reports.Cause{{Code: reports.CodeHTTP01ConnectTimeout, Score: 0.6, Vantages: []string{"us-east"}, Evidence: []string{"us-east (http-01 probe, during the attempt): timeout"}},
		{Code: reports.CodeDNSTimeout, Score: 0.2, Vantages: []string{"eu-west"}}}
	m := eventMessage(causes[0].Code, causes, a)
	if !strings.HasPrefix(m, "http01.connect_timeout from us-east: us-east (http-01 probe, during the attempt): timeout; also seen: dns.timeout (0.20); cert-manager: Challenge") {
		t.Errorf("message %q", m)
	}
	if len(m) > maxEventMessage || !strings.HasSuffix(m, "…") {
		t.Errorf("length %d, suffix %q", len(m), m[len(m)-5:])
	}
	if m := eventMessage(reports.CodeRenewalFailed, nil, attempt{names: []string{"a.example"}, what: "x"}); m != "renewal.failed: no vantage observed a problem with a.example around the attempt; cert-manager: x" {
		t.Errorf("no causes: %q", m)
	}
}
