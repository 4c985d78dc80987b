package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes"
	agentpkg "github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/reports"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	p, err := buildConfig("config.yaml", []byte(`
dns:
  resolvers: [127.0.0.1:5353]
targets:
  - name: WWW.Example.com
  - name: "*.example.com"
`))
	if err != nil {
		t.Fatal(err)
	}
	s, c := p.Settings, p.Env.Checker
	probesLane := p.LaneSchedule(probes.LaneProbes)
	checks := []struct {
		desc      string
		got, want any
	}{
		{"listen", s.Listen, probes.DefaultListen},
		{"one vantage local", len(p.Vantages) == 1 && p.Vantages[0].Name == "local" && p.Vantages[0].Kind == reports.External, true},
		{"name folded to lower case", p.Targets[0].Name, "www.example.com"},
		{"http-01 by default", p.Targets[0].Challenge, reports.HTTP01},
		{"dns-01 for a wildcard", p.Targets[1].Challenge, reports.DNS01},
		{"dns port", c.Port, uint16(53)},
		{"resolver", c.Resolvers[0], netip.MustParseAddrPort("127.0.0.1:5353")},
		{"IANA roots", len(c.Roots), 26},
		{"root trust anchors", len(c.TrustAnchors) > 0, true},
		{"ca identity", strings.Join(c.CAIdentities, ","), "letsencrypt.org"},
		{"http ports", [2]int{p.Env.Validator.HTTPPort, p.Env.Validator.HTTPSPort}, [2]int{80, 443}},
		{"dns interval", probesLane.Interval[probes.KindDNS], time.Minute},
		{"tls-alpn-01 interval", probesLane.Interval[probes.KindTLSALPN01], time.Minute},
		{"jitter", s.Schedule.Jitter, 0.1},
		{"concurrency", probesLane.Concurrency, 32},
		{"timeout", probesLane.Timeout, 30 * time.Second},
		{"max backoff", probesLane.MaxBackoff, 10 * time.Minute},
		{"store", p.Store, probes.StoreLimits{PerKey: 32, MaxBytes: 8 << 20}},
		{"propagation", p.Propagation, probes.PropagationPlan{Timeout: 10 * time.Minute, IssuerWait: time.Minute, Concurrency: 8}},
		{"memory limit", int64(s.MemoryLimit), wantMemoryLimit()},
		{"api", s.API, probes.APISettings{MaxConcurrent: 16, MaxObservations: 1000,
			Reprobe: probes.ReprobeSettings{Enabled: true, Rate: 1, Burst: 10}}},
		{"no re-probe token", p.ReprobeToken, ""},
		{"no canary", p.Canary == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.desc, c.got, c.want)
		}
	}
}

// wantMemoryLimit is memory_limit's default: 192MiB, unless GOMEMLIMIT
// (the operator's) is set.
func wantMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	return 192 << 20
}

