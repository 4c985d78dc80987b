package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// The integration tier starts the whole DNS universe once (root, TLDs,
// authoritative servers, real Unbound) and runs the built binary against
// every scenario of the catalogue.
var (
	universe *testenv.Universe
	binary   string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "acmediag-it-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "acmediag")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The first free address block: `make demo` may hold block 0.
	block, err := testenv.FreeBlock(0)
	if err == nil {
		universe, err = testenv.Start(ctx, testenv.Options{ACME: true, Block: block})
	}
	if err != nil {
		os.Stderr.WriteString("integration: the test universe did not start: " + err.Error() + "\n")
		if os.Getenv("CI") == "true" {
			return 1
		}
		universe = nil
	} else {
		defer universe.Close()
	}
	return m.Run()
}

func needUniverse(t *testing.T) {
	t.Helper()
	if universe == nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the test universe is required under CI=true")
		}
		t.Skip("the test universe did not start (see TestMain output); skipping integration tests")
	}
}

// runBinary runs the built acmediag and returns stdout, stderr and exit code.
func runBinary(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", binary, err)
	}
	return stdout.String(), stderr.String(), code
}

// diagnoseJSON runs the binary with args (a diagnose with -o json) and
// decodes its report; it also returns stdout for failure messages.
func diagnoseJSON(t testing.TB, args ...string) (reports.Report, string, int) {
	t.Helper()
	stdout, stderr, code := runBinary(t, args...)
	var rep reports.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s\n%s", code, err, stdout, stderr)
	}
	return rep, stdout, code
}

// acmeSteps are the report's acme.* checks by name.
func acmeSteps(rep reports.Report) map[string]reports.CheckStatus {
	steps := map[string]reports.CheckStatus{}
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Name, "acme.") {
			steps[c.Name] = c.Status
		}
	}
	return steps
}

func TestScenarios(t *testing.T) {
	needUniverse(t)
	for _, sc := range testenv.Catalogue() {
		t.Run(sc.Name, func(t *testing.T) {
			args := append([]string{"diagnose", "-o", "json", "--log-level", "error"}, universe.DiagnoseArgs(sc)...)
			stdout, stderr, code := runBinary(t, args...)
			var rep reports.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("exit %d, output is not the JSON report: %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
			}
			dump := func() string { return stdout + "\nstderr: " + stderr }
			if sc.Healthy {
				for _, f := range rep.Findings {
					if f.Severity >= reports.Error {
						t.Errorf("healthy scenario got %s %s: %s", f.Severity, f.Code, f.Detail)
					}
				}
				if code != 0 {
					t.Errorf("healthy scenario exited %d, want 0\n%s", code, dump())
				}
			}
			for _, want := range sc.Expect {
				if !hasFinding(rep.Findings, want) {
					t.Errorf("missing finding %s (%s) with detail containing %q\n%s", want.Code, want.Severity, want.DetailContains, dump())
				}
			}
			for _, f := range rep.Findings {
				if slices.Contains(sc.Absent, f.Code) {
					t.Errorf("%s %s must not be reported here (it sends the user the wrong way): %s", f.Severity, f.Code, f.Detail)
				}
			}
			// Every challenge failure says what Let's Encrypt would answer
			// (comparisons across addresses explain; the failing fetch itself
			// carries the problem).
			for _, f := range rep.Findings {
				challenge := strings.HasPrefix(string(f.Code), "http01.") || strings.HasPrefix(string(f.Code), "tlsalpn.")
				challenge = challenge && f.Code != reports.CodeHTTP01IPv6DifferentContent && f.Code != reports.CodeHTTP01InconsistentBackends
				if challenge && f.Severity >= reports.Error && (f.Problem == nil || !strings.HasPrefix(f.Problem.Type, "urn:ietf:params:acme:error:") || f.Problem.Detail == "") {
					t.Errorf("%s %s carries no ACME problem: %+v", f.Severity, f.Code, f.Problem)
				}
			}
			wantExit := 0
			for _, f := range rep.Findings {
				if f.Severity >= reports.Error {
					wantExit = 1
				}
			}
			if code != wantExit {
				t.Errorf("exit code %d, want %d (verdict %s)", code, wantExit, rep.Verdict)
			}
		})
	}
}

