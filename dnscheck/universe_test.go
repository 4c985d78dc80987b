package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// The universe is started once for the package's tests and benchmarks that
// need it; tests that do not, never pay for it.
var (
	universeOnce sync.Once
	universe     *testenv.Universe
	universeErr  error
)

func needUniverse(tb testing.TB) *testenv.Universe {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the test universe (Unbound); -short skips it")
	}
	universeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// Its own port: other packages' tests run their universes at the same time.
		universe, universeErr = testenv.Start(ctx, testenv.Options{Port: 10353})
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

// universeChecker points a Checker at the universe, as the CLI's flags do.
func universeChecker(tb testing.TB, u *testenv.Universe) *Checker {
	tb.Helper()
	c := &Checker{Port: uint16(u.Port()), CAIdentities: []string{"letsencrypt.org"},
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for _, r := range u.Roots() {
		c.Roots = append(c.Roots, netip.MustParseAddr(r))
	}
	c.Resolvers = []netip.AddrPort{netip.MustParseAddrPort(u.Resolver())}
	f, err := os.Open(u.TrustAnchorFile())
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if c.TrustAnchors, err = ParseTrustAnchors(f, u.TrustAnchorFile()); err != nil {
		tb.Fatal(err)
	}
	return c
}

func scenario(tb testing.TB, name string) testenv.Scenario {
	tb.Helper()
	for _, s := range testenv.Catalogue() {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no scenario %q in the catalogue", name)
	return testenv.Scenario{}
}

// dnsCode: a finding code dnscheck owns.
func dnsCode(c reports.Code) bool {
	for _, p := range []string{"dns.", "dns01.", "caa.", "name."} {
		if strings.HasPrefix(string(c), p) {
			return true
		}
	}
	return false
}

// TestCatalogueScenarios runs every scenario of the catalogue through the
// DNS checks, as diagnose does from one vantage, and holds dnscheck to what
// the scenario says a correct diagnosis contains: its DNS findings, at the
// severity the CA's behaviour earns (a scenario marked healthy passes at
// Let's Encrypt, so no DNS finding may be an error). Scenarios staged per
// vantage are left to the report's tests.
func TestCatalogueScenarios(t *testing.T) {
	u := needUniverse(t)
	for _, sc := range testenv.Catalogue() {
		if sc.Vantages {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			c := universeChecker(t, u)
			if sc.UseClusterResolver {
				c.Resolvers = append(c.Resolvers, netip.MustParseAddrPort(u.ClusterResolver()))
			}
			req := Request{Name: sc.Domain, Challenge: reports.HTTP01}
			for i := 0; i+1 < len(sc.Args); i++ {
				switch sc.Args[i] {
				case "--challenge":
					req.Challenge = reports.Challenge(sc.Args[i+1])
				case "--expect-txt":
					req.ExpectTXT = sc.Args[i+1]
				case "--account-uri":
					c.AccountURI = sc.Args[i+1]
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), testenv.ScenarioTimeout())
			defer cancel()
			res, _ := c.Check(ctx, []Request{req})
			dump := func() string {
				var b strings.Builder
				for _, f := range res[0].Findings {
					fmt.Fprintf(&b, "\n  %s %s: %s", f.Severity, f.Code, f.Detail)
				}
				return b.String()
			}
			for _, want := range sc.Expect {
				if !dnsCode(want.Code) {
					continue
				}
				found := slices.ContainsFunc(res[0].Findings, func(f reports.Finding) bool {
					return f.Code == want.Code && f.Severity == want.Severity && strings.Contains(f.Detail, want.DetailContains)
				})
				if !found {
					t.Errorf("no %s %s with %q in the detail; findings:%s", want.Severity, want.Code, want.DetailContains, dump())
				}
			}
			if sc.Healthy {
				for _, f := range res[0].Findings {
					if f.Severity >= reports.Error {
						t.Errorf("healthy scenario (Let's Encrypt validates it) got %s %s: %s", f.Severity, f.Code, f.Detail)
					}
				}
			}
		})
	}
}

// One black-holed server address costs one timeout per run, however many
// checks (zone health, A, AAAA, CAA at every label, DNSSEC) would ask it.
func TestBlackholedAddressCostsOneTimeout(t *testing.T) {
	u := needUniverse(t)
	c := universeChecker(t, u)
	c.QueryTimeout = 300 * time.Millisecond
	// Only the authoritative side: a recursive resolver waits out the dead
	// server on its own schedule, which is not what this test counts.
	c.Resolvers = nil
	sc := scenario(t, "ns-unreachable")
	res, stats := c.Check(context.Background(), []Request{{Name: sc.Domain, Challenge: reports.HTTP01}})
	if stats.Timeouts != 1 {
		t.Errorf("%d exchanges waited out the timeout, want exactly 1 (one per black-holed address)", stats.Timeouts)
	}
	found := false
	for _, f := range res[0].Findings {
		if f.Code == reports.CodeDNSNSUnreachable {
			found = true
		}
		if f.Severity >= reports.Error {
			t.Errorf("unexpected %s %s: %s", f.Severity, f.Code, f.Detail)
		}
	}
	if !found {
		t.Errorf("no %s finding: %+v", reports.CodeDNSNSUnreachable, res[0].Findings)
	}
}

// Asking one server at a time gives the same findings as asking all at once.
func TestSequentialAndParallelAgree(t *testing.T) {
	u := needUniverse(t)
	for _, name := range []string{"healthy-signed", "serial-mismatch", "dnssec-expired", "caa-forbidden"} {
		t.Run(name, func(t *testing.T) {
			sc := scenario(t, name)
			codes := func(inflight int) map[reports.Code]bool {
				c := universeChecker(t, u)
				c.MaxInflight = inflight
				res, _ := c.Check(context.Background(), []Request{{Name: sc.Domain, Challenge: reports.HTTP01}})
				out := map[reports.Code]bool{}
				for _, f := range res[0].Findings {
					out[f.Code] = true
				}
				return out
			}
			par, seq := codes(0), codes(1)
			if len(par) != len(seq) {
				t.Fatalf("parallel found %v, sequential %v", par, seq)
			}
			for c := range par {
				if !seq[c] {
					t.Errorf("parallel found %s, sequential did not", c)
				}
			}
		})
	}
}

// BenchmarkDiagnose runs the whole DNS side of a diagnosis of one name,
// side by side: every server asked at once (acmediag) and one server at a
// time (the way lego's and cert-manager's checks ask). It reports queries
// and per-query timeouts waited out per run.
func BenchmarkDiagnose(b *testing.B) {
	u := needUniverse(b)
	for _, name := range []string{"healthy-signed", "healthy-slow-servers", "healthy-dns01", "ns-unreachable"} {
		sc := scenario(b, name)
		challenge := reports.HTTP01
		expect := ""
		for i, a := range sc.Args {
			switch a {
			case "--challenge":
				challenge = reports.Challenge(sc.Args[i+1])
			case "--expect-txt":
				expect = sc.Args[i+1]
			}
		}
		for _, mode := range []struct {
			name     string
			inflight int
		}{{"parallel", 0}, {"sequential", 1}} {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				c := universeChecker(b, u)
				c.MaxInflight = mode.inflight
				c.QueryTimeout = 500 * time.Millisecond
				var queries, timeouts int64
				for b.Loop() {
					res, st := c.Check(context.Background(), []Request{{Name: sc.Domain, Challenge: challenge, ExpectTXT: expect}})
					for _, f := range res[0].Findings {
						if sc.Healthy && f.Severity >= reports.Error {
							b.Fatalf("healthy scenario got %s: %s", f.Code, f.Detail)
						}
					}
					queries += st.Queries
					timeouts += st.Timeouts
				}
				b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
				if name == "healthy-slow-servers" {
					// Its servers answer after 10 ms; the slowest chain of
					// dependent questions to them is two deep (the walk's
					// last referral answer, then everything else at once),
					// so 20 ms is the floor. Target: at most 1.5x.
					b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(20*time.Millisecond), "x-chain")
				}
				b.ReportMetric(float64(timeouts)/float64(b.N), "timeouts/op")
			})
		}
	}
}

