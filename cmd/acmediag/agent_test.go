package main

import (
	"errors"
	agentpkg "github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/testenv/pki"
	"path/filepath"
	"strings"
	"testing"
)

// agentPKI is an agent CA (its server certificate), a daemon CA (the
// client certificate the agent accepts) and a stranger CA with a client
// certificate of its own, as PEM files in dir.
type agentPKI struct {
	dir                                 string
	agentCA, agentCert, agentKey        string
	daemonCA, clientCert, clientKey     string
	leaderCert, leaderKey               string // a second client of the daemon CA, for the daemon process
	strangerCA, strangerCert, strangerK string
}

func newAgentPKI(t *testing.T) *agentPKI {
	t.Helper()
	p := &agentPKI{dir: t.TempDir()}
	newCA := func(name string) *pki.CA {
		ca, err := pki.NewCA(p.dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	agentCA, daemonCA, strangerCA := newCA("agent-ca"), newCA("daemon-ca"), newCA("stranger-ca")
	p.agentCA, p.daemonCA, p.strangerCA = agentCA.CertFile, daemonCA.CertFile, strangerCA.CertFile
	for _, step := range []func() error{
		func() (err error) { p.agentCert, p.agentKey, err = agentCA.Server("agent"); return err },
		func() (err error) { p.clientCert, p.clientKey, err = daemonCA.Client("daemon"); return err },
		func() (err error) { p.leaderCert, p.leaderKey, err = daemonCA.Client("leader"); return err },
		func() (err error) { p.strangerCert, p.strangerK, err = strangerCA.Client("stranger"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestAgentUsageErrors(t *testing.T) {
	t.Parallel()
	p := newAgentPKI(t)
	good := []string{"agent", "--listen", "127.0.0.1:0", "--cert", p.agentCert, "--key", p.agentKey, "--client-ca", p.daemonCA,
		"--resolver", "127.0.0.1", "--name", "eu-west"}
	with := func(extra ...string) []string { return append(append([]string{}, good...), extra...) }
	cases := []struct {
		desc string
		args []string
		want string // in stderr
	}{
		{desc: "no certificate", args: []string{"agent", "--key", p.agentKey, "--client-ca", p.daemonCA}, want: "agent needs --cert FILE"},
		{desc: "no client CA", args: []string{"agent", "--cert", p.agentCert, "--key", p.agentKey}, want: "agent needs --client-ca FILE"},
		{desc: "missing certificate file", args: with("--cert", filepath.Join(p.dir, "nope.pem")),
			want: "agent certificate: open " + filepath.Join(p.dir, "nope.pem") + ": no such file or directory"},
		{desc: "a key as the client CA", args: with("--client-ca", p.agentKey), want: "client CA: " + p.agentKey + ": no PEM certificate found"},
		{desc: "bad rate", args: with("--rate", "fast"), want: `--rate "fast": want a positive rate such as 5/s or 30/m`},
		{desc: "bad rate unit", args: with("--rate", "5/h"), want: `--rate "5/h": the unit is /s or /m`},
		{desc: "bad RIR", args: with("--rir", "NORAD"), want: `--rir: "NORAD" is not one of ARIN, RIPE, APNIC, LACNIC, AFRINIC`},
		{desc: "bad kind", args: with("--kind", "satellite"), want: `--kind: "satellite" is not external or cluster`},
		{desc: "bad source", args: with("--vantage-source", "eth0"), want: `--vantage-source: "eth0" is not an IP address`},
		{desc: "bad name", args: with("--name", "eu west"), want: `--name: "eu west": want letters, digits`},
		{desc: "bad dns port", args: with("--dns-port", "0"), want: "--dns-port: 0: want 1-65535"},
		{desc: "zero burst", args: with("--burst", "0"), want: "--burst and --max-in-flight must be at least 1"},
		{desc: "arguments", args: with("www.example.com"), want: `agent takes no arguments (got "www.example.com")`},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc string
		in   string
		want float64
		bad  bool
	}{
		{desc: "per second", in: "5/s", want: 5},
		{desc: "bare number", in: "2.5", want: 2.5},
		{desc: "per minute", in: "30/m", want: 0.5},
		{desc: "zero", in: "0/s", bad: true},
		{desc: "negative", in: "-1", bad: true},
		{desc: "infinite", in: "Inf", bad: true},
		{desc: "NaN", in: "NaN/s", bad: true},
		{desc: "per hour", in: "5/h", bad: true},
	}
	for _, tc := range cases {
		got, err := parseRate(tc.in)
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("%s: parseRate(%q) = %v, %v; want %v (error %v)", tc.desc, tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// The agents section: agents become vantages after the local ones, each
// with a client; every problem names its key and line.
func TestConfigAgents(t *testing.T) {
	t.Parallel()
	p := newAgentPKI(t)
	const base = "dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com}]\nvantages: [{name: us-east, rir: ARIN}]\nagents:\n"
	agent := func(name, url string) string {
		return "  - name: " + name + "\n    url: " + url + "\n    rir: RIPE\n    region: eu-west\n" +
			"    client_cert: " + p.clientCert + "\n    client_key: " + p.clientKey + "\n    ca_file: " + p.agentCA + "\n"
	}
	t.Run("valid", func(t *testing.T) {
		plan, err := buildConfig(filepath.Join(p.dir, "config.yaml"), []byte(base+agent("eu-west", "https://127.0.0.1:9465")+
			"  - {name: ap-south, url: 'https://[::1]:9466', rir: APNIC, kind: cluster, client_cert: daemon.pem, client_key: daemon-key.pem, ca_file: agent-ca.pem}\n"))
		if err != nil {
			t.Fatal(err)
		}
		var names, urls []string
		for _, v := range plan.Vantages {
			names = append(names, v.Name+"/"+v.RIR+"/"+string(v.Kind))
			if c, ok := v.Remote.(*agentpkg.Client); ok {
				urls = append(urls, v.Name+"="+c.URL())
			}
		}
		if got := strings.Join(names, " "); got != "us-east/ARIN/external eu-west/RIPE/external ap-south/APNIC/cluster" {
			t.Errorf("vantages %s", got)
		}
		if got := strings.Join(urls, " "); got != "eu-west=https://127.0.0.1:9465 ap-south=https://[::1]:9466" {
			t.Errorf("agents %s: want a client for each agent and none for the local vantage", got)
		}
	})
	cases := []struct {
		desc string
		yaml string
		want string
	}{
		{desc: "name taken by a local vantage", yaml: base + agent("us-east", "https://127.0.0.1:9465"),
			want: `config.yaml:6: agents[0].name: "us-east" is already the name of vantages[0]`},
		{desc: "plain http", yaml: base + agent("eu-west", "http://127.0.0.1:9465"),
			want: `config.yaml:7: agents[0].url: "http://127.0.0.1:9465" is not https://HOST:PORT`},
		{desc: "bad RIR", yaml: strings.Replace(base+agent("eu-west", "https://127.0.0.1:9465"), "RIPE", "EU", 1),
			want: `config.yaml:8: agents[0].rir: "EU" is not one of ARIN, RIPE, APNIC, LACNIC, AFRINIC`},
		{desc: "no certificates", yaml: base + "  - {name: eu-west, url: 'https://127.0.0.1:9465'}\n",
			want: "config.yaml:6: agents[0].client_cert: missing: an agent is reached over mutual TLS at an https URL, with a client certificate and key, trusting only ca_file\n" +
				"config.yaml:6: agents[0].client_key: missing: an agent is reached over mutual TLS at an https URL, with a client certificate and key, trusting only ca_file\n" +
				"config.yaml:6: agents[0].ca_file: missing: an agent is reached over mutual TLS at an https URL, with a client certificate and key, trusting only ca_file"},
		{desc: "CA file that is no certificate", yaml: strings.Replace(base+agent("eu-west", "https://127.0.0.1:9465"), "ca_file: "+p.agentCA, "ca_file: "+p.clientKey, 1),
			want: "config.yaml:12: agents[0].ca_file: agent CA: " + p.clientKey + ": no PEM certificate found"},
		{desc: "missing client key", yaml: strings.Replace(base+agent("eu-west", "https://127.0.0.1:9465"), "client_key: "+p.clientKey, "client_key: /nonexistent/key.pem", 1),
			want: "config.yaml:10: agents[0].client_cert: open /nonexistent/key.pem: no such file or directory"},
		{desc: "unknown key", yaml: base + agent("eu-west", "https://127.0.0.1:9465") + "    port: 8443\n",
			want: "config.yaml:13: agents[0].port: unknown key (known keys: name, url, region, rir, kind, client_cert, client_key, ca_file)"},
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
