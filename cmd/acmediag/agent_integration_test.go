package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/reports"
)

// The agent's integration tier: the built binary as an agent process bound
// to one of the universe's vantages (its source address, its own Unbound),
// asked over mutual TLS directly and by a daemon process that has it as
// its second vantage. Its universe runs on port 10953, apart from the
// diagnose and daemon universes.

const agentUniversePort = 10953

// startAgentProc runs `acmediag agent` with args and waits until it
// accepts connections on port.
func startAgentProc(t *testing.T, port int, args ...string) *daemonProc {
	t.Helper()
	a := startProc(t, fmt.Sprintf("https://127.0.0.1:%d", port),
		append([]string{"agent", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "info"}, args...)...)
	waitFor(t, a, "the agent to listen", 15*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return a
}

func TestAgentProcess(t *testing.T) {
	needBinary(t)
	u := startUniverse(t, agentUniversePort, "agent")

	vs := u.Vantages()
	local, remote := vs[0], vs[1] // us-east probes in the daemon, eu-west through the agent
	if local.Name != "us-east" || remote.Name != "eu-west" {
		t.Fatalf("the universe's vantages changed: %+v", vs)
	}
	pki := newAgentPKI(t)
	agentPort := freePort(t)
	ag := startAgentProc(t, agentPort,
		"--cert", pki.agentCert, "--key", pki.agentKey, "--client-ca", pki.daemonCA,
		"--name", remote.Name, "--rir", remote.RIR, "--region", remote.Region,
		"--vantage-source", remote.Addr, "--resolver", remote.Resolver,
		"--roots", strings.Join(u.Roots(), ","), "--trust-anchor", u.TrustAnchorFile(), "--dns-port", strconv.Itoa(u.Port()),
		"--http-port", strconv.Itoa(u.HTTPPort()), "--https-port", strconv.Itoa(u.HTTPSPort()),
		"--allow-address", "127.0.0.0/8,::1/128", "--query-timeout", "1s", "--rate", "50/s", "--burst", "50")

	clientTLS, err := agent.ClientTLS(pki.clientCert, pki.clientKey, pki.agentCA)
	if err != nil {
		t.Fatal(err)
	}
	client, err := agent.NewClient(ag.base, clientTLS, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	t.Run("probes through the agent", func(t *testing.T) {
		cases := []struct {
			desc     string
			kind     reports.Kind
			name     string
			wantOK   bool
			wantCode reports.Code
		}{
			{desc: "healthy name, dns", kind: "dns", name: healthyName, wantOK: true},
			{desc: "healthy name, http-01", kind: "http-01", name: healthyName, wantOK: true},
			{desc: "NXDOMAIN", kind: "dns", name: nxName, wantCode: reports.CodeDNSNXDomain},
			{desc: "connection refused", kind: "http-01", name: refusedName, wantCode: reports.CodeHTTP01ConnectionRefused},
		}
		for _, tc := range cases {
			t.Run(tc.desc, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				res, err := client.Probe(ctx, tc.kind, probes.Target{Name: tc.name, Challenge: "http-01"})
				if err != nil {
					t.Fatalf("%v\nagent log:\n%s", err, ag.logs())
				}
				if res.Vantage != (reports.Vantage{Name: "eu-west", Kind: reports.External, Region: "eu-west", RIR: "RIPE"}) {
					t.Errorf("vantage %+v", res.Vantage)
				}
				if res.OK != tc.wantOK || len(res.Checks) == 0 {
					t.Errorf("ok %v with %d checks, want %v; findings %+v", res.OK, len(res.Checks), tc.wantOK, res.Findings)
				}
				for _, f := range res.Findings {
					if tc.wantOK && f.Severity >= reports.Error {
						t.Errorf("a healthy name has %s: %s", f.Code, f.Detail)
					}
				}
				if tc.wantCode != "" && !slices.ContainsFunc(res.Findings, func(f reports.Finding) bool {
					return f.Code == tc.wantCode && f.Fix != "" && f.Summary != ""
				}) {
					t.Errorf("no %s finding in %+v", tc.wantCode, res.Findings)
				}
			})
		}
	})

	t.Run("refusals", func(t *testing.T) {
		// Another CA's client certificate never reaches HTTP.
		strangerTLS, err := agent.ClientTLS(pki.strangerCert, pki.strangerK, pki.agentCA)
		if err != nil {
			t.Fatal(err)
		}
		stranger, err := agent.NewClient(ag.base, strangerTLS, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		if _, err := stranger.Probe(t.Context(), "dns", probes.Target{Name: healthyName}); err == nil || !strings.Contains(err.Error(), "tls: ") {
			t.Errorf("a stranger's client certificate: %v, want a TLS failure", err)
		}
		// A forbidden target: an address, not a DNS name.
		_, err = client.Probe(t.Context(), "http-01", probes.Target{Name: "127.0.0.1", Challenge: "http-01"})
		var ae *agent.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, "is not a DNS name") {
			t.Errorf("an address as the target: %v, want 403 not a DNS name", err)
		}
	})

	t.Run("diagnose asks the agent too", func(t *testing.T) {
		rep, stdout, code := diagnoseJSON(t, "diagnose", "-o", "json", "--log-level", "error",
			"--vantage", fmt.Sprintf("%s=%s,resolver=%s,rir=%s", local.Name, local.Addr, local.Resolver, local.RIR),
			"--agent", fmt.Sprintf("%s=%s,rir=%s", remote.Name, ag.base, remote.RIR),
			"--agent-cert", pki.clientCert, "--agent-key", pki.clientKey, "--agent-ca", pki.agentCA,
			"--roots", strings.Join(u.Roots(), ","), "--trust-anchor", u.TrustAnchorFile(), "--dns-port", strconv.Itoa(u.Port()),
			"--http-port", strconv.Itoa(u.HTTPPort()), "--https-port", strconv.Itoa(u.HTTPSPort()),
			"--resolver", u.Resolver(), "--allow-address", "127.0.0.0/8,::1/128", healthyName)
		if code != 0 || len(rep.Vantages) != 2 || rep.Vantages[1].Name != remote.Name || !rep.Vantages[1].OK {
			t.Errorf("exit %d, vantages %+v, want %s and %s passing\n%s", code, rep.Vantages, local.Name, remote.Name, stdout)
		}
		if rep.Quorum == nil || rep.Quorum.Perspectives != 2 || !rep.Quorum.OK {
			t.Errorf("quorum %+v, want 2 perspectives passing", rep.Quorum)
		}
	})

	t.Run("daemon with the agent as a vantage", func(t *testing.T) {
		port := freePort(t)
		var b strings.Builder
		fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", port)
		fmt.Fprintf(&b, "vantages:\n  - {name: %s, source: %s, resolver: %q, rir: %s, region: %s}\n", local.Name, local.Addr, local.Resolver, local.RIR, local.Region)
		fmt.Fprintf(&b, "agents:\n  - {name: agent-eu, url: %q, rir: RIPE, region: eu-west, client_cert: %s, client_key: %s, ca_file: %s}\n",
			ag.base, pki.leaderCert, pki.leaderKey, pki.agentCA)
		fmt.Fprintf(&b, "dns:\n  roots: [%s]\n  resolvers: [%q]\n  trust_anchor: %s\n  dns_port: %d\n  allow_addresses: [127.0.0.0/8, \"::1/128\"]\n  query_timeout: 1s\n",
			strings.Join(u.Roots(), ", "), u.Resolver(), u.TrustAnchorFile(), u.Port())
		fmt.Fprintf(&b, "http: {http_port: %d, https_port: %d}\n", u.HTTPPort(), u.HTTPSPort())
		b.WriteString("schedule:\n  intervals: {dns: 5s, http-01: 5s, tls-alpn-01: 5s}\n  jitter: 0\n  timeout: 20s\n  max_backoff: 5s\n")
		fmt.Fprintf(&b, "targets:\n  - name: %s\n  - name: %s\n", healthyName, nxName)
		d := startDaemon(t, b.String())
		waitFor(t, d, "/readyz", 90*time.Second, func() bool { return d.status("/readyz") == http.StatusOK })

		cases := []struct {
			desc       string
			name       string
			wantPass   bool // both vantages pass
			wantQuorum bool
			wantCode   reports.Code
		}{
			{desc: "healthy name", name: healthyName, wantPass: true, wantQuorum: true},
			{desc: "NXDOMAIN", name: nxName, wantCode: reports.CodeDNSNXDomain},
		}
		for _, tc := range cases {
			t.Run(tc.desc, func(t *testing.T) {
				code, body := d.get(t, "/api/v1/report?name="+url.QueryEscape(tc.name))
				if code != http.StatusOK {
					t.Fatalf("status %d: %s", code, body)
				}
				var rep reports.Report
				if err := json.Unmarshal(body, &rep); err != nil {
					t.Fatalf("not the report JSON: %v\n%s", err, body)
				}
				want := []reports.VantageResult{{Vantage: reports.Vantage{Name: "us-east", Kind: reports.External, Region: "us-east", RIR: "ARIN"}, OK: tc.wantPass},
					{Vantage: reports.Vantage{Name: "agent-eu", Kind: reports.External, Region: "eu-west", RIR: "RIPE"}, OK: tc.wantPass}}
				if !slices.Equal(rep.Vantages, want) {
					t.Errorf("vantages %+v, want %+v\ndaemon log:\n%s", rep.Vantages, want, d.logs())
				}
				if q := rep.Quorum; q == nil || q.Perspectives != 2 || q.OK != tc.wantQuorum {
					t.Errorf("quorum %+v, want 2 perspectives, ok %v", q, tc.wantQuorum)
				} else if tc.wantQuorum && !slices.Equal(q.PassedRIRs, []string{"ARIN", "RIPE"}) {
					t.Errorf("passed RIRs %v, want ARIN and RIPE: the agent's RIR counts", q.PassedRIRs)
				}
				if !slices.ContainsFunc(rep.Checks, func(c reports.Check) bool { return c.Vantage == "agent-eu" && c.Target == tc.name }) {
					t.Errorf("no check from agent-eu for %s among %d", tc.name, len(rep.Checks))
				}
				if tc.wantCode != "" && !slices.ContainsFunc(rep.Findings, func(f reports.Finding) bool { return f.Code == tc.wantCode }) {
					t.Errorf("no %s finding:\n%s", tc.wantCode, body)
				}
			})
		}
		mf := d.metrics(t)
		if n, ok := metricValue(mf, "acmediag_probe_runs_total", map[string]string{"kind": "dns", "vantage": "agent-eu"}); !ok || n < 1 {
			t.Errorf("acmediag_probe_runs_total{kind=dns,vantage=agent-eu} = %v (present %v), want ≥ 1", n, ok)
		}
		// The daemon has its own client certificate: its probes ran on the agent.
		if !strings.Contains(ag.logs(), `"client":"CN=leader"`) {
			t.Errorf("the agent's log shows no probe for the daemon's certificate:\n%s", ag.logs())
		}
	})
}