// A resolver that answers NXDOMAIN at the TLD (a split-horizon or
// in-cluster resolver asked about a name outside its zones; here the
// universe's root, which has no such TLD) is a finding, never a crash: the
// CAA lookup at the TLD label failed without an error value, and its
// explanation read that nil error.
func TestNXDomainAtTheTLD(t *testing.T) {
	u := needUniverse(t)
	for _, name := range []string{"www.foo.de", "example.museum", "a.b.io"} {
		for _, challenge := range []reports.Challenge{reports.HTTP01, reports.DNS01, reports.TLSALPN01} {
			t.Run(name+"/"+string(challenge), func(t *testing.T) {
				c := universeChecker(t, u)
				res, _ := c.Check(context.Background(), []Request{{Name: name, Challenge: challenge}})
				codes := map[reports.Code]bool{}
				for _, f := range res[0].Findings {
					codes[f.Code] = true
				}
				// A name that does not exist fails an address lookup; dns-01
				// needs no address, but the CA's CAA lookup at the TLD fails
				// (NXDOMAIN there is an error, below it an empty set).
				want := reports.CodeDNSNXDomain
				if challenge == reports.DNS01 {
					want = reports.CodeCAALookupFailed
				}
				if !codes[want] {
					t.Errorf("no %s finding: %+v", want, res[0].Findings)
				}
			})
		}
	}
}