func hasFinding(fs []reports.Finding, want testenv.Expectation) bool {
	for _, f := range fs {
		if f.Code == want.Code && f.Severity == want.Severity && strings.Contains(f.Detail, universe.InBlock(want.DetailContains)) &&
			(want.Vantage == "" || f.Vantage == want.Vantage) {
			return true
		}
	}
	return false
}

// A root that answers garbage or nothing is a finding within the deadline,
// never a hang or a crash.
func TestHostileRoots(t *testing.T) {
	needUniverse(t)
	cases := []struct {
		desc   string
		server string
		want   reports.Code
	}{
		{desc: "garbage root", server: "ns1.garbage.com", want: reports.CodeDNSServFail},
		{desc: "silent root", server: "ns1.timeout.com", want: reports.CodeDNSTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			srv := universe.Server(tc.server)
			if srv == nil || len(srv.Addrs()) == 0 {
				t.Fatalf("no server %s in the universe", tc.server)
			}
			addr := srv.Addrs()[0]
			rep, stdout, code := diagnoseJSON(t, "diagnose", "-o", "json", "--roots", addr, "--dns-port", strconv.Itoa(universe.Port()),
				"--query-timeout", "300ms", "--resolver", universe.Resolver(), "--timeout", "20s", "www.healthy-unsigned.com")
			if code != exitFindings {
				t.Errorf("exit %d, want %d", code, exitFindings)
			}
			found := false
			for _, f := range rep.Findings {
				found = found || f.Code == tc.want && strings.Contains(f.Detail, "zone .")
			}
			if !found {
				t.Errorf("no %s finding naming the root zone: %s", tc.want, stdout)
			}
		})
	}
}

// Orders from the CA itself (Pebble, validating against the universe)
// agree with acmediag's own checks: the report shows Pebble's problem next
// to acmediag's finding for the same cause, and a 404 from the right server
// (the token is not served in a probe order) is a pass.
func TestACMEProbeOrders(t *testing.T) {
	needUniverse(t)
	cases := []struct {
		scenario string
		ownCode  reports.Code // acmediag's finding for the cause ("" for a pass)
		caFails  bool
	}{
		{scenario: "web-ipv4-only"},
		{scenario: "web-404", ownCode: reports.CodeHTTP01NotRouted},
		{scenario: "web-refused", ownCode: reports.CodeHTTP01ConnectionRefused, caFails: true},
		{scenario: "nxdomain", ownCode: reports.CodeDNSNXDomain, caFails: true},
		{scenario: "web-redirect-chain-12", ownCode: reports.CodeHTTP01TooManyRedirects, caFails: true},
		{scenario: "web-dropped", ownCode: reports.CodeHTTP01ConnectTimeout, caFails: true},
		{scenario: "web-wrong-keyauth", ownCode: reports.CodeHTTP01WrongBody},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			var sc testenv.Scenario
			for _, s := range testenv.Catalogue() {
				if s.Name == tc.scenario {
					sc = s
				}
			}
			if sc.Name == "" {
				t.Fatalf("no scenario %s", tc.scenario)
			}
			args := append([]string{"diagnose", "-o", "json", "--log-level", "error"}, universe.ACMEArgs()...)
			rep, stdout, _ := diagnoseJSON(t, append(args, universe.DiagnoseArgs(sc)...)...)
			var own, order *reports.Finding
			for i, f := range rep.Findings {
				if f.Code == reports.CodeACMEOrderFailed {
					order = &rep.Findings[i]
				}
				if tc.ownCode != "" && f.Code == tc.ownCode && f.Vantage == "" {
					own = &rep.Findings[i]
				}
			}
			if tc.caFails != (order != nil) {
				t.Fatalf("CA order failed = %v, want %v: %s", order != nil, tc.caFails, stdout)
			}
			if order != nil && (order.Problem == nil || !strings.HasPrefix(order.Problem.Type, "urn:ietf:params:acme:error:")) {
				t.Errorf("acme.order_failed lacks the CA's problem: %+v", order)
			}
			if tc.ownCode != "" && own == nil {
				t.Errorf("no own %s finding next to the CA's verdict: %s", tc.ownCode, stdout)
			}
			ran := false
			for _, c := range rep.Checks {
				ran = ran || c.Name == "acme.challenge" && c.Status == reports.CheckOK
			}
			if !ran {
				t.Errorf("the order's challenge step did not run: %+v", rep.Checks)
			}
		})
	}
}

