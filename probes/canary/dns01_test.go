package canary

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// dns01Port is this package's universe port, apart from other packages'.
const dns01Port = 10453

// dns01Zone is a healthy signed zone of the catalogue with two servers:
// the first is the primary that takes UPDATEs, the second its secondary.
const dns01Zone = "healthy-signed.com."

// zoneAddrs are "ADDR:PORT" of every server of zone.
func zoneAddrs(u *testenv.Universe, zone string) []string {
	var out []string
	for _, s := range u.Servers() {
		if s.Zone(zone) != nil {
			for _, a := range s.Addrs() {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(u.Port())))
			}
		}
	}
	return out
}

// txtOn returns the TXT values at fqdn on one authoritative server.
func txtOn(ctx context.Context, addr, fqdn string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, dns.TypeTXT)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Timeout: time.Second}).ExchangeContext(ctx, m, addr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// propagated is a PropagationCheck asking every server of the zone
// directly, as dnscheck does.
func propagated(addrs []string) PropagationCheck {
	return func(ctx context.Context, fqdn, value string) error {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			missing := 0
			for _, a := range addrs {
				if vs, err := txtOn(ctx, a, fqdn); err != nil || !slices.Contains(vs, value) {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return errors.New(strconv.Itoa(missing) + " servers lack the value")
			case <-tick.C:
			}
		}
	}
}

// writeScript writes an exec-provider program.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "provider.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDNS01AgainstUniverse runs DNS-01 orders against Pebble validating
// through the universe's resolver, publishing with lego's real providers:
// dnsupdate (RFC 2136 into the universe's primary, which propagates to its
// secondary) and exec.
func TestDNS01AgainstUniverse(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the universe and pebble")
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: dns01Port, ACME: true, WorkDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })

	// lego follows _acme-challenge CNAMEs through its process-wide client,
	// by default the machine's resolver: point it at a universe resolver,
	// not the one Pebble uses. Sharing it would let lego's lookup before
	// the record exists plant a cached NXDOMAIN that Pebble then reads; a
	// real client and the CA never share a resolver cache.
	prev := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{u.ClusterResolver()}, Timeout: 2 * time.Second}))
	t.Cleanup(func() { dns01.SetDefaultClient(prev) })

	keyName, alg, secret := u.TSIG()
	primary := u.UpdatePrimary(dns01Zone)
	addrs := zoneAddrs(u, dns01Zone)
	if keyName == "" || primary == "" || len(addrs) < 2 {
		t.Fatalf("universe: key %q primary %q servers %v", keyName, primary, addrs)
	}
	var secondary string
	for _, a := range addrs {
		if a != primary {
			secondary = a
		}
	}
	cfg := Config{DirectoryURL: u.ACMEDirectory(), CACertFile: u.ACMECACert(),
		AccountKeyFile: filepath.Join(t.TempDir(), "key.pem"), Logger: log, DNS01Propagation: propagated(addrs)}

	rfc2136 := map[string]string{
		"RFC2136_NAMESERVER": primary, "RFC2136_TSIG_KEY": keyName, "RFC2136_TSIG_ALGORITHM": alg, "RFC2136_TSIG_SECRET": secret,
	}
	cases := []struct {
		desc       string
		provider   string
		env        map[string]string
		name       string
		wantIssued bool
		wantCodes  []string
		wantDetail string // in the first finding's detail
		wantSteps  []string
	}{
		{desc: "rfc2136 into the primary: issued, propagated, cleaned up", provider: "rfc2136", env: rfc2136,
			name: "dns01-canary." + strings.TrimSuffix(dns01Zone, "."), wantIssued: true,
			wantSteps: []string{"present_txt", "propagation", "challenge", "poll", "finalize", "download", "deactivate", "cleanup"}},
		{desc: "wildcard through dnsupdate (lego's name)", provider: "dnsupdate", env: rfc2136,
			name: "*." + strings.TrimSuffix(dns01Zone, "."), wantIssued: true},
		{desc: "rfc2136 aimed at the secondary: refused, provider error", provider: "rfc2136",
			env:  map[string]string{"RFC2136_NAMESERVER": secondary, "RFC2136_TSIG_KEY": keyName, "RFC2136_TSIG_ALGORITHM": alg, "RFC2136_TSIG_SECRET": secret},
			name: "dns01-secondary." + strings.TrimSuffix(dns01Zone, "."), wantCodes: []string{"dns01.provider_error"}, wantDetail: "REFUSED"},
		{desc: "exec provider that exits 1: provider error", provider: "exec",
			env:  map[string]string{"EXEC_PATH": writeScript(t, `echo "no credentials for this zone" >&2; exit 1`)},
			name: "dns01-exec-fail." + strings.TrimSuffix(dns01Zone, "."), wantCodes: []string{"dns01.provider_error"}, wantDetail: "exit status 1",
			wantSteps: []string{"present_txt", "deactivate"}},
		{desc: "exec provider that publishes nothing: the CA finds no TXT", provider: "exec",
			env:  map[string]string{"EXEC_PATH": writeScript(t, "exit 0")},
			name: "dns01-exec-noop." + strings.TrimSuffix(dns01Zone, "."), wantCodes: []string{"acme.order_failed", "dns01.propagation_slow", "dns01.txt_missing"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// Short propagation bound for the provider that never publishes.
			t.Setenv("EXEC_PROPAGATION_TIMEOUT", "2")
			p, err := DNSProvider(tc.provider)
			if err != nil {
				t.Fatal(err)
			}
			octx, ocancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer ocancel()
			out := DNS01Order(octx, cfg, tc.name, p)
			var steps []string
			for _, s := range out.Steps {
				t.Logf("step %-13s %8s %s", s.Name, s.Duration.Round(time.Millisecond), s.Err)
				steps = append(steps, s.Name)
			}
			if out.Err != nil {
				t.Fatalf("Err = %v", out.Err)
			}
			if out.Issued != tc.wantIssued {
				t.Errorf("issued = %v, want %v (findings %+v)", out.Issued, tc.wantIssued, out.Findings)
			}
			if got := codes(out.Findings); !slices.Equal(got, tc.wantCodes) {
				t.Errorf("codes = %v, want %v (findings %+v)", got, tc.wantCodes, out.Findings)
			}
			if tc.wantDetail != "" && (len(out.Findings) == 0 || !strings.Contains(out.Findings[0].Detail, tc.wantDetail)) {
				t.Errorf("findings %+v lack %q", out.Findings, tc.wantDetail)
			}
			if tc.wantSteps != nil {
				var got []string
				for _, s := range steps {
					if slices.Contains(tc.wantSteps, s) {
						got = append(got, s)
					}
				}
				if !slices.Equal(got, tc.wantSteps) {
					t.Errorf("steps = %v, want in order %v", steps, tc.wantSteps)
				}
			}
			// Cleanup: the challenge TXT is gone from every server.
			fqdn := "_acme-challenge." + strings.TrimPrefix(tc.name, "*.") + "."
			for _, a := range addrs {
				if vs, err := txtOn(octx, a, fqdn); err != nil || len(vs) != 0 {
					t.Errorf("%s after the order: TXT %q err %v, want none", a, vs, err)
				}
			}
		})
	}
}

