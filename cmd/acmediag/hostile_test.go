package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/dnsserver"
)

// The hostile-resolver matrix runs in full in dnscheck; here a few of its
// rows go through the built binary: diagnose, the daemon and the agent,
// each over a testenv.Hostile tree of its own (127.79.x.0/24), so none
// needs the universe.

// startHostile starts a hostile tree whose resolver has faults, and
// writes its trust anchor to a file.
func startHostile(t *testing.T, net24 string, resolverFaults ...dnsserver.Fault) (*testenv.Hostile, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := testenv.StartHostile(ctx, net24, map[string][]dnsserver.Fault{testenv.HostileResolver: resolverFaults}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	anchor := filepath.Join(t.TempDir(), "root.ds")
	if err := os.WriteFile(anchor, []byte(h.TrustAnchor().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h, anchor
}

// hostileDNSFlags are the DNS flags of diagnose and the agent for h.
func hostileDNSFlags(h *testenv.Hostile, anchor string) []string {
	return []string{"--roots", h.Root().String(), "--dns-port", strconv.Itoa(h.Port()), "--trust-anchor", anchor,
		"--resolver", h.Resolver().String(), "--allow-address", "127.0.0.0/8", "--query-timeout", "300ms", "--resolver-timeout", "1s"}
}

// checkCoded fails on a finding without a code and returns the worst
// severity.
func checkCoded(t *testing.T, fs []reports.Finding) reports.Severity {
	t.Helper()
	worst := reports.Info
	for _, f := range fs {
		if f.Code == "" {
			t.Errorf("a finding without a code: %+v", f)
		}
		worst = max(worst, f.Severity)
	}
	return worst
}

func TestHostileResolverDiagnose(t *testing.T) {
	needBinary(t)
	www := testenv.HostileName + "."
	cases := []struct {
		desc     string
		net24    string
		fault    dnsserver.Fault
		args     []string
		wantFail bool // the CA would fail: an error among the DNS findings
	}{
		{desc: "NXDOMAIN for CAA at the TLD (it crashed once): no CAA there, a pass", net24: "127.79.1",
			fault: dnsserver.Fault{Kind: dnsserver.FaultNXDomain, QType: dns.TypeCAA, Name: "com."}},
		{desc: "SERVFAIL for A", net24: "127.79.2", fault: dnsserver.Fault{Kind: dnsserver.FaultServFail, QType: dns.TypeA, Name: www}, wantFail: true},
		{desc: "a reply to another question for CAA", net24: "127.79.3", fault: dnsserver.Fault{Kind: dnsserver.FaultWrongQuestion, QType: dns.TypeCAA, Name: www}, wantFail: true},
		{desc: "dns-01: the TXT question times out", net24: "127.79.4", fault: dnsserver.Fault{Kind: dnsserver.FaultDrop, QType: dns.TypeTXT, Name: "_acme-challenge." + www},
			args: []string{"--challenge", "dns-01", "--expect-txt", testenv.HostileToken}, wantFail: true},
		{desc: "dns-01: an empty reply for the TXT", net24: "127.79.5", fault: dnsserver.Fault{Kind: dnsserver.FaultEmpty, QType: dns.TypeTXT, Name: "_acme-challenge." + www},
			args: []string{"--challenge", "dns-01", "--expect-txt", testenv.HostileToken}, wantFail: true},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			h, anchor := startHostile(t, tc.net24, tc.fault)
			args := append([]string{"diagnose", "-o", "json", "--log-level", "error"}, hostileDNSFlags(h, anchor)...)
			args = append(append(args, tc.args...), testenv.HostileName)
			rep, stdout, code := diagnoseJSON(t, args...)
			checkCoded(t, rep.Findings)
			// Nothing serves HTTP in the tree, so http-01 fails at connect:
			// the DNS findings tell the rows apart. Exit 2 would be a crash.
			var dnsFindings []reports.Finding
			for _, f := range rep.Findings {
				if !strings.HasPrefix(string(f.Code), "http01.") {
					dnsFindings = append(dnsFindings, f)
				}
			}
			if worst := checkCoded(t, dnsFindings); (worst >= reports.Error) != tc.wantFail || (code != 0 && code != 1) {
				t.Errorf("exit %d, worst DNS finding %s; want the CA to fail: %v\n%s", code, worst, tc.wantFail, stdout)
			}
		})
	}
}

// TestHostileResolverDaemon: a daemon whose resolver answers SERVFAIL for
// the target's A and NXDOMAIN for CAA at the TLD reports findings round
// after round and keeps answering its health checks.
func TestHostileResolverDaemon(t *testing.T) {
	needBinary(t)
	www := testenv.HostileName + "."
	h, anchor := startHostile(t, "127.79.10",
		dnsserver.Fault{Kind: dnsserver.FaultServFail, QType: dns.TypeA, Name: www},
		dnsserver.Fault{Kind: dnsserver.FaultNXDomain, QType: dns.TypeCAA, Name: "com."})
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", freePort(t))
	fmt.Fprintf(&b, "dns:\n  roots: [%s]\n  resolvers: [%q]\n  trust_anchor: %s\n  dns_port: %d\n  allow_addresses: [127.0.0.0/8]\n  query_timeout: 300ms\n  resolver_timeout: 1s\n",
		h.Root(), h.Resolver(), anchor, h.Port())
	b.WriteString("schedule:\n  intervals: {dns: 1s, http-01: 1s, tls-alpn-01: 1s}\n  jitter: 0\n  timeout: 20s\n  max_backoff: 1s\n")
	fmt.Fprintf(&b, "targets:\n  - name: %s\n", testenv.HostileName)
	d := startDaemon(t, b.String())
	waitFor(t, d, "/readyz", 60*time.Second, func() bool { return d.status("/readyz") == http.StatusOK })

	report := func() reports.Report {
		code, body := d.get(t, "/api/v1/report?name="+url.QueryEscape(testenv.HostileName))
		var rep reports.Report
		if code != http.StatusOK || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("status %d: %s\ndaemon log:\n%s", code, body, d.logs())
		}
		return rep
	}
	var first reports.Report
	waitFor(t, d, "a report with findings", 60*time.Second, func() bool { first = report(); return len(first.Findings) > 0 })
	if worst := checkCoded(t, first.Findings); worst < reports.Error {
		t.Errorf("worst finding %s, want an error for the SERVFAIL: %+v", worst, first.Findings)
	}
	// Later rounds run too, and the daemon still answers.
	runs := func() float64 {
		n, _ := metricValue(d.metrics(t), "acmediag_probe_runs_total", map[string]string{"kind": "dns"})
		return n
	}
	seen := runs()
	waitFor(t, d, "a later round", 60*time.Second, func() bool { return runs() > seen })
	if st := d.status("/healthz"); st != http.StatusOK {
		t.Errorf("/healthz %d after the rounds, want 200\n%s", st, d.logs())
	}
}

