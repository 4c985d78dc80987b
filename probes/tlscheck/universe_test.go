package tlscheck_test

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/probes/tlscheck"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/pebble"
	"github.com/acmediag/acmediag/testenv/pki"
)

// universePort is this package's universe (with Pebble), off every other
// package's ports. Run its tests under flock /tmp/acmediag-universe.lock.
const universePort = 11253

var (
	universeOnce sync.Once
	universe     *testenv.Universe
	universeErr  error
)

func needUniverse(tb testing.TB) *testenv.Universe {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the test universe (Unbound, Pebble); -short skips it")
	}
	universeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		universe, universeErr = testenv.Start(ctx, testenv.Options{Port: universePort, ACME: true})
	})
	if universeErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("the test universe is required under CI=true: %v", universeErr)
		}
		tb.Skipf("the test universe did not start: %v", universeErr)
	}
	return universe
}

func TestMain(m *testing.M) {
	code := m.Run()
	if universe != nil {
		universe.Close()
	}
	os.Exit(code)
}

func scenario(tb testing.TB, name string) testenv.Scenario {
	tb.Helper()
	for _, s := range testenv.Catalogue() {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no scenario %q", name)
	return testenv.Scenario{}
}

func addrs(tb testing.TB, u *testenv.Universe, sc string) []netip.Addr {
	tb.Helper()
	var out []netip.Addr
	for _, a := range u.WebAddrs(sc) {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// request is an inspection of a scenario's name as the tls probe would
// make it, trusting the universe's roots.
func request(tb testing.TB, u *testenv.Universe, sc string) tlscheck.Request {
	return tlscheck.Request{Name: scenario(tb, sc).Domain, Addrs: addrs(tb, u, sc), Port: u.HTTPSPort(), Roots: u.TLSRoots()}
}

func has(fs []reports.Finding, e testenv.Expectation) bool {
	return slices.ContainsFunc(fs, func(f reports.Finding) bool {
		return f.Code == e.Code && f.Severity == e.Severity && strings.Contains(f.Detail, e.DetailContains)
	})
}

// TestScenarios inspects every TLS scenario of the universe: each expected
// finding is there, the healthy ones have none, and Pebble's certificates
// are what the Pebble-backed names serve.
func TestScenarios(t *testing.T) {
	u := needUniverse(t)
	c := &tlscheck.Checker{HandshakeTimeout: 2 * time.Second, Logger: zaptest.NewLogger(t)}
	seen := map[reports.Code]bool{}
	for _, sc := range testenv.Catalogue() {
		if !strings.HasPrefix(sc.Name, "tls-") {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := c.Inspect(context.Background(), request(t, u, sc.Name))
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
			for _, e := range sc.Expect {
				if !strings.HasPrefix(string(e.Code), "tls.") {
					continue // the renewal rule's, across runs (probes)
				}
				seen[e.Code] = true
				if !has(r.Findings, e) {
					t.Errorf("missing %s (%s) with %q", e.Code, e.Severity, e.DetailContains)
				}
			}
			if sc.Healthy && len(r.Findings) > 0 {
				t.Errorf("healthy scenario has findings")
			}
			for _, f := range r.Findings {
				t.Logf("%s %s: %s", f.Severity, f.Code, f.Detail)
			}
			if sc.Name == "tls-ok" || sc.Name == "tls-ari" {
				ch := r.Addrs[0].Chain
				if ch == nil || !ch.Trusted || !ch.Complete || !strings.Contains(ch.Leaf.Issuer, "Pebble") || ch.IssuerCert == nil {
					t.Errorf("not Pebble's certificate: %+v", ch)
				} else if is := u.PebbleCertificate(sc.Name); is == nil || hex.EncodeToString(is.Leaf().SerialNumber.Bytes()) != ch.Leaf.Serial {
					t.Errorf("serves serial %s, not the one Pebble issued at start", ch.Leaf.Serial)
				}
			}
		})
	}
	t.Cleanup(func() {
		for _, code := range []reports.Code{reports.CodeTLSExpiring, reports.CodeTLSNameMismatch, reports.CodeTLSChainIncomplete,
			reports.CodeTLSStaleBackend, reports.CodeTLSUntrusted, reports.CodeTLSHandshakeFailed} {
			if !seen[code] {
				t.Errorf("no scenario expects %s", code)
			}
		}
	})
}

// A server that never finishes its handshake costs its own deadline only:
// the other address of the same inspection is done at once.
func TestHangDelaysNothingElse(t *testing.T) {
	u := needUniverse(t)
	req := request(t, u, "tls-ok")
	req.Addrs = append(addrs(t, u, "tls-hang"), req.Addrs...)
	c := &tlscheck.Checker{HandshakeTimeout: time.Second}
	r := c.Inspect(context.Background(), req)
	hang, ok := r.Addrs[0], r.Addrs[1]
	if hang.ErrKind != tlscheck.ErrHandshakeTimeout || hang.Duration < time.Second || hang.Duration > 1500*time.Millisecond {
		t.Errorf("hanging address: %s after %s", hang.ErrKind, hang.Duration)
	}
	if ok.Chain == nil || ok.Duration > 300*time.Millisecond {
		t.Errorf("healthy address: chain %v after %s", ok.Chain != nil, ok.Duration)
	}
}

// A renewal that reached one vantage's backend but not another's: the
// facts each vantage saw, compared, name the vantage still served the old
// certificate. Handshakes leave from each vantage's source address.
func TestStaleAcrossVantages(t *testing.T) {
	u := needUniverse(t)
	sc := scenario(t, "tls-ok")
	current, err := u.ServedCertificate("tls-ok", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.ServeCertificate("tls-ok", 0, current) })
	// The certificate from before the renewal: issued 61 days ago.
	ca, err := pki.NewRoot("Before Renewal CA")
	if err != nil {
		t.Fatal(err)
	}
	old, err := ca.Issue(pki.Leaf{Names: []string{sc.Domain}, NotBefore: time.Now().Add(-61 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var served []reports.ServedCert
	for i, v := range u.Vantages()[:3] {
		cert := current
		if i == 1 {
			cert = old // eu-west's backend was not reloaded
		}
		if err := u.ServeCertificate("tls-ok", 0, cert); err != nil {
			t.Fatal(err)
		}
		req := request(t, u, "tls-ok")
		req.LocalAddr = netip.MustParseAddr(v.Addr)
		r := tlscheck.Inspect(context.Background(), req)
		if r.Addrs[0].Chain == nil {
			t.Fatalf("%s: %s", v.Name, r.Addrs[0].Err)
		}
		served = append(served, r.Served(v.Name)...)
	}
	fs := tlscheck.StaleBackends(sc.Domain, served)
	if len(fs) != 1 || !strings.Contains(fs[0].Detail, "(from eu-west) still serve(s)") || !slices.Equal(fs[0].Evidence["vantages"].([]string), []string{"eu-west"}) {
		t.Fatalf("findings = %+v", fs)
	}
	t.Log(fs[0].Detail)
}

// TestRenewalWithARI reads the CA's window for the certificate a name
// really serves (Pebble's) and applies the renewal rule: the default
// window says nothing, a window the test moves early (an incident) is
// renewal.ari_early and, with the challenge path failing, renewal.at_risk;
// a window moved into the past is renewal.overdue; malformed and huge
// answers from the CA are typed errors and a warning each.
func TestRenewalWithARI(t *testing.T) {
	u := needUniverse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc := scenario(t, "tls-ari")
	// A fresh certificate from Pebble for the name, served from now on:
	// each run starts from Pebble's default window (the ones below move it).
	before, err := u.ServedCertificate("tls-ari", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.ServeCertificate("tls-ari", 0, before) })
	fresh, err := u.IssueCertificate(ctx, sc.Domain)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.ServeCertificate("tls-ari", 0, fresh.TLS()); err != nil {
		t.Fatal(err)
	}
	r := tlscheck.Inspect(ctx, request(t, u, "tls-ari"))
	ch := r.Addrs[0].Chain
	if ch == nil || ch.LeafCert == nil || ch.IssuerCert == nil {
		t.Fatalf("no served chain: %s", r.Addrs[0].Err)
	}
	leaf, issuer := ch.LeafCert, ch.IssuerCert
	if !leaf.Equal(fresh.Leaf()) {
		t.Fatalf("serves serial %s, not the fresh certificate", ch.Leaf.Serial)
	}
	cfg := canary.Config{DirectoryURL: u.ACMEDirectory(), CACertFile: u.ACMECACert(), Logger: zaptest.NewLogger(t)}

	// The challenge path of the name, failing now: its HTTP-01 port
	// refuses (a closed port stands in for a firewalled port 80).
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	v := &http01.Validator{HTTPPort: closedPort, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 5 * time.Second}
	path := v.HTTP01(ctx, http01.Request{Name: sc.Domain, V4: addrs(t, u, "tls-ari")})
	if path.OK {
		t.Fatal("the challenge path does not fail")
	}
	var failing []reports.Code
	for _, f := range path.Findings {
		failing = append(failing, f.Code)
	}

	assess := func(t *testing.T, w canary.Window) reports.RenewalAssessment {
		t.Helper()
		return reports.AssessRenewal(reports.RenewalInput{Name: sc.Domain, Serial: ch.Leaf.Serial, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
			ARI: w.ARI(), Now: time.Now(), ChallengeFailing: true, FailingCodes: failing})
	}
	codes := func(fs []reports.Finding) []reports.Code {
		var out []reports.Code
		for _, f := range fs {
			out = append(out, f.Code)
		}
		return out
	}

	t.Run("Pebble's default window", func(t *testing.T) {
		w, err := canary.RenewalInfo(ctx, cfg, leaf, issuer)
		if err != nil {
			t.Fatal(err)
		}
		twoThirds := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
		if w.Start.After(twoThirds) || w.End.Before(twoThirds) || w.RetryAfter != 6*time.Hour {
			t.Errorf("window %s – %s (two thirds %s), Retry-After %s", w.Start, w.End, twoThirds, w.RetryAfter)
		}
		// The same window from the facts alone (what another vantage's
		// stored observation holds).
		id, err := canary.ARICertIDFromFacts(ch.Leaf.AKI, ch.Leaf.Serial)
		if err != nil || id != w.CertID {
			t.Errorf("certificate ID from the facts: %q, %v; want %q", id, err, w.CertID)
		}
		if wf, err := canary.RenewalInfoByID(ctx, cfg, id); err != nil || !wf.Start.Equal(w.Start) {
			t.Errorf("window from the facts: %v, %v", wf, err)
		}
		if fs := canary.ARIFindings(sc.Domain, leaf, w, time.Now()); len(fs) != 0 {
			t.Errorf("findings %v", codes(fs))
		}
		// 60 days away: beyond the horizon, failing path or not.
		if a := assess(t, w); len(a.Findings) != 0 || a.Window.Source != reports.WindowARI {
			t.Errorf("assessment %v from %s", codes(a.Findings), a.Window.Source)
		}
	})

	t.Run("window moved early: ari_early and at_risk", func(t *testing.T) {
		now := time.Now()
		if err := u.SetRenewalInfo(ctx, leaf, pebble.RenewalWindow(now.Add(-time.Hour), now.Add(2*24*time.Hour), "https://pebble.example/incident/7")); err != nil {
			t.Fatal(err)
		}
		w, err := canary.RenewalInfo(ctx, cfg, leaf, issuer)
		if err != nil {
			t.Fatal(err)
		}
		fs := canary.ARIFindings(sc.Domain, leaf, w, time.Now())
		if got := codes(fs); !slices.Equal(got, []reports.Code{reports.CodeRenewalWindowOpen, reports.CodeRenewalARIEarly}) {
			t.Fatalf("findings %v", got)
		}
		if fs[1].Evidence["explanation_url"] != "https://pebble.example/incident/7" || fs[1].Severity != reports.Warning {
			t.Errorf("ari_early = %+v", fs[1])
		}
		a := assess(t, w)
		if got := codes(a.Findings); !slices.Equal(got, []reports.Code{reports.CodeRenewalAtRisk, reports.CodeRenewalWindowOpen, reports.CodeRenewalARIEarly}) {
			t.Fatalf("assessment %v", got)
		}
		if !strings.Contains(a.Findings[0].Detail, "http01.connection_refused") {
			t.Errorf("at_risk does not name the failing path: %s", a.Findings[0].Detail)
		}
		// cert-manager, which does not read ARI, renews on day 60.
		in := reports.RenewalInput{Name: sc.Domain, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, ARI: w.ARI(), Now: time.Now(),
			RenewalTime: leaf.NotBefore.Add(60 * 24 * time.Hour), Certificate: "shop/www"}
		for _, f := range reports.AssessRenewal(in).Findings {
			if !strings.Contains(f.Detail, "`cmctl renew shop/www`") {
				t.Errorf("%s lacks the cert-manager note: %s", f.Code, f.Detail)
			}
		}
	})

	t.Run("window moved into the past: overdue", func(t *testing.T) {
		now := time.Now()
		if err := u.SetRenewalInfo(ctx, leaf, pebble.RenewalWindow(now.Add(-3*24*time.Hour), now.Add(-2*24*time.Hour), "")); err != nil {
			t.Fatal(err)
		}
		w, err := canary.RenewalInfo(ctx, cfg, leaf, issuer)
		if err != nil {
			t.Fatal(err)
		}
		a := assess(t, w)
		if got := codes(a.Findings); !slices.Equal(got, []reports.Code{reports.CodeRenewalOverdue, reports.CodeRenewalARIEarly}) {
			t.Fatalf("assessment %v", got)
		}
		if !strings.Contains(a.Findings[0].Detail, ch.Leaf.Serial) {
			t.Errorf("overdue does not name the served serial: %s", a.Findings[0].Detail)
		}
	})

	t.Run("the cache honours Pebble's Retry-After", func(t *testing.T) {
		var cache canary.ARICache
		first, err := cache.RenewalInfo(ctx, cfg, leaf, issuer)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.SetRenewalInfo(ctx, leaf, pebble.RenewalWindow(time.Now(), time.Now().Add(time.Hour), "")); err != nil {
			t.Fatal(err)
		}
		again, err := cache.RenewalInfo(ctx, cfg, leaf, issuer)
		if err != nil || !again.Start.Equal(first.Start) {
			t.Errorf("within Retry-After the cache asked again: %v, %s vs %s", err, again.Start, first.Start)
		}
	})

	for _, tc := range []struct {
		desc string
		body string
		kind error
	}{
		{"malformed", `{"suggestedWindow": {"start": "yesterday"`, canary.ErrARIMalformed},
		{"end before start", pebble.RenewalWindow(time.Now(), time.Now().Add(-time.Hour), ""), canary.ErrARIMalformed},
		{"huge", `{"suggestedWindow":{},"explanationURL":"` + strings.Repeat("x", 200<<10) + `"}`, canary.ErrARITooLarge},
	} {
		t.Run("bad input: "+tc.desc, func(t *testing.T) {
			if err := u.SetRenewalInfo(ctx, leaf, tc.body); err != nil {
				t.Fatal(err)
			}
			_, err := canary.RenewalInfo(ctx, cfg, leaf, issuer)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			f, ok := canary.ARIErrorFinding(sc.Domain, err)
			if !ok || f.Severity != reports.Warning || f.Code != reports.CodeACMEDirectoryUnreachable {
				t.Errorf("finding = %+v", f)
			}
			// Without the CA's window the rule falls back to the lifetime.
			a := reports.AssessRenewal(reports.RenewalInput{Name: sc.Domain, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Now: time.Now()})
			if a.Window.Source != reports.WindowLifetime || len(a.Findings) != 0 {
				t.Errorf("fallback %s, %v", a.Window.Source, codes(a.Findings))
			}
		})
	}

	t.Run("a certificate the CA did not issue", func(t *testing.T) {
		other, err := u.ServedCertificate("tls-expiring", 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = canary.RenewalInfo(ctx, cfg, other.Leaf, nil)
		if !errors.Is(err, canary.ErrARINotFound) {
			t.Fatalf("err = %v, want ErrARINotFound", err)
		}
		if _, ok := canary.ARIErrorFinding(sc.Domain, err); ok {
			t.Error("a finding for a certificate of another CA")
		}
	})
}