// A full configuration: every key, relative paths anchored at the file.
func TestConfigFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	anchor := ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
	if err := os.WriteFile(filepath.Join(dir, "root.ds"), []byte(anchor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pebble.pem"), testCAPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reprobe.token"), []byte("0123456789abcdef-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	data := `
listen: 127.0.0.1:0
vantages:
  - {name: us, source: 127.10.0.1, resolver: "127.53.255.10:10653", rir: arin, region: us-east}
  - {name: k8s, source: 127.10.0.9, kind: cluster}
dns:
  roots: [127.53.0.1]
  resolvers: [127.53.255.1:10653]
  trust_anchor: root.ds
  dns_port: 10653
  allow_addresses: [127.0.0.0/8, "::1"]
  query_timeout: 500ms
  resolver_timeout: 3s
  ca_identities: [letsencrypt.org, example-ca.test]
  account_uri: https://acme.example/acct/1
http: {http_port: 10680, https_port: 11043}
targets:
  - {name: a.example.com, challenge: http-01, token: tok, key_auth: tok.thumb}
  - {name: b.example.com, challenge: dns-01, expect_txt: value}
  - {name: c.example.com, challenge: tls-alpn-01, tls: false}
schedule:
  intervals: {dns: 5s, http-01: 7s, tls: 10m}
  jitter: 0
  concurrency: 4
  timeout: 10s
  max_backoff: 1m
store: {per_key: 8, max_bytes: 2MiB}
api:
  max_concurrent: 3
  max_observations: 50
  reprobe: {enabled: true, token_file: reprobe.token, rate: 0.5, burst: 3}
propagation: {timeout: 2m, issuer_wait: 0s, concurrency: 2}
memory_limit: 96MiB
tls:
  enabled: true
  roots: pebble.pem
  ari_directory: https://127.0.0.1:14000/dir
  ari_ca_cert: pebble.pem
  renewal_horizon: 72h
canary:
  directory: https://127.0.0.1:14000/dir
  ca_cert: pebble.pem
  account_key: acct.key
  interval: 2m
`
	p, err := buildConfig(path, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	us := p.Vantages[0]
	if us.RIR != "ARIN" || us.SourceAddr != netip.MustParseAddr("127.10.0.1") || us.Resolvers[0].Port() != 10653 || us.Kind != reports.External {
		t.Errorf("vantage us: %+v", us)
	}
	if p.Vantages[1].External() {
		t.Error("vantage k8s counts as external")
	}
	c := p.Env.Checker
	if c.Port != 10653 || len(c.Allow) != 2 || c.Allow[1] != netip.MustParsePrefix("::1/128") ||
		c.QueryTimeout != 500*time.Millisecond || len(c.TrustAnchors) != 1 {
		t.Errorf("checker: %+v", c)
	}
	sch := p.LaneSchedule(probes.LaneProbes)
	if sch.Jitter >= 0 || sch.Interval[probes.KindDNS] != 5*time.Second || sch.Interval[probes.KindTLSALPN01] != time.Minute {
		t.Errorf("schedule: %+v", sch)
	}
	if want := (probes.PropagationPlan{Timeout: 2 * time.Minute, Concurrency: 2}); p.Propagation != want || p.Settings.MemoryLimit != 96<<20 {
		t.Errorf("propagation %+v, memory limit %d", p.Propagation, p.Settings.MemoryLimit)
	}
	if r := p.Settings.API.Reprobe; r.Rate != 0.5 || r.Burst != 3 || r.TokenFile != filepath.Join(dir, "reprobe.token") ||
		p.ReprobeToken != "0123456789abcdef-token" {
		t.Errorf("api.reprobe %+v, token %q", r, p.ReprobeToken)
	}
	if p.Store.MaxBytes != 2<<20 || p.Settings.API.MaxObservations != 50 {
		t.Errorf("store %+v api %+v", p.Store, p.Settings.API)
	}
	tp := p.TLS
	if tp == nil || tp.Roots == nil || tp.ARI == nil || tp.ARI.CACertFile != filepath.Join(dir, "pebble.pem") || tp.Horizon != 72*time.Hour ||
		!tp.On(p.Targets[0]) || tp.On(p.Targets[2]) || sch.Interval[probes.KindTLS] != 10*time.Minute {
		t.Errorf("tls: %+v, interval %s", tp, sch.Interval[probes.KindTLS])
	}
	cn := p.Canary
	if cn == nil || cn.Config.CACertFile != filepath.Join(dir, "pebble.pem") || cn.Config.AccountKeyFile != filepath.Join(dir, "acct.key") ||
		cn.Interval != 2*time.Minute || len(cn.Names) != 1 || !cn.Names["a.example.com"] {
		t.Errorf("canary: %+v", cn)
	}
}

// Every bad configuration gets exactly these messages: file, line, key, and
// what is wrong.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	const base = "dns:\n  resolvers: [127.0.0.1]\n"
	cases := []struct {
		desc string
		yaml string
		want string
	}{
		{desc: "empty file", yaml: "", want: "config.yaml: the file is empty: want at least a list of targets"},
		{desc: "only a comment", yaml: "# nothing\n", want: "config.yaml: the file is empty: want at least a list of targets"},
		{desc: "no targets", yaml: base, want: "config.yaml: targets: at least one target is required"},
		{desc: "YAML syntax", yaml: "listen: :80\ntargets:\n\t- name: a.com\n",
			want: "config.yaml:3: found character that cannot start any token"},
		{desc: "a second document", yaml: base + "targets: [{name: a.com}]\n---\nlisten: x\n",
			want: "config.yaml:4: only one YAML document is allowed (found a second one)"},
		{desc: "unknown top-level key", yaml: base + "targets: [{name: a.com}]\nlistne: :80\n",
			want: `config.yaml:4: listne: unknown key (did you mean "listen"?)`},
		{desc: "unknown key far from any", yaml: base + "targets: [{name: a.com}]\nfrobnicate: 1\n",
			want: "config.yaml:4: frobnicate: unknown key (known keys: listen, vantages, agents, dns, http, targets, schedule, store, api, canary, propagation, tls, kube, cluster, memory_limit)"},
		{desc: "unknown nested key", yaml: base + "targets:\n  - name: a.com\n    chalenge: dns-01\n",
			want: `config.yaml:5: targets[0].chalenge: unknown key (did you mean "challenge"?)`},
		{desc: "bad challenge", yaml: base + "targets:\n  - name: a.com\n  - name: b.com\n  - name: c.com\n  - name: d.com\n    challenge: http-02\n",
			want: `config.yaml:8: targets[3].challenge: "http-02" is not http-01, dns-01 or tls-alpn-01`},
		{desc: "duplicate key", yaml: base + "targets: [{name: a.com}]\nhttp:\n  http_port: 80\n  http_port: 81\n",
			want: "config.yaml:6: http.http_port: duplicate key (first set on line 5)"},
		{desc: "not an integer", yaml: base + "targets: [{name: a.com}]\nhttp: {http_port: eighty}\n",
			want: `config.yaml:4: http.http_port: "eighty" is not an integer`},
		{desc: "port out of range", yaml: base + "targets: [{name: a.com}]\nhttp: {https_port: 70000}\n",
			want: "config.yaml:4: http.https_port: 70000: want 1-65535"},
		{desc: "explicit zero is judged, not defaulted", yaml: "dns:\n  resolvers: [127.0.0.1]\n  dns_port: 0\ntargets: [{name: a.com}]\n",
			want: "config.yaml:3: dns.dns_port: 0: want 1-65535"},
		{desc: "not a duration", yaml: base + "targets: [{name: a.com}]\nschedule:\n  timeout: 30\n",
			want: `config.yaml:5: schedule.timeout: "30" is not a duration such as 30s or 5m`},
		{desc: "not a size", yaml: base + "targets: [{name: a.com}]\nstore: {max_bytes: lots}\n",
			want: `config.yaml:4: store.max_bytes: "lots" is not a size such as 67108864, 512KiB or 64MiB`},
		{desc: "a mapping where a list belongs", yaml: base + "targets:\n  name: a.com\n",
			want: "config.yaml:4: targets: want a list, got a mapping"},
		{desc: "a scalar where a mapping belongs", yaml: base + "targets: [{name: a.com}]\nschedule: fast\n",
			want: `config.yaml:4: schedule: want a mapping, got "fast"`},
		{desc: "cluster timing", yaml: base + "targets: [{name: a.com}]\ncluster:\n  enabled: true\n  namespace: acmediag\n  lease_duration: 5s\n",
			want: "config.yaml:7: cluster.lease_duration: 5s: want more than cluster.renew_deadline (10s), at most 24h"},
		{desc: "cluster namespace", yaml: base + "targets: [{name: a.com}]\ncluster:\n  enabled: true\n  namespace: Not_A_Label\n",
			want: `config.yaml:6: cluster.namespace: "Not_A_Label" is not a namespace name (a DNS label)`},
		{desc: "missing name", yaml: base + "targets:\n  - challenge: dns-01\n",
			want: "config.yaml:4: targets[0].name: missing: every target needs a name"},
		{desc: "invalid name", yaml: base + "targets:\n  - name: exa mple.com\n",
			want: `config.yaml:4: targets[0].name: "exa mple.com": Domain name contains an invalid character`},
		{desc: "duplicate target", yaml: base + "targets:\n  - name: a.com\n  - name: A.com\n",
			want: `config.yaml:5: targets[1].name: "A.com" is already the name of targets[0]`},
		{desc: "wildcard with http-01", yaml: base + "targets:\n  - name: '*.a.com'\n    challenge: http-01\n",
			want: "config.yaml:5: targets[0].challenge: http-01: a wildcard can only be validated with dns-01"},
		{desc: "token without key_auth", yaml: base + "targets:\n  - name: a.com\n    token: t\n",
			want: "config.yaml:4: targets[0]: token and key_auth go together"},
		{desc: "expect_txt on http-01", yaml: base + "targets:\n  - name: a.com\n    expect_txt: v\n",
			want: "config.yaml:5: targets[0].expect_txt: only a dns-01 target has a TXT value (this one is http-01)"},
		{desc: "vantage problems, all at once", yaml: base + "targets: [{name: a.com}]\nvantages:\n  - name: us\n    source: 10.0.0.300\n    rir: NORAD\n  - name: us\n    kind: satellite\n",
			want: "config.yaml:6: vantages[0].source: \"10.0.0.300\" is not an IP address\n" +
				"config.yaml:7: vantages[0].rir: \"NORAD\" is not one of ARIN, RIPE, APNIC, LACNIC, AFRINIC\n" +
				"config.yaml:8: vantages[1].name: \"us\" is already the name of vantages[0]\n" +
				"config.yaml:9: vantages[1].kind: \"satellite\" is not external or cluster"},
		{desc: "unknown probe kind in intervals", yaml: base + "targets: [{name: a.com}]\nschedule:\n  intervals: {htp-01: 10s}\n",
			want: "config.yaml:5: schedule.intervals.htp-01: unknown probe kind (want dns, http-01, tls-alpn-01, tls)"},
		{desc: "interval too short", yaml: base + "targets: [{name: a.com}]\nschedule:\n  intervals: {dns: 10ms}\n",
			want: "config.yaml:5: schedule.intervals.dns: 10ms: want at least 1s"},
		{desc: "jitter out of range", yaml: base + "targets: [{name: a.com}]\nschedule: {jitter: 1.5}\n",
			want: "config.yaml:4: schedule.jitter: 1.5: want a fraction of the interval, 0 or more and below 1"},
		{desc: "bad allow address and root", yaml: "dns:\n  resolvers: [127.0.0.1]\n  roots: [a.root]\n  allow_addresses: [loopback]\ntargets: [{name: a.com}]\n",
			want: "config.yaml:3: dns.roots[0]: \"a.root\" is not an IP address\n" +
				"config.yaml:4: dns.allow_addresses[0]: \"loopback\" is not a CIDR prefix such as 127.0.0.0/8"},
		{desc: "tls roots that hold no certificate", yaml: base + "targets: [{name: a.com}]\ntls: {enabled: true, roots: /etc/passwd}\n",
			want: "config.yaml:4: tls.roots: /etc/passwd holds no PEM certificate"},
		{desc: "an ARI directory that is not https", yaml: base + "targets: [{name: a.com}]\ntls:\n  ari_directory: http://ca.example/dir\n",
			want: "config.yaml:5: tls.ari_directory: \"http://ca.example/dir\" is not an https URL of an ACME directory"},
		{desc: "missing trust anchor file", yaml: "dns:\n  resolvers: [127.0.0.1]\n  trust_anchor: /nonexistent/root.ds\ntargets: [{name: a.com}]\n",
			want: "config.yaml:3: dns.trust_anchor: open /nonexistent/root.ds: no such file or directory"},
		{desc: "a size too large for any machine", yaml: base + "targets: [{name: a.com}]\nstore: {max_bytes: 9999999999999999}\n",
			want: "config.yaml:4: store.max_bytes: 9999999999999999 bytes is too large: want at most 64GiB"},
		{desc: "a size past int64", yaml: base + "targets: [{name: a.com}]\nstore: {max_bytes: 99999999999999999999}\n",
			want: `config.yaml:4: store.max_bytes: "99999999999999999999" is too large: at most 8EiB`},
		{desc: "a vantage source that is not this machine's", yaml: base + "targets: [{name: a.com}]\nvantages:\n  - name: x\n    source: 192.0.2.7\n",
			want: "config.yaml:6: vantages[0].source: 192.0.2.7 is not an address of this machine: packets cannot leave from it"},
		{desc: "re-probe budget out of range", yaml: base + "targets: [{name: a.com}]\napi:\n  reprobe: {rate: 0, burst: 0}\n",
			want: "config.yaml:5: api.reprobe.rate: 0: want more than 0 and at most 1000 re-probes a second\n" +
				"config.yaml:5: api.reprobe.burst: 0: want 1-10000"},
		{desc: "re-probe token file missing", yaml: base + "targets: [{name: a.com}]\napi:\n  reprobe:\n    token_file: /nonexistent/token\n",
			want: "config.yaml:6: api.reprobe.token_file: open /nonexistent/token: no such file or directory"},
		{desc: "kube: a resync too short, a bad namespace and selector", yaml: base + "kube:\n  enabled: true\n  resync: 5s\n  namespaces: [Shop]\n  selector: 'a in (b'\n",
			want: "config.yaml:5: kube.resync: 5s: want 1m0s to 24h0m0s\n" +
				"config.yaml:6: kube.namespaces[0]: \"Shop\" is not a namespace name\n" +
				"config.yaml:7: kube.selector: \"a in (b\" is not a label selector: unable to parse requirement: found '', expected: ',' or ')'"},
		{desc: "listen not host:port", yaml: base + "targets: [{name: a.com}]\nlisten: 9464\n",
			want: `config.yaml:4: listen: "9464" is not HOST:PORT (such as :9464 or 127.0.0.1:9464)`},
		{desc: "production canary refused", yaml: base + "targets: [{name: a.com}]\ncanary:\n  directory: https://acme-v02.api.letsencrypt.org/directory\n",
			want: "config.yaml:5: canary.directory: https://acme-v02.api.letsencrypt.org/directory is Let's Encrypt production: use https://acme-staging-v02.api.letsencrypt.org/directory, or set canary.allow_production: true"},
		{desc: "canary without directory", yaml: base + "targets: [{name: a.com}]\ncanary:\n  interval: 1h\n",
			want: "config.yaml:4: canary.directory: missing: the canary needs an ACME directory URL (a staging one)"},
		{desc: "canary name that is no target", yaml: base + "targets: [{name: a.com}]\ncanary:\n  directory: https://x.test/dir\n  names: [b.com]\n",
			want: `config.yaml:6: canary.names[0]: "b.com" is not one of the targets`},
		{desc: "dns-01 canary name without a DNS provider", yaml: base + "targets: [{name: a.com, challenge: dns-01}]\ncanary:\n  directory: https://x.test/dir\n  names: [a.com]\n",
			want: `config.yaml:6: canary.names[0]: "a.com" is a dns-01 target: set canary.dns_provider to the lego DNS provider that publishes its TXT records (one of cloudflare, digitalocean, dnsupdate, exec, gcloud, rfc2136, route53)`},
		{desc: "tls-alpn-01 canary name", yaml: base + "targets: [{name: a.com, challenge: tls-alpn-01}]\ncanary:\n  directory: https://x.test/dir\n  names: [a.com]\n",
			want: `config.yaml:6: canary.names[0]: "a.com" is a tls-alpn-01 target; canary orders are placed for http-01 targets, and dns-01 targets with canary.dns_provider`},
		{desc: "unknown DNS provider", yaml: base + "targets: [{name: a.com}]\ncanary:\n  directory: https://x.test/dir\n  dns_provider: bind9\n",
			want: `config.yaml:6: canary.dns_provider: unknown DNS provider "bind9" (supported: cloudflare, digitalocean, dnsupdate, exec, gcloud, rfc2136, route53)`},
		{desc: "DNS provider without its credentials", yaml: base + "targets: [{name: a.com}]\ncanary:\n  directory: https://x.test/dir\n  dns_provider: dnsupdate\n",
			want: `config.yaml:6: canary.dns_provider: DNS provider dnsupdate: dnsupdate: some credentials information are missing: DNSUPDATE_NAMESERVER`},
		{desc: "memory limit too small", yaml: base + "targets: [{name: a.com}]\nmemory_limit: 1MiB\n",
			want: "config.yaml:4: memory_limit: 1048576 bytes: want 0 (the Go runtime's own) or at least 32MiB"},
		{desc: "propagation out of range", yaml: base + "targets: [{name: a.com}]\npropagation:\n  timeout: 10ms\n  issuer_wait: -1s\n  concurrency: 0\n",
			want: "config.yaml:5: propagation.timeout: 10ms: want 1s to 24h\n" +
				"config.yaml:6: propagation.issuer_wait: -1s: want 0 (no propagation_slow finding) or a positive duration\n" +
				"config.yaml:7: propagation.concurrency: 0: want 1-1000 watches at once"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := buildConfig("config.yaml", []byte(tc.yaml))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *configError", err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("message:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

// Hostile files end in an error, never a hang, a panic or unbounded work.
func TestConfigHostile(t *testing.T) {
	t.Parallel()
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := range 8 {
		name := string(rune('b' + i))
		laughs += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	cases := []struct {
		desc string
		data string
		want string
	}{
		{desc: "billion laughs", data: laughs + "targets: *" + prev + "\n", want: "config.yaml:"},
		{desc: "too big", data: strings.Repeat("#", maxConfigBytes+1), want: "config.yaml: the file is larger than 16 MiB"},
		{desc: "too many vantages", data: "vantages:\n" + strings.Repeat("  - {name: v}\n", probes.MaxVantages+1) + "targets: [{name: a.com}]\n",
			want: "vantages: 65 vantages; at most 64 are allowed"},
		{desc: "binary junk", data: "\x00\x01\x02\xff\xfe", want: "config.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			go func() { _, err := buildConfig("config.yaml", []byte(tc.data)); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want one containing %q", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("parseConfig did not return")
			}
		})
	}
}

// buildConfig reads a configuration file and builds its plan, as the
// daemon and --config.check do: every error names the file's lines.
func buildConfig(path string, data []byte) (*probes.Plan, error) {
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, err
	}
	p, err := probes.Build(cfg.settings, probes.BuildOptions{Remote: agentpkg.Dial})
	if err != nil {
		return nil, cfg.explain(err)
	}
	return p, nil
}

// testCAPEM is a self-signed CA certificate in PEM, for settings that
// read a roots file.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// In cluster mode a pod whose file lists no vantages is a vantage named
// after its node (NODE_NAME); --vantage-name and a vantages list win.
func TestClusterVantageFromNode(t *testing.T) {
	t.Setenv("NODE_NAME", "node-7")
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte("dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com}]\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		body, flag, want string
	}{
		{"cluster: {enabled: true, namespace: acmediag}\n", "", "node-7"},
		{"cluster: {enabled: true, namespace: acmediag}\n", "other", "other"},
		{"cluster: {enabled: true, namespace: acmediag}\nvantages: [{name: listed}]\n", "", "listed"},
		{"", "", "local"},
	} {
		c, err := loadConfig(write(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		f := &daemonFlags{vantage: probes.VantageSettings{Name: tc.flag, Kind: "cluster"}}
		if err := f.ownVantage(c); err != nil {
			t.Fatal(err)
		}
		if got := c.settings.Vantages[0].Name; len(c.settings.Vantages) != 1 || got != tc.want {
			t.Errorf("%q with --vantage-name %q: vantages %+v, want %s", tc.body, tc.flag, c.settings.Vantages, tc.want)
		}
	}
}
