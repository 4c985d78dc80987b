package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/testenv/pki"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmediag/acmediag/reports"
)

// runCLI runs one command line in-process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "anchor.txt")
	if err := os.WriteFile(garbage, []byte("this is not a zone file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every case is refused before a single packet is sent: no --roots
	// default is ever reached because the usage error comes first.
	cases := []struct {
		desc string
		args []string
		want string // in stderr
	}{
		{desc: "no names", args: []string{"diagnose"}, want: "at least one NAME"},
		{desc: "unknown flag", args: []string{"diagnose", "--frobnicate", "a.com"}, want: "unknown flag"},
		{desc: "bad output", args: []string{"diagnose", "-o", "yaml", "a.com"}, want: `-o "yaml"`},
		{desc: "bad challenge", args: []string{"diagnose", "--challenge", "http-02", "a.com"}, want: `--challenge "http-02"`},
		{desc: "bad root", args: []string{"diagnose", "--roots", "a.root", "a.com"}, want: `--roots: "a.root"`},
		{desc: "bad resolver", args: []string{"diagnose", "--resolver", "1.2.3.4:x", "a.com"}, want: `--resolver: "1.2.3.4:x"`},
		{desc: "empty resolver", args: []string{"diagnose", "--resolver", "", "a.com"}, want: "--resolver: the list is empty"},
		{desc: "empty agent resolver", args: []string{"agent", "--cert", "c", "--key", "k", "--client-ca", "ca", "--resolver", ""}, want: "--resolver: the list is empty"},
		{desc: "bad port", args: []string{"diagnose", "--dns-port", "70000", "a.com"}, want: "--dns-port: 70000"},
		{desc: "bad allow", args: []string{"diagnose", "--allow-address", "10.0.0.0/33", "a.com"}, want: "--allow-address"},
		{desc: "missing trust anchor", args: []string{"diagnose", "--trust-anchor", filepath.Join(dir, "nope.key"), "a.com"}, want: "nope.key"},
		{desc: "garbage trust anchor", args: []string{"diagnose", "--trust-anchor", garbage, "a.com"}, want: "anchor.txt"},
		{desc: "bad log level", args: []string{"diagnose", "--log-level", "loud", "a.com"}, want: "--log-level"},
		{desc: "vantage without address", args: []string{"diagnose", "--vantage", "eu", "a.com"}, want: `--vantage "eu"`},
		{desc: "vantage bad address", args: []string{"diagnose", "--vantage", "eu=here", "a.com"}, want: `"here" is not an IP address`},
		{desc: "vantage bad rir", args: []string{"diagnose", "--vantage", "eu=127.0.0.1,rir=EU", "a.com"}, want: `--vantage rir: "EU"`},
		{desc: "vantage bad kind", args: []string{"diagnose", "--vantage", "eu=127.0.0.1,kind=inside", "a.com"}, want: `--vantage kind: "inside"`},
		{desc: "vantage unknown key", args: []string{"diagnose", "--vantage", "eu=127.0.0.1,color=red", "a.com"}, want: `unknown key "color"`},
		{desc: "vantage twice", args: []string{"diagnose", "--vantage", "eu=127.0.0.1", "--vantage", "eu=127.0.0.2", "a.com"}, want: "used twice"},
		{desc: "negative timeout", args: []string{"diagnose", "--timeout", "-1s", "a.com"}, want: "must be positive"},
		{desc: "a TXT value for http-01", args: []string{"diagnose", "--challenge", "http-01", "--expect-txt", "v", "a.com"},
			want: "--expect-txt is the dns-01 TXT value; a.com is validated with http-01"},
		{desc: "a token for dns-01", args: []string{"diagnose", "--challenge", "dns-01", "--token", "t", "--key-auth", "t.k", "a.com"},
			want: "--token is the http-01 token; a.com is validated with dns-01"},
		{desc: "an account URI that is no URL", args: []string{"diagnose", "--account-uri", "not a uri", "a.com"},
			want: `--account-uri: "not a uri" is not an ACME account URL`},
		{desc: "a vantage source that is not this machine's", args: []string{"diagnose", "--vantage", "eu=192.0.2.7", "a.com"},
			want: "192.0.2.7 is not an address of this machine"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runCLI(t, append(tc.args, "--resolver-timeout", "1s")...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
		})
	}
}

// Names the CA's policy refuses are findings (exit 1), decided before any
// DNS traffic: the roots given here do not exist and are never asked.
func TestInvalidNamesAreFindings(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + ".com"
	cases := []struct {
		desc, name, reason string
	}{
		{desc: "underscore", name: "bad_name.com", reason: "invalid character"},
		{desc: "300 bytes", name: long, reason: "253"},
		{desc: "unicode", name: "bücher.de", reason: "invalid character"},
		{desc: "IP literal", name: "192.0.2.1", reason: "IP address"},
		{desc: "no public suffix", name: "printer.local", reason: "public suffix"},
		{desc: "trailing dot", name: "example.com.", reason: "ends in a dot"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCLI(t, "diagnose", "-o", "json", "--roots", "127.0.0.254", "--resolver", "127.0.0.254", tc.name)
			if code != exitFindings {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitFindings, stderr)
			}
			var rep reports.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			if len(rep.Findings) == 0 || rep.Findings[0].Code != reports.CodeNameInvalid {
				t.Fatalf("findings %+v, want %s", rep.Findings, reports.CodeNameInvalid)
			}
			if !strings.Contains(rep.Findings[0].Detail+rep.Findings[0].Problem.Detail, tc.reason) {
				t.Errorf("detail %q / problem %q lacks %q", rep.Findings[0].Detail, rep.Findings[0].Problem.Detail, tc.reason)
			}
			if rep.Verdict != reports.VerdictFail {
				t.Errorf("verdict %s, want fail", rep.Verdict)
			}
		})
	}
}