func TestDNSProvider(t *testing.T) {
	cases := []struct {
		desc    string
		name    string
		env     map[string]string
		wantErr string
	}{
		{desc: "unknown name lists the supported ones", name: "nosuchdns", wantErr: "supported: cloudflare, digitalocean, dnsupdate, exec, gcloud, rfc2136, route53"},
		{desc: "rfc2136 without its environment: lego names the variable", name: "rfc2136", wantErr: "DNSUPDATE_NAMESERVER"},
		{desc: "exec without its environment", name: "exec", wantErr: "EXEC_PATH"},
		{desc: "rfc2136, upper case, from RFC2136_ variables", name: "RFC2136", env: map[string]string{"RFC2136_NAMESERVER": "127.0.0.1:10453"}},
		{desc: "dnsupdate from DNSUPDATE_ variables", name: "dnsupdate", env: map[string]string{"DNSUPDATE_NAMESERVER": "127.0.0.1:10453", "DNSUPDATE_TSIG_ALGORITHM": "hmac-sha256."}},
		{desc: "dnsupdate with an unsupported algorithm", name: "dnsupdate", env: map[string]string{"DNSUPDATE_NAMESERVER": "127.0.0.1", "DNSUPDATE_TSIG_ALGORITHM": "hmac-md4."}, wantErr: "unsupported TSIG algorithm"},
		{desc: "exec", name: "exec", env: map[string]string{"EXEC_PATH": "/bin/true"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			for _, k := range []string{"DNSUPDATE_NAMESERVER", "RFC2136_NAMESERVER", "EXEC_PATH"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			p, err := DNSProvider(tc.name)
			if tc.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("DNSProvider(%q) = %v, %v", tc.name, p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestDNS01Rules checks the DNS-01 problem texts of Boulder and Pebble.
func TestDNS01Rules(t *testing.T) {
	cases := []struct {
		desc string
		p    reports.Problem
		want reports.Code
	}{
		{desc: "Pebble: no TXT", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "No TXT records found for DNS challenge"}, want: reports.CodeDNS01TXTMissing},
		{desc: "Pebble: wrong value", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "Correct value not found for DNS challenge"}, want: reports.CodeDNS01TXTWrongValue},
		{desc: "Boulder: no TXT", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "No TXT record found at _acme-challenge.a.example"}, want: reports.CodeDNS01TXTMissing},
		{desc: "Boulder: wrong value", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: `Incorrect TXT record "x" found at _acme-challenge.a.example`}, want: reports.CodeDNS01TXTWrongValue},
		{desc: "Pebble: NXDOMAIN", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: `Error retrieving TXT records for DNS challenge ("DNS lookup for \"_acme-challenge.a.example\" returned an unsuccessful response: 3")`}, want: reports.CodeDNS01TXTMissing},
		{desc: "Boulder: NXDOMAIN", p: reports.Problem{Type: reports.ProblemDNS, Detail: "DNS problem: NXDOMAIN looking up TXT for _acme-challenge.a.example - check that a DNS record exists for this domain"}, want: reports.CodeDNS01TXTMissing},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			fs := failed("a.example", tc.p)
			if len(fs) != 2 || fs[0].Code != tc.want || fs[1].Code != reports.CodeACMEOrderFailed {
				t.Errorf("findings %v, want [%s acme.order_failed]", codes(fs), tc.want)
			}
		})
	}
}