// --serve-token: acmediag serves the token itself where the name routes
// and completes the order; every step shows in the checks.
func TestACMEServeTokenIssues(t *testing.T) {
	needUniverse(t)
	addrs := universe.WebAddrs("web-refused") // nothing listens there: free for the token server
	if len(addrs) == 0 {
		t.Fatal("no web address for web-refused")
	}
	serve := net.JoinHostPort(addrs[0], strconv.Itoa(universe.HTTPPort()))
	args := append([]string{"diagnose", "-o", "json", "--log-level", "error", "--serve-token", serve}, universe.ACMEArgs()...)
	args = append(args, "--roots", strings.Join(universe.Roots(), ","), "--dns-port", strconv.Itoa(universe.Port()),
		"--trust-anchor", universe.TrustAnchorFile(), "--resolver", universe.Resolver(), "--allow-address", "127.0.0.0/8,::1/128",
		"--http-port", strconv.Itoa(universe.HTTPPort()), "--https-port", strconv.Itoa(universe.HTTPSPort()), "web-refused.acmeweb.com")
	rep, stdout, code := diagnoseJSON(t, args...)
	steps := acmeSteps(rep)
	for _, s := range []string{"acme.account", "acme.order", "acme.serve_token", "acme.challenge", "acme.poll", "acme.finalize", "acme.download"} {
		if steps[s] != reports.CheckOK {
			t.Errorf("step %s: %q, want ok (steps %v)", s, steps[s], steps)
		}
	}
	// The token server is up for the whole run: acmediag's own HTTP-01
	// probe fetched the order's token and checked its key authorization,
	// and the verdict is the CA's.
	for _, f := range rep.Findings {
		if f.Severity >= reports.Error {
			t.Errorf("%s %s: %s", f.Severity, f.Code, f.Detail)
		}
	}
	validated := slices.ContainsFunc(rep.Checks, func(c reports.Check) bool {
		return c.Name == "http-01.validation" && c.Status == reports.CheckOK && strings.HasPrefix(c.Note, "the token's key authorization matches")
	})
	if !validated || code != 0 || rep.Verdict != reports.VerdictPass {
		t.Errorf("exit %d, verdict %s, the probe fetched the order's token: %v\n%s", code, rep.Verdict, validated, stdout)
	}
}

// --dns-provider: a dns-01 order published through lego's RFC 2136
// provider into the universe's authoritative servers (TSIG-signed UPDATE),
// awaited until every server serves it, validated and issued by Pebble.
func TestACMEDNS01ThroughRFC2136(t *testing.T) {
	needUniverse(t)
	name, alg, secret := universe.TSIG()
	t.Setenv("RFC2136_NAMESERVER", universe.UpdatePrimary("healthy-signed.com."))
	t.Setenv("RFC2136_TSIG_KEY", name)
	t.Setenv("RFC2136_TSIG_ALGORITHM", alg)
	t.Setenv("RFC2136_TSIG_SECRET", secret)
	args := append([]string{"diagnose", "-o", "json", "--log-level", "error", "--challenge", "dns-01", "--dns-provider", "rfc2136"}, universe.ACMEArgs()...)
	args = append(args, "--roots", strings.Join(universe.Roots(), ","), "--dns-port", strconv.Itoa(universe.Port()),
		"--trust-anchor", universe.TrustAnchorFile(), "--resolver", universe.ClusterResolver(), "--allow-address", "127.0.0.0/8,::1/128",
		"canary-dns01.healthy-signed.com")
	rep, stdout, _ := diagnoseJSON(t, args...)
	steps := acmeSteps(rep)
	for _, s := range []string{"acme.present_txt", "acme.propagation", "acme.challenge", "acme.finalize", "acme.download", "acme.cleanup"} {
		if steps[s] != reports.CheckOK {
			t.Errorf("step %s: %q, want ok (steps %v)\n%s", s, steps[s], steps, stdout)
		}
	}
}
