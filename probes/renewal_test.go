package probes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acmediag/acmediag/reports"
)

// renewalStore holds two names served a 90-day certificate issued 55 days
// before t0 (two thirds of the lifetime, where the window opens, is 5 days
// away, inside the 7-day horizon): ok.com passes from both external
// vantages, broken.com times out from both. stale.com is served by us an
// older certificate than by eu.
func renewalStore() *Store {
	us := reports.Vantage{Name: "us", Kind: reports.External, RIR: "ARIN"}
	eu := reports.Vantage{Name: "eu", Kind: reports.External, RIR: "RIPE"}
	day := 24 * time.Hour
	leaf := func(serial string, issued time.Time) reports.CertFacts {
		return reports.CertFacts{Serial: serial, SHA256: serial, NotBefore: issued, NotAfter: issued.Add(90*day - time.Second)}
	}
	tlsObs := func(name string, v reports.Vantage, l reports.CertFacts) reports.Observation {
		return reports.Observation{Name: name, Vantage: v, Kind: KindTLS, Start: t0,
			TLS: &reports.TLSFacts{Served: []reports.ServedCert{{Addr: netip.MustParseAddr("192.0.2.1"), Leaf: l, CoversName: true}}}}.Finish()
	}
	h01 := func(name string, v reports.Vantage, fs ...reports.Finding) reports.Observation {
		return reports.Observation{Name: name, Vantage: v, Kind: KindHTTP01, Start: t0, Findings: fs}.Finish()
	}
	timeout := reports.New(reports.CodeHTTP01ConnectTimeout, "broken.com", "blocked")
	issued := t0.Add(-55 * day)
	s := NewStore(StoreLimits{})
	for _, o := range []reports.Observation{
		tlsObs("ok.com", us, leaf("01", issued)), tlsObs("ok.com", eu, leaf("01", issued)), h01("ok.com", us), h01("ok.com", eu),
		tlsObs("broken.com", us, leaf("02", issued)), tlsObs("broken.com", eu, leaf("02", issued)),
		h01("broken.com", us, timeout), h01("broken.com", eu, timeout),
		tlsObs("stale.com", us, leaf("03", t0.Add(-70*day))), tlsObs("stale.com", eu, leaf("04", t0.Add(-10*day))),
		h01("plain.com", us), // no tls run: no renewal reading
	} {
		s.Add(o)
	}
	return s
}

func TestRenewalRule(t *testing.T) {
	t.Parallel()
	store := renewalStore()
	p := &Plan{TLS: &TLSPlan{}}
	latest := func(name string) []reports.Observation { return store.Latest(name) }
	cases := []struct {
		name      string
		ok        bool
		codes     []reports.Code
		pathFails bool
		serial    string
	}{
		{name: "ok.com", ok: true, serial: "01"},
		{name: "broken.com", ok: true, codes: []reports.Code{reports.CodeRenewalAtRisk}, pathFails: true, serial: "02"},
		// The newest leaf is the certificate; the older one still served
		// from us is a stale backend no single run sees.
		{name: "stale.com", ok: true, codes: []reports.Code{reports.CodeTLSStaleBackend}, serial: "04"},
		{name: "plain.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, ok := p.Renewal(tc.name, latest(tc.name), t0)
			if ok != tc.ok {
				t.Fatalf("read %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			var codes []reports.Code
			for _, f := range o.Findings {
				codes = append(codes, f.Code)
			}
			if !slices.Equal(codes, tc.codes) {
				t.Errorf("findings %v, want %v", codes, tc.codes)
			}
			rs := o.Renewal
			if o.Kind != KindRenewal || o.Perspective() || rs == nil || rs.PathFailing != tc.pathFails || rs.Certificate.Serial != tc.serial {
				t.Fatalf("observation %+v, renewal %+v", o, rs)
			}
			if rs.Window == nil || rs.Window.Source != reports.WindowLifetime {
				t.Errorf("window %+v, want one from the lifetime", rs.Window)
			}
			if tc.pathFails && !slices.Contains(rs.FailingCodes, reports.CodeHTTP01ConnectTimeout) {
				t.Errorf("failing codes %v lack the timeout", rs.FailingCodes)
			}
		})
	}
}

// The renewal gauges follow the rule, per name (and per vantage for the
// certificate served); names without a tls run have none.
func TestRenewalMetrics(t *testing.T) {
	t.Parallel()
	store := renewalStore()
	m := NewMetrics(nil, store, nil, "dev")
	p := &Plan{TLS: &TLSPlan{}, Env: &Env{Clock: newFakeClock(t0)}}
	m.usePlan(p)
	want := `
# HELP acmediag_renewal_at_risk 1 when the name's renewal window opens within the horizon (or is open) and its challenge path fails now, else 0.
# TYPE acmediag_renewal_at_risk gauge
acmediag_renewal_at_risk{name="broken.com"} 1
acmediag_renewal_at_risk{name="ok.com"} 0
acmediag_renewal_at_risk{name="stale.com"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "acmediag_renewal_at_risk"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "acmediag_certificate_not_after_seconds"); n != 6 {
		t.Errorf("%d not_after series, want 6 (3 names × 2 vantages)", n)
	}
	if n := testutil.CollectAndCount(m, "acmediag_renewal_window_start_seconds"); n != 3 {
		t.Errorf("%d window series, want 3", n)
	}
	if n := testutil.CollectAndCount(m, "acmediag_findings"); n != 3 {
		// broken.com: the timeout and renewal.at_risk; stale.com:
		// stale_backend.
		t.Errorf("%d findings series, want 3", n)
	}
}
