package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// demoUniversePort keeps the demo's universe apart from the diagnose
// tests' (53 or 10053) and the daemon tests' (10653).
const demoUniversePort = 11153

// runDemo runs `acmediag testenv demo` on the demo's port with args and
// returns what it printed on stdout and stderr; a failed run fails the test.
func runDemo(t *testing.T, timeout time.Duration, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"testenv", "demo", "--port", strconv.Itoa(demoUniversePort)}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// `acmediag testenv demo` as `make demo` runs it, shortened to 25 s: the
// URLs, a progress line, every name's report, and the failing name's
// canary explained by the vantages' observations. 25 s rather than 60: long
// enough on a loaded machine for the dropped vantage's 10 s connect timeout
// and the lagging secondary (half the run) to show.
func TestDemo(t *testing.T) {
	needBinary(t)
	needUniverse(t) // the same prerequisites: Unbound, Pebble's build
	out, errOut := runDemo(t, 3*time.Minute, "--seconds", "25")
	cases := []struct {
		desc string
		re   string
	}{
		{"the page URL", `(?m)^  report page   http://127\.0\.0\.1:\d+/$`},
		{"the metrics URL", `(?m)^  metrics       http://127\.0\.0\.1:\d+/metrics$`},
		{"the API URL", `(?m)^  report API    http://127\.0\.0\.1:\d+/api/v1/report\?name=NAME$`},
		{"a progress line at 10 s with runs done", `(?m)^\[ 10s/25s\] [1-9]\d* probe runs \(.*dns [1-9].*\), \d+ failed · healthy `},
		{"the final progress line", `(?m)^\[ 2[5-9]s/25s\] [1-9]\d* probe runs`},
		{"the healthy name's report, passing", `(?s)━━ 1/7 healthy: web-ipv4-only\.acmeweb\.com \(http-01\).*?\nPASS — no problems found`},
		{"the lagging dns-01 name's report and its propagation", `(?s)━━ 2/7 lag: www\.dns01-ok\.com \(dns-01\).*?propagation of the UPDATE .*\n  us-east   `},
		{"the wildcard's dns-01 canary order, which waited for the lagging secondary", `(?s)━━ 3/7 wildcard: \*\.dns01-ok\.com \(dns-01\).*?\nlast canary order at Pebble \([0-9:]+\): pass — its TXT record reached every authoritative server after ([5-9]|[1-5]\d)\.\ds\n`},
		{"the one-vantage name: a warning, the quorum holds", `(?s)━━ 4/7 partial: (www\.)?mpic-(dns-)?partial\.(acmeweb\.com|net) \(http-01\).*?mpic\.partial.*?MPIC quorum: ok`},
		{"the failing name's report", `(?s)━━ 5/7 failing: web-refused\.acmeweb\.com \(http-01\).*?http01\.connection_refused.*?\nFAIL — `},
		{"its failed canary order", `(?m)^last canary order at Pebble \([0-9:]+\): FAILED — urn:ietf:params:acme:error:connection: `},
		{"its ranked root cause", `(?m)^  1\. http01\.connection_refused +score 0\.\d+  seen from ap-south, eu-west, us-east  \(matches the CA's problem\)$`},
		{"the root cause in acme.order_failed's detail", `Most likely root cause: http01\.connection_refused`},
		{"the healthy renewal: the certificate and its window, weeks away", `(?s)━━ 6/7 renewal: tls-ok\.acmeweb\.com \(http-01\).*?\n  certificate [0-9a-f]+ expires in (89|90)d; the renewal window opens in (58|59)d \(the CA's ARI window\); the challenge path passes now\n`},
		{"the renewal at risk: the window and the failing check on one line", `(?s)━━ 7/7 at-risk: tls-ari\.acmeweb\.com \(dns-01\).*?\n  certificate [0-9a-f]+ expires in (89|90)d; the renewal window \(the CA's ARI window\) is open, deadline in (1d\d+h|2d); the challenge path fails now \(dns01\.txt_missing\) → AT RISK\n.*?renewal\.at_risk.*?renewal\.ari_early`},
		{"the summary", `(?m)^demo: 7 names, 5 would pass and 2 would fail at Let's Encrypt now; \d+ probe runs`},
	}
	for _, tc := range cases {
		if !regexp.MustCompile(tc.re).MatchString(out) {
			t.Errorf("%s: no match for %s", tc.desc, tc.re)
		}
	}
	// The failing name's cause reads once (the probes' finding and the
	// CA's problem are one finding), and leads: no quorum finding above it.
	if i, j := strings.Index(out, "━━ 5/7 failing"), strings.Index(out, "━━ 6/7"); i < 0 || j < i {
		t.Error("no failing name's report")
	} else if section := out[i:j]; strings.Count(section, "ERROR    http01.connection_refused") != 1 || strings.Contains(section, "mpic.quorum_failed") {
		t.Errorf("the failing name's cause does not read once, first:\n%s", section)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
}

// `acmediag testenv demo --cluster` (make demo CLUSTER=1), shortened to
// 45 s: the real API server with three Certificates renewing; the
// firewalled one's RenewalDiagnosis Event leads with its root cause seen
// from us-east, the stalled one's Challenge gets its stuck Event, and each
// Certificate's timeline prints.
func TestDemoCluster(t *testing.T) {
	needBinary(t)
	needUniverse(t)
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("the firewalled Certificate's scenario needs root")
	}
	toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	out, errOut := runDemo(t, 4*time.Minute, "--cluster", "--seconds", "45")
	cases := []struct {
		desc string
		re   string
	}{
		{"the API server started", `(?m)^API server ready in \S+ at https://127\.0\.0\.1:\d+$`},
		{"the three Certificates", `(?s)Certificate shop/passes .*web-dual-stack\.acmeweb\.com.*Certificate shop/stalls .*www\.txtprop\.com.*Certificate shop/firewalled .*mpic-partial`},
		{"the passing Challenge validated", `(?m)^cluster: the CA validated Challenge shop/passes-1-\d+-42 \(web-dual-stack\.acmeweb\.com\)`},
		{"the firewalled Challenge refused", `(?m)^cluster: the CA refused Challenge shop/firewalled-1-\d+-42 .*Timeout during connect`},
		{"the firewalled Certificate's Event, its root cause first", `(?m)^Event on Certificate shop/firewalled \(Warning, RenewalDiagnosis\): http01\.connect_timeout from us-east`},
		{"the stalled Challenge's Event", `(?m)^Event on (Challenge shop/stalls-1-\d+-42|Certificate shop/stalls) \(Warning, RenewalDiagnosis\): dns01\.txt_not_propagated from `},
		{"the firewalled Certificate's timeline with its failed attempt", `(?s)\nCertificate shop/firewalled \(.*?\n  Certificate shop/firewalled: .*1 failed attempt.*?\n  \S+  #2 firewalled-1: failed, order firewalled-1-\d+ invalid — `},
		{"the passing Certificate's timeline", `(?s)\nCertificate shop/passes \(.*?\n  Certificate shop/passes: Ready=True.*?\n  \S+  #2 passes-1: `},
	}
	for _, tc := range cases {
		if !regexp.MustCompile(tc.re).MatchString(out) {
			t.Errorf("%s: no match for %s", tc.desc, tc.re)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
}