// TestHostileResolverAgent: an agent whose resolver answers SERVFAIL for
// the target's A answers a probe with findings, and the next one too.
func TestHostileResolverAgent(t *testing.T) {
	needBinary(t)
	h, anchor := startHostile(t, "127.79.20",
		dnsserver.Fault{Kind: dnsserver.FaultServFail, QType: dns.TypeA, Name: testenv.HostileName + "."},
		dnsserver.Fault{Kind: dnsserver.FaultFormErr, QType: dns.TypeCAA})
	pki := newAgentPKI(t)
	port := freePort(t)
	ag := startAgentProc(t, port, append([]string{"--cert", pki.agentCert, "--key", pki.agentKey, "--client-ca", pki.daemonCA,
		"--name", "hostile", "--rir", "RIPE", "--region", "eu-west"}, hostileDNSFlags(h, anchor)...)...)
	clientTLS, err := agent.ClientTLS(pki.clientCert, pki.clientKey, pki.agentCA)
	if err != nil {
		t.Fatal(err)
	}
	client, err := agent.NewClient(ag.base, clientTLS, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		res, err := client.Probe(ctx, "dns", probes.Target{Name: testenv.HostileName, Challenge: "http-01"})
		cancel()
		if err != nil {
			t.Fatalf("probe %d: %v\nagent log:\n%s", i, err, ag.logs())
		}
		if worst := checkCoded(t, res.Findings); res.OK || worst < reports.Error {
			t.Errorf("probe %d: ok %v, worst %s, want a failure with an error finding: %+v", i, res.OK, worst, res.Findings)
		}
	}
}
