package canary

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/pebble"
)

// universe is a tiny loopback world for Pebble's VA: a static DNS server
// and the HTTP-01 port every name is validated on.
type universe struct {
	peb      *pebble.Pebble
	httpPort int
}

// names maps each test name to the loopback address it resolves to.
var testNames = map[string]string{
	"issue.canary-test.com.":    "127.0.0.1", // FullOrder serves the token here
	"notfound.canary-test.com.": "127.0.0.2", // a server answering 404
	"refused.canary-test.com.":  "127.0.0.3", // nothing listening
	"lego.canary-test.com.":     "127.0.0.1", // benchmark, plain lego
}

// startDNS serves testNames over UDP and TCP (Pebble's VA uses TCP);
// any other name is NXDOMAIN.
func startDNS(tb testing.TB) string {
	tb.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			addr, ok := testNames[strings.ToLower(q.Name)]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(addr)})
			}
		}
		_ = w.WriteMsg(m)
	})
	// The UDP port the kernel picks may be taken for TCP: try again.
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		tb.Fatal("no port free for both UDP and TCP")
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go func() { _ = s.ActivateAndServe() }()
		tb.Cleanup(func() { _ = s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// freePort returns a TCP port free on 127.0.0.1, 127.0.0.2 and 127.0.0.3.
func freePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return port
		}
	}
	tb.Fatal("no free port")
	return 0
}

func startUniverse(tb testing.TB, log *zap.Logger) *universe {
	tb.Helper()
	return startUniverseRetry(tb, log, 0)
}

// startUniverseRetry is startUniverse with Pebble sending Retry-After:
// retryAfter seconds while authorizations and orders are processing.
func startUniverseRetry(tb testing.TB, log *zap.Logger, retryAfter int) *universe {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := pebble.Build(ctx, "")
	if err != nil {
		tb.Fatal(err)
	}
	u := &universe{httpPort: freePort(tb)}
	u.peb, err = pebble.Start(ctx, pebble.Config{Bin: bin, HTTPPort: u.httpPort, DNSServer: startDNS(tb), WorkDir: tb.TempDir(), Logger: log,
		RetryAfterAuthz: retryAfter, RetryAfterOrder: retryAfter})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(u.peb.Close)
	// notfound.canary-test.com: a web server that answers 404 to everything.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(u.httpPort)))
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return u
}

func codes(fs []reports.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Code))
	}
	slices.Sort(out)
	return out
}

func TestAgainstPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pebble")
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	u := startUniverse(t, log)
	keyFile := filepath.Join(t.TempDir(), "acct", "key.pem")
	cfg := Config{DirectoryURL: u.peb.DirectoryURL(), CACertFile: u.peb.CAFile(), AccountKeyFile: keyFile, Logger: log}
	tokens, err := ServeTokens(net.JoinHostPort("127.0.0.1", strconv.Itoa(u.httpPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer tokens.Close()

	// The full order runs first: the others rely on its token server
	// being closed after it.
	for _, tc := range []struct {
		desc        string
		name        string
		full        bool
		wantCodes   []string
		wantType    string // CA problem type, "" none
		wantReached bool
		wantValid   bool
		wantIssued  bool
	}{
		{desc: "full order issues", name: "issue.canary-test.com", full: true, wantReached: true, wantValid: true, wantIssued: true},
		{desc: "no listener: connection refused", name: "refused.canary-test.com",
			wantCodes: []string{"acme.order_failed", "http01.connection_refused"}, wantType: reports.ProblemConnection},
		// Pebble does not look at the rcode: NXDOMAIN reads "could not
		// resolve URL", which only proves there was no address.
		{desc: "name does not exist", name: "nx.canary-test.com",
			wantCodes: []string{"acme.order_failed", "dns.no_address"}, wantType: reports.ProblemConnection},
		{desc: "server answers 404: reached, pass", name: "notfound.canary-test.com", wantReached: true, wantType: reports.ProblemUnauthorized},
		{desc: "probe order never serves the token: refused once the full order is done", name: "issue.canary-test.com", wantCodes: []string{"acme.order_failed", "http01.connection_refused"}, wantType: reports.ProblemConnection},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out Outcome
			if tc.full {
				out = FullOrder(ctx, cfg, tc.name, tokens)
				// The token server goes with its run: the probe order
				// below finds nothing listening.
				tokens.Close()
			} else {
				out = ProbeOrder(ctx, cfg, tc.name)
			}
			for _, s := range out.Steps {
				t.Logf("step %-13s %8s %s", s.Name, s.Duration.Round(time.Millisecond), s.Err)
			}
			if out.Err != nil {
				t.Fatalf("Err = %v", out.Err)
			}
			if got := codes(out.Findings); !slices.Equal(got, tc.wantCodes) {
				t.Errorf("codes = %v, want %v (findings %+v)", got, tc.wantCodes, out.Findings)
			}
			gotType := ""
			if out.Problem != nil {
				gotType = out.Problem.Type
			}
			if gotType != tc.wantType {
				t.Errorf("problem = %+v, want type %q", out.Problem, tc.wantType)
			}
			if out.Reached != tc.wantReached || out.Valid != tc.wantValid || out.Issued != tc.wantIssued {
				t.Errorf("reached/valid/issued = %v/%v/%v, want %v/%v/%v", out.Reached, out.Valid, out.Issued, tc.wantReached, tc.wantValid, tc.wantIssued)
			}
			for _, f := range out.Findings {
				if f.Code == reports.CodeACMEOrderFailed && (f.Problem == nil || f.Problem.Detail != out.Problem.Detail) {
					t.Errorf("acme.order_failed does not carry the CA problem verbatim: %+v", f.Problem)
				}
			}
			var steps []string
			for _, s := range out.Steps {
				if s.Name != "poll_order" { // only when finalize answers "processing"
					steps = append(steps, s.Name)
				}
			}
			want := []string{"account_key", "directory", "account", "order", "authorization", "challenge", "poll"}
			if tc.full {
				// The valid authorization is given up, or the next order
				// for the name would reuse it and validate nothing (the
				// probe order below would then fail).
				want = append(want[:5], "serve_token", "challenge", "poll", "finalize", "download", "deactivate")
			}
			if len(steps) < len(want) || !slices.Equal(steps[:len(want)], want) {
				t.Errorf("steps = %v, want prefix %v", steps, want)
			}
		})
	}
	// The account key was created once and reused.
	if b, err := os.ReadFile(keyFile); err != nil || !strings.Contains(string(b), "EC PRIVATE KEY") {
		t.Errorf("account key file: %v", err)
	}
}