func TestHelpTeaches(t *testing.T) {
	t.Parallel()
	stdout, _, code := runCLI(t, "diagnose", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--expect-txt", "--trust-anchor", "Exit status", "Example", "--allow-address", "--vantage", "--acme-directory", "--serve-token", "--dns-provider", "--agent"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	stdout, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "acmediag ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

// --agent takes DESIGN.md's bare URL as well as NAME=URL with options.
func TestAgentFlags(t *testing.T) {
	t.Parallel()
	if _, err := parseAgentFlags([]string{"https://agent.example:9465"}, "", "", "", nil); err == nil ||
		!strings.Contains(err.Error(), "--agent-cert") {
		t.Errorf("agents without client certificates: %v, want a usage error naming --agent-cert", err)
	}
	ca, err := pki.NewCA(t.TempDir(), "agents-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Client("daemon")
	if err != nil {
		t.Fatal(err)
	}
	local := []probes.VantageSettings{{Name: "local"}}
	for _, tc := range []struct {
		specs     []string
		wantNames []string
		wantErr   string // from the flags, or from diagnose (exit 2) when they parse
	}{
		{specs: []string{"https://agent.example:9465", "eu=https://a2.example:9465,rir=RIPE"}, wantNames: []string{"agent.example", "eu"}},
		{specs: []string{"eu=https://a2.example:9465,resolver=192.0.2.1"}, wantErr: `unknown key "resolver"`},
		{specs: []string{"https://"}, wantErr: "want https://HOST:PORT"},
		{specs: []string{"local=https://a2.example:9465"}, wantErr: "used twice"},
		{specs: []string{"eu=http://a2.example:9465"}, wantErr: `--agent url: "http://a2.example:9465" is not https://HOST:PORT`},
		{specs: []string{"eu=https://a2.example:9465,rir=EU"}, wantErr: `--agent rir: "EU" is not one of ARIN`},
	} {
		agents, err := parseAgentFlags(tc.specs, cert, key, ca.CertFile, local)
		if err == nil && tc.wantErr != "" {
			args := []string{"diagnose", "--roots", "127.0.0.254", "--resolver", "127.0.0.254", "--vantage", "local=127.0.0.1",
				"--agent-cert", cert, "--agent-key", key, "--agent-ca", ca.CertFile}
			for _, s := range tc.specs {
				args = append(args, "--agent", s)
			}
			var stderr string
			var code int
			_, stderr, code = runCLI(t, append(args, "a.example.com")...)
			if code != exitUsage {
				t.Errorf("%v: exit %d, want %d", tc.specs, code, exitUsage)
			}
			err = errors.New(stderr)
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want %q", tc.specs, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(agents) != len(tc.wantNames) {
			t.Fatalf("%v: %v, %d agents", tc.specs, err, len(agents))
		}
		for i, a := range agents {
			if a.Name != tc.wantNames[i] || a.Kind != string(reports.External) {
				t.Errorf("%v: agent %d is %+v, want %s", tc.specs, i, a, tc.wantNames[i])
			}
		}
	}
}
