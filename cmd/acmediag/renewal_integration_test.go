package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/pebble"
)

// The renewal rule end to end: diagnose --tls reads the certificate a name
// serves (issued by Pebble), asks Pebble for its renewal window (ARI), and
// judges the window against the challenge path. The test moves Pebble's
// window to now, as a CA does during an incident: with the path passing it
// is renewal.ari_early and window_open; with the path failing (dns-01 and
// a TXT value nobody published) it is renewal.at_risk naming the cause.
func TestRenewalWindowFromARI(t *testing.T) {
	needUniverse(t)
	const scenario = "tls-ari"
	issued := universe.PebbleCertificate(scenario)
	if issued == nil {
		t.Fatal("the universe holds no Pebble certificate for " + scenario)
	}
	leaf := issued.Leaf()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	const incident = "https://pebble.example/incident/7"
	if err := universe.SetRenewalInfo(ctx, leaf, pebble.RenewalWindow(now.Add(-time.Hour), now.Add(2*24*time.Hour), incident)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back to Pebble's usual window, around two thirds of the lifetime.
		twoThirds := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
		_ = universe.SetRenewalInfo(context.Background(), leaf, pebble.RenewalWindow(twoThirds.Add(-24*time.Hour), twoThirds.Add(24*time.Hour), ""))
	})
	domain := ""
	for _, sc := range testenv.Catalogue() {
		if sc.Name == scenario {
			domain = sc.Domain
		}
	}
	ari := []string{"--ari-directory", universe.ACMEDirectory(), "--ari-ca-cert", universe.ACMECACert()}
	cases := []struct {
		desc      string
		args      []string
		want      []reports.Code
		absent    []reports.Code
		line      string // the name's renewal line in the text report
		pathFails bool
	}{
		{desc: "the path passes: the CA's early window is a warning, not a risk",
			args: []string{"--challenge", "http-01"},
			want: []reports.Code{reports.CodeRenewalWindowOpen, reports.CodeRenewalARIEarly}, absent: []reports.Code{reports.CodeRenewalAtRisk},
			line: "the renewal window (the CA's ARI window) is open"},
		{desc: "the path fails: at risk, naming the failing check",
			args: []string{"--challenge", "dns-01", "--expect-txt", "nobody-published-this"},
			want: []reports.Code{reports.CodeRenewalAtRisk, reports.CodeRenewalARIEarly}, pathFails: true,
			line: "the challenge path fails now (dns01.txt_missing) → AT RISK"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			args := universe.DiagnoseArgs(testenv.Scenario{Domain: domain, TLS: true, Args: append(slices.Clone(ari), tc.args...)})
			stdout, stderr, _ := runBinary(t, append([]string{"diagnose", "-o", "json", "--log-level", "error"}, args...)...)
			var rep reports.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("not the JSON report: %v\n%s\n%s", err, stdout, stderr)
			}
			for _, c := range tc.want {
				if !slices.ContainsFunc(rep.Findings, func(f reports.Finding) bool { return f.Code == c }) {
					t.Errorf("missing %s\n%s", c, stdout)
				}
			}
			for _, f := range rep.Findings {
				if slices.Contains(tc.absent, f.Code) {
					t.Errorf("unexpected %s: %s", f.Code, f.Detail)
				}
				if f.Code == reports.CodeRenewalARIEarly && !strings.Contains(f.Detail, incident) {
					t.Errorf("ari_early does not give the CA's explanation: %s", f.Detail)
				}
				if f.Code == reports.CodeRenewalAtRisk && !strings.Contains(f.Detail, string(reports.CodeDNS01TXTMissing)) {
					t.Errorf("at_risk does not name the failing check: %s", f.Detail)
				}
			}
			rs := rep.Renewals[domain]
			switch {
			case rs == nil || rs.Window == nil:
				t.Fatalf("no renewal window in the report: %+v", rep.Renewals)
			case rs.Window.Source != reports.WindowARI || rs.PathFailing != tc.pathFails:
				t.Errorf("window from %s, path failing %v; want ari, %v", rs.Window.Source, rs.PathFailing, tc.pathFails)
			case rs.Certificate.Serial == "" || !rs.Certificate.NotAfter.Equal(leaf.NotAfter):
				t.Errorf("certificate %+v, want Pebble's (expires %s)", rs.Certificate, leaf.NotAfter)
			}
			text, _, _ := runBinary(t, append([]string{"diagnose", "--log-level", "error"}, args...)...)
			if !strings.Contains(text, tc.line) {
				t.Errorf("the text report lacks %q:\n%s", tc.line, text)
			}
		})
	}
}
