package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"github.com/acmediag/acmediag/testenv/pki"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// testPKI is a CA with a server and a client certificate, and a second CA
// with a client certificate of its own, written as PEM files.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	otherCA, otherCert, otherKey                     string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{}
	ca, err := pki.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(dir, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	p.ca, p.otherCA = ca.CertFile, other.CertFile
	for _, step := range []func() error{
		func() (err error) { p.serverCert, p.serverKey, err = ca.Server("server"); return err },
		func() (err error) { p.clientCert, p.clientKey, err = ca.Client("client"); return err },
		func() (err error) { p.otherCert, p.otherKey, err = other.Client("other-client"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// deadDNS is a UDP socket on loopback that reads queries and never
// answers; received is signalled on the first query.
type deadDNS struct {
	addr     netip.AddrPort
	received chan struct{}
}

func startDeadDNS(t testing.TB) *deadDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &deadDNS{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), received: make(chan struct{})}
	go func() {
		var once sync.Once
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			once.Do(func() { close(d.received) })
		}
	}()
	return d
}

// agentConfig is an agent whose DNS goes to dead, so every DNS probe ends
// in a timeout finding after about timeout.
func agentConfig(t testing.TB, dead *deadDNS, timeout time.Duration) Config {
	s := probes.DefaultSettings()
	s.Vantages = []probes.VantageSettings{{Name: "eu-west", Kind: "external", Region: "eu-west", RIR: "RIPE"}}
	s.DNS.Roots = []string{dead.addr.Addr().String()}
	s.DNS.DNSPort = int(dead.addr.Port())
	s.DNS.Resolvers = []string{dead.addr.String()}
	s.DNS.AllowAddresses = []string{"127.0.0.0/8"}
	s.DNS.QueryTimeout, s.DNS.ResolverTimeout = probes.Duration(timeout), probes.Duration(timeout)
	plan, err := probes.Build(s, probes.BuildOptions{Logger: zaptest.NewLogger(t), TargetsOnRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	return Config{Plan: plan, Logger: zaptest.NewLogger(t)}
}

// startAgent serves an agent with cfg over mutual TLS on loopback and
// returns its URL.
func startAgent(t *testing.T, p *testPKI, cfg Config) string {
	t.Helper()
	tlsCfg, err := ServerTLS(p.serverCert, p.serverKey, p.ca)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewHandler(cfg), tlsCfg, cfg.Limits, cfg.Logger)
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

// rawClient is an HTTP client with the given client certificate (none
// when certFile is "") trusting caFile.
func rawClient(t *testing.T, certFile, keyFile, caFile string) *http.Client {
	t.Helper()
	var cfg *tls.Config
	if certFile != "" {
		var err error
		if cfg, err = ClientTLS(certFile, keyFile, caFile); err != nil {
			t.Fatal(err)
		}
	} else {
		pool := x509.NewCertPool()
		data, _ := os.ReadFile(caFile)
		pool.AppendCertsFromPEM(data)
		cfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func post(c *http.Client, url, body string) (int, http.Header, string, error) {
	resp, err := c.Post(url+ProbePath, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b), nil
}

// The agent refuses at the TLS layer whoever does not present a
// certificate from the pinned client CA; the client refuses an agent
// whose certificate is not from the agent CA it pins.
func TestAgentMutualTLS(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	url := startAgent(t, p, agentConfig(t, startDeadDNS(t), 100*time.Millisecond))
	// A forbidden kind: answered with 403 when the TLS layer lets it through.
	const body = `{"kind":"acme","target":{"name":"www.example.com"}}`
	cases := []struct {
		desc           string
		cert, key, ca  string
		wantStatus     int
		wantErrContain string
	}{
		{desc: "client certificate from the pinned CA", cert: p.clientCert, key: p.clientKey, ca: p.ca, wantStatus: http.StatusForbidden},
		{desc: "client certificate from another CA", cert: p.otherCert, key: p.otherKey, ca: p.ca, wantErrContain: "tls: "},
		{desc: "no client certificate", ca: p.ca, wantErrContain: "tls: certificate required"},
		{desc: "the agent's certificate is not from the pinned agent CA", cert: p.clientCert, key: p.clientKey, ca: p.otherCA,
			wantErrContain: "certificate signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			status, _, got, err := post(rawClient(t, tc.cert, tc.key, tc.ca), url, body)
			if tc.wantErrContain != "" {
				if err == nil {
					t.Fatalf("got HTTP %d (%s), want a TLS failure", status, got)
				}
				if !strings.Contains(err.Error(), tc.wantErrContain) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErrContain)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", status, tc.wantStatus, got)
			}
		})
	}
}

// Whatever is not one known probe of one DNS name is refused, with a
// message that says why.
func TestAgentRefusals(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	cfg := agentConfig(t, startDeadDNS(t), 100*time.Millisecond)
	cfg.Limits.Burst = 100 // the rate limit has its own test
	url := startAgent(t, p, cfg)
	c := rawClient(t, p.clientCert, p.clientKey, p.ca)
	cases := []struct {
		desc       string
		method     string // default POST
		path       string // default ProbePath
		body       string
		wantStatus int
		wantMsg    string
	}{
		{desc: "unknown probe kind", body: `{"kind":"acme","target":{"name":"www.example.com"}}`,
			wantStatus: 403, wantMsg: `kind "acme": an agent runs only the probe kinds dns, http-01, tls-alpn-01`},
		{desc: "a port", body: `{"kind":"http-01","target":{"name":"www.example.com"},"port":8080}`,
			wantStatus: 403, wantMsg: `"port" is not accepted: an agent probes a DNS name on ports 53, 80 and 443`},
		{desc: "an address in the target", body: `{"kind":"http-01","target":{"name":"www.example.com","address":"10.0.0.1"}}`,
			wantStatus: 403, wantMsg: `target."address" is not accepted`},
		{desc: "a resolver", body: `{"kind":"dns","target":{"name":"www.example.com","resolver":"10.0.0.53"}}`,
			wantStatus: 403, wantMsg: `target."resolver" is not accepted`},
		{desc: "an IP address as the name", body: `{"kind":"http-01","target":{"name":"10.0.0.1"}}`,
			wantStatus: 403, wantMsg: `target.name "10.0.0.1" is not a DNS name an ACME CA would validate`},
		{desc: "a name with a port", body: `{"kind":"http-01","target":{"name":"www.example.com:8080"}}`,
			wantStatus: 403, wantMsg: `target.name "www.example.com:8080" is not a DNS name`},
		{desc: "a URL as the name", body: `{"kind":"http-01","target":{"name":"http://internal.example.com/admin"}}`,
			wantStatus: 403, wantMsg: `is not a DNS name`},
		{desc: "a token that is a path", body: `{"kind":"http-01","target":{"name":"www.example.com","token":"../../admin","key_auth":"a.b"}}`,
			wantStatus: 403, wantMsg: `target.token "../../admin" is not an ACME token`},
		{desc: "a challenge probe for another challenge", body: `{"kind":"http-01","target":{"name":"www.example.com","challenge":"dns-01"}}`,
			wantStatus: 403, wantMsg: `a http-01 probe does not validate dns-01 targets`},
		{desc: "TXT value for http-01", body: `{"kind":"dns","target":{"name":"www.example.com","expect_txt":"x"}}`,
			wantStatus: 403, wantMsg: `only a dns-01 target has a TXT value`},
		{desc: "no name", body: `{"kind":"dns","target":{}}`, wantStatus: 400, wantMsg: "target.name is missing"},
		{desc: "not JSON", body: `kind=dns&name=www.example.com`, wantStatus: 400, wantMsg: "not a JSON object"},
		{desc: "a name of the wrong type", body: `{"kind":"dns","target":{"name":42}}`, wantStatus: 400, wantMsg: "target.name: want a JSON string"},
		{desc: "oversized body", body: `{"kind":"dns","target":{"name":"` + strings.Repeat("a", 5000) + `"}}`,
			wantStatus: 413, wantMsg: "larger than 4096 bytes"},
		{desc: "GET", method: http.MethodGet, wantStatus: 405, wantMsg: "the agent serves only POST /v1/probe"},
		{desc: "another path", path: "/v1/fetch", body: `{}`, wantStatus: 404, wantMsg: "the agent serves only POST /v1/probe"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = ProbePath
			}
			req, _ := http.NewRequest(method, url+path, strings.NewReader(tc.body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb errorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatalf("status %d, body is not the error JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.wantStatus || !strings.Contains(eb.Error, tc.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, eb.Error, tc.wantStatus, tc.wantMsg)
			}
		})
	}
}

// A token bucket: Burst requests at once, then one per 1/Rate, 429 with
// Retry-After between.
func TestAgentRateLimit(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := agentConfig(t, startDeadDNS(t), 100*time.Millisecond)
	cfg.Limits = Limits{Rate: 0.5, Burst: 2}
	cfg.Now = clock
	url := startAgent(t, p, cfg)
	c := rawClient(t, p.clientCert, p.clientKey, p.ca)
	// Refused requests are cheap and still spend a token.
	const body = `{"kind":"acme","target":{"name":"www.example.com"}}`
	steps := []struct {
		desc       string
		advance    time.Duration
		wantStatus int
		wantRetry  string
	}{
		{desc: "first of the burst", wantStatus: 403},
		{desc: "second of the burst", wantStatus: 403},
		{desc: "bucket empty", wantStatus: 429, wantRetry: "2"},
		{desc: "one second later, half a token", advance: time.Second, wantStatus: 429, wantRetry: "1"},
		{desc: "two seconds later, a token", advance: time.Second, wantStatus: 403},
		{desc: "empty again", wantStatus: 429, wantRetry: "2"},
	}
	for _, s := range steps {
		advance(s.advance)
		status, hdr, got, err := post(c, url, body)
		if err != nil {
			t.Fatalf("%s: %v", s.desc, err)
		}
		if status != s.wantStatus {
			t.Errorf("%s: status %d, want %d (%s)", s.desc, status, s.wantStatus, got)
		}
		if s.wantRetry != "" && hdr.Get("Retry-After") != s.wantRetry {
			t.Errorf("%s: Retry-After %q, want %q", s.desc, hdr.Get("Retry-After"), s.wantRetry)
		}
		if status == 429 && !strings.Contains(got, "rate limit: at most 0.5 probe requests per second (burst 2)") {
			t.Errorf("%s: message %s", s.desc, got)
		}
	}
}

// MaxInFlight bounds the probes running at once: with one DNS probe held
// by a silent resolver, the next request is turned away at once.
func TestAgentInFlight(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	dead := startDeadDNS(t)
	cfg := agentConfig(t, dead, 2*time.Second)
	cfg.Limits = Limits{MaxInFlight: 1, Rate: 100, Burst: 100}
	url := startAgent(t, p, cfg)
	c := rawClient(t, p.clientCert, p.clientKey, p.ca)
	const body = `{"kind":"dns","target":{"name":"www.example.com"}}`
	first := make(chan int, 1)
	go func() {
		status, _, _, _ := post(c, url, body)
		first <- status
	}()
	select {
	case <-dead.received:
	case <-time.After(5 * time.Second):
		t.Fatal("the first probe never queried its resolver")
	}
	status, _, got, err := post(c, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusTooManyRequests || !strings.Contains(got, "busy: 1 probes are already running") {
		t.Errorf("second request while one runs: %d %s, want 429 busy", status, got)
	}
	if s := <-first; s != http.StatusOK {
		t.Errorf("the first request: status %d, want 200", s)
	}
}

// The client returns the agent's findings under the vantage the plan runs
// it for, and a failed observation saying why when the agent does not
// answer.
func TestClientRun(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	url := startAgent(t, p, agentConfig(t, startDeadDNS(t), 100*time.Millisecond))
	clientTLS, err := ClientTLS(p.clientCert, p.clientKey, p.ca)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(url, clientTLS, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "https://" + ln.Addr().String()
	ln.Close()
	deadClient, err := NewClient(deadURL, clientTLS, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	on := true
	cases := []struct {
		desc        string
		client      *Client
		kind        reports.Kind
		target      probes.Target
		vantage     probes.Vantage
		wantVantage string
		wantCode    reports.Code // a finding the agent must have returned
		wantCheck   string       // a failed check's note must contain it
		wantServed  bool         // the agent ran the tls kind: its tls.served check came back
	}{
		{desc: "the vantage the plan names", client: client, kind: "dns", target: probes.Target{Name: "WWW.Example.com", Challenge: "http-01"},
			vantage: vantage("agent-eu", "RIPE"), wantVantage: "agent-eu", wantCode: reports.CodeDNSTimeout},
		{desc: "the agent refuses", client: client, kind: "http-01", target: probes.Target{Name: "10.0.0.1", Challenge: "http-01"},
			vantage: vantage("agent-eu", ""), wantVantage: "agent-eu", wantCheck: "403 Forbidden: target.name \"10.0.0.1\" is not a DNS name"},
		// The daemon's plan asks an agent for the certificate a name
		// serves with the target's tls key set (remoteProbe): the agent
		// runs it whatever its own tls.enabled; without the key it does
		// not read certificates.
		{desc: "the tls kind, asked for", client: client, kind: probes.KindTLS, target: probes.Target{Name: "www.example.com", Challenge: "http-01", TLS: &on},
			vantage: vantage("agent-eu", ""), wantVantage: "agent-eu", wantServed: true},
		{desc: "the tls kind, not asked for", client: client, kind: probes.KindTLS, target: probes.Target{Name: "www.example.com", Challenge: "http-01"},
			vantage: vantage("agent-eu", ""), wantVantage: "agent-eu", wantCheck: "403 Forbidden: target.tls: this agent reads"},
		{desc: "the agent is down", client: deadClient, kind: "dns", target: probes.Target{Name: "www.example.com", Challenge: "http-01"},
			vantage: vantage("agent-eu", ""), wantVantage: "agent-eu", wantCheck: "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			obs := tc.client.Run(ctx, tc.kind, tc.target, tc.vantage)
			if obs.Vantage.Name != tc.wantVantage || obs.Kind != tc.kind {
				t.Errorf("vantage %q kind %q, want %q %q", obs.Vantage.Name, obs.Kind, tc.wantVantage, tc.kind)
			}
			if obs.OK {
				t.Errorf("OK, want a failure: %+v", obs)
			}
			if len(obs.Trace.Lines) != 1 || !strings.Contains(obs.Trace.Lines[0], tc.client.URL()) {
				t.Errorf("trace %+v, want the agent %s", obs.Trace, tc.client.URL())
			}
			if tc.wantCode != "" {
				found := false
				for _, f := range obs.Findings {
					found = found || f.Code == tc.wantCode
					if f.Vantage != "" {
						t.Errorf("finding %s carries vantage %q; the report assigns vantages", f.Code, f.Vantage)
					}
				}
				if !found {
					t.Errorf("no %s finding in %+v", tc.wantCode, obs.Findings)
				}
				if !strings.Contains(obs.Trace.Lines[0], "(eu-west)") {
					t.Errorf("trace %q does not name the agent's own vantage eu-west", obs.Trace.Lines[0])
				}
			}
			if tc.wantServed && (len(obs.Checks) != 1 || obs.Checks[0].Name != "tls.served") {
				t.Errorf("checks %+v, want the agent's tls.served", obs.Checks)
			}
			if tc.wantCheck != "" {
				if len(obs.Checks) != 1 || obs.Checks[0].Name != "agent.probe" || obs.Checks[0].Status != reports.CheckFail ||
					!strings.Contains(obs.Checks[0].Note, tc.wantCheck) {
					t.Errorf("checks %+v, want one failed agent.probe containing %q", obs.Checks, tc.wantCheck)
				}
				if len(obs.Findings) != 0 {
					t.Errorf("findings %+v, want none: the agent's trouble is not the name's", obs.Findings)
				}
			}
		})
	}
}

// The client refuses what an agent must not answer: another kind, another
// name, an answer too large to hold.
func TestAgentClientHostileAnswers(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	ok := reports.Observation{Vantage: reports.Vantage{Name: "x", Kind: reports.External}, Kind: "dns", Name: "www.example.com"}
	enc := func(r reports.Observation) []byte { b, _ := json.Marshal(r); return b }
	wrongKind, wrongName, tooMany := ok, ok, ok
	wrongKind.Kind = "http-01"
	wrongName.Name = "www.other.example"
	tooMany.Findings = make([]reports.Finding, maxAgentFindings+1)
	for i := range tooMany.Findings {
		tooMany.Findings[i] = reports.Finding{Code: "dns.timeout", Severity: reports.Error}
	}
	cases := []struct {
		desc    string
		status  int
		body    []byte
		wantErr string
	}{
		{desc: "a good answer", status: 200, body: enc(ok)},
		{desc: "another kind", status: 200, body: enc(wrongKind), wantErr: `asked for a dns probe, got "http-01"`},
		{desc: "another name", status: 200, body: enc(wrongName), wantErr: `got an answer about "www.other.example"`},
		{desc: "too many findings", status: 200, body: enc(tooMany), wantErr: "257 findings"},
		{desc: "too large", status: 200, body: bytes.Repeat([]byte(" "), maxAgentResponse+10), wantErr: "larger than"},
		{desc: "not JSON", status: 200, body: []byte("<html>"), wantErr: "not a probe result"},
		{desc: "an error with a long message", status: 500, body: []byte(strings.Repeat("x", 5000)), wantErr: "500 Internal Server Error: xxx"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			tlsCfg, err := ServerTLS(p.serverCert, p.serverKey, p.ca)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body)
			})}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			clientTLS, _ := ClientTLS(p.clientCert, p.clientKey, p.ca)
			c, err := NewClient("https://"+ln.Addr().String(), clientTLS, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			res, err := c.Probe(context.Background(), "dns", probes.Target{Name: "www.example.com"})
			if tc.wantErr == "" {
				if err != nil || res == nil {
					t.Fatalf("error %v, want a result", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			var ae *Error
			if tc.status != 200 && (!errors.As(err, &ae) || ae.Status != tc.status || len(ae.Message) > maxAgentErrorMsg+4) {
				t.Errorf("error %#v, want an *Error with status %d and a truncated message", err, tc.status)
			}
		})
	}
}

// vantage is a plan's vantage for an agent.
func vantage(name, rir string) probes.Vantage {
	return probes.Vantage{Vantage: reports.Vantage{Name: name, Kind: reports.External, RIR: rir}}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	clientTLS, err := ClientTLS(p.clientCert, p.clientKey, p.ca)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc    string
		url     string
		tls     *tls.Config
		wantErr string
	}{
		{desc: "https host and port", url: "https://127.0.0.1:9465", tls: clientTLS},
		{desc: "plain http", url: "http://127.0.0.1:9465", tls: clientTLS, wantErr: "want https://HOST:PORT"},
		{desc: "a path", url: "https://127.0.0.1:9465/other", tls: clientTLS, wantErr: "want https://HOST:PORT"},
		{desc: "user info", url: "https://u:p@127.0.0.1:9465", tls: clientTLS, wantErr: "want https://HOST:PORT"},
		{desc: "no client certificate", url: "https://127.0.0.1:9465", tls: &tls.Config{}, wantErr: "a client certificate is required"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := NewClient(tc.url, tc.tls, 0)
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := ClientTLS(p.clientCert, p.clientKey, p.clientKey); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a key file as the CA: %v, want no PEM certificate", err)
	}
}
