package reports

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAssessRenewal(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// cert is a certificate issued at t0 for lifetime (LE style: notAfter
	// one second short of the full lifetime).
	cert := func(lifetime time.Duration) (time.Time, time.Time) { return t0, t0.Add(lifetime - time.Second) }
	nb90, na90 := cert(90 * day)
	nb6, na6 := cert(6 * day)
	nb45, na45 := cert(45 * day)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// pebbleWindow is Pebble's default ARI window: ±24 h around two thirds.
	pebbleWindow := &ARIWindow{Start: at(59 * day), End: at(61 * day)}

	for _, tc := range []struct {
		desc string
		in   RenewalInput
		// want is the finding codes in order; source, deadlineSource and
		// horizon are checked when set.
		want           []Code
		noWindow       bool
		source         WindowSource
		deadlineSource WindowSource
		horizon        time.Duration
		detail         []string // substrings of the details, all findings joined
		evidence       map[string]any
	}{
		{desc: "90 days, day 10, healthy: nothing to say", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(10 * day)},
			source: WindowLifetime, deadlineSource: WindowLifetime, horizon: 7 * day},
		{desc: "90 days, day 52, failing: the window is 8 days away, beyond the horizon", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(52 * day), ChallengeFailing: true}},
		{desc: "90 days, day 54, failing: at risk", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(54 * day), ChallengeFailing: true,
			FailingCodes: []Code{CodeHTTP01ConnectTimeout}, Serial: "0a1b"},
			want: []Code{CodeRenewalAtRisk}, source: WindowLifetime,
			detail:   []string{"opens 2026-04-30T", "in 6d", "7d horizon", "(http01.connect_timeout)", "serial 0a1b"},
			evidence: map[string]any{"challenge_failing": true, "failing_codes": []string{"http01.connect_timeout"}, "window_source": "lifetime", "horizon_seconds": int64(7 * 24 * 3600)}},
		{desc: "90 days, day 54, healthy: nothing", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(54 * day)}},
		{desc: "90 days, day 60.5: window open", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(60*day + 12*time.Hour)},
			want: []Code{CodeRenewalWindowOpen}, detail: []string{"two thirds of the certificate's lifetime"}},
		{desc: "90 days, day 60.5, failing: at risk and open", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(60*day + 12*time.Hour), ChallengeFailing: true},
			want: []Code{CodeRenewalAtRisk, CodeRenewalWindowOpen}, detail: []string{"opened 2026-04-30T", "ago"}},
		{desc: "90 days, day 63, lifetime only: overdue", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(63 * day)},
			want: []Code{CodeRenewalOverdue}, deadlineSource: WindowLifetime, detail: []string{"has not been replaced", "expires 2026-05-29T"}},
		{desc: "90 days, day 63, failing: overdue says the path fails too, no at_risk", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(63 * day), ChallengeFailing: true},
			want: []Code{CodeRenewalOverdue}, detail: []string{"the challenge path fails now"}},
		{desc: "90 days, day 63, cert-manager renews on day 75: open, not overdue", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(63 * day),
			RenewalTime: at(75 * day), Certificate: "shop/www"},
			want: []Code{CodeRenewalWindowOpen}, source: WindowLifetime, deadlineSource: WindowCertManager},
		{desc: "90 days, cert-manager renewalTime passed by 30 min: grace", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(60*day + 30*time.Minute), RenewalTime: at(60 * day)},
			want: []Code{CodeRenewalWindowOpen}},
		{desc: "90 days, cert-manager renewalTime passed by 2 h: overdue", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(60*day + 2*time.Hour), RenewalTime: at(60 * day), Certificate: "shop/www"},
			want: []Code{CodeRenewalOverdue}, detail: []string{"cert-manager's renewalTime of shop/www plus an hour"}},
		{desc: "expired: overdue", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(91 * day)},
			want: []Code{CodeRenewalOverdue}, detail: []string{"1d ago"}},
		{desc: "6 days: horizon is 2 days, day 1.9 failing is too early", in: RenewalInput{NotBefore: nb6, NotAfter: na6, Now: at(day + 21*time.Hour), ChallengeFailing: true},
			horizon: 2 * day},
		{desc: "6 days: day 2.1 failing is at risk", in: RenewalInput{NotBefore: nb6, NotAfter: na6, Now: at(2*day + 3*time.Hour), ChallengeFailing: true},
			want: []Code{CodeRenewalAtRisk}},
		{desc: "6 days: a configured 7-day horizon is capped to a third of the lifetime", in: RenewalInput{NotBefore: nb6, NotAfter: na6, Now: at(day), Horizon: 7 * day, ChallengeFailing: true},
			horizon: 2 * day},
		{desc: "6 days: the lifetime window is 2.9 h wide; 4 h after two thirds it is overdue", in: RenewalInput{NotBefore: nb6, NotAfter: na6, Now: at(4*day + 4*time.Hour)},
			want: []Code{CodeRenewalOverdue}},
		{desc: "45 days: the horizon stays 7 days (a third is 15)", in: RenewalInput{NotBefore: nb45, NotAfter: na45, Now: at(22*day + 12*time.Hour), ChallengeFailing: true},
			horizon: 7 * day},
		{desc: "45 days: day 23.5 failing is at risk (window on day 30)", in: RenewalInput{NotBefore: nb45, NotAfter: na45, Now: at(23*day + 12*time.Hour), ChallengeFailing: true},
			want: []Code{CodeRenewalAtRisk}},
		{desc: "a smaller configured horizon", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(54 * day), ChallengeFailing: true, Horizon: 3 * day},
			horizon: 3 * day},
		{desc: "ARI: Pebble's default window is not early", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(10 * day), ARI: pebbleWindow},
			source: WindowARI, deadlineSource: WindowARI},
		{desc: "ARI: the window decides at_risk, not two thirds", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(52*day + 12*time.Hour), ARI: pebbleWindow, ChallengeFailing: true},
			want: []Code{CodeRenewalAtRisk}, detail: []string{"the CA's ARI window"}},
		{desc: "ARI: an early window open now", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(5 * day), Serial: "beef",
			ARI: &ARIWindow{Start: at(5*day - time.Hour), End: at(6 * day), ExplanationURL: "https://ca.example/incident/42"}},
			want: []Code{CodeRenewalWindowOpen, CodeRenewalARIEarly}, source: WindowARI,
			detail:   []string{"55d1h before two thirds", "https://ca.example/incident/42", "serial beef"},
			evidence: map[string]any{"explanation_url": "https://ca.example/incident/42", "window_source": "ari"}},
		{desc: "ARI: an early window open now, challenge failing", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(5 * day), ChallengeFailing: true,
			ARI: &ARIWindow{Start: at(5*day - time.Hour), End: at(6 * day)}},
			want: []Code{CodeRenewalAtRisk, CodeRenewalWindowOpen, CodeRenewalARIEarly}},
		{desc: "ARI: an early window entirely in the past: overdue", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(5 * day),
			ARI: &ARIWindow{Start: at(3 * day), End: at(4 * day)}},
			want: []Code{CodeRenewalOverdue, CodeRenewalARIEarly}, detail: []string{"the end of the CA's ARI window"}},
		{desc: "ARI: revocation (Pebble's immediate window: one second, an hour ago)", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(30 * day),
			ARI: &ARIWindow{Start: at(30*day - time.Hour), End: at(30*day - time.Hour + time.Second)}},
			want: []Code{CodeRenewalOverdue, CodeRenewalARIEarly}},
		{desc: "ARI: a window just inside the tolerance is not early", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(10 * day),
			ARI: &ARIWindow{Start: at(56 * day), End: at(58 * day)}}},
		{desc: "ARI: cert-manager renews after the window's end", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(5 * day),
			ARI: &ARIWindow{Start: at(5*day - time.Hour), End: at(6 * day)}, RenewalTime: at(60 * day), Certificate: "shop/www"},
			want:     []Code{CodeRenewalWindowOpen, CodeRenewalARIEarly},
			detail:   []string{"cert-manager does not read ARI", "`cmctl renew shop/www`", "`renewBefore`", "54d after the CA's window ends"},
			evidence: map[string]any{"certmanager_after_window": true, "certificate": "shop/www"}},
		{desc: "ARI: cert-manager inside the window says nothing extra", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(60 * day),
			ARI: pebbleWindow, RenewalTime: at(60 * day)},
			want: []Code{CodeRenewalWindowOpen}},
		{desc: "ARI: a window whose end precedes its start counts as none (RFC 9773 §4.2)", in: RenewalInput{NotBefore: nb90, NotAfter: na90, Now: at(10 * day),
			ARI: &ARIWindow{Start: at(6 * day), End: at(5 * day)}},
			source: WindowLifetime},
		{desc: "ARI without a certificate's lifetime: never early", in: RenewalInput{Now: at(5 * day), ARI: &ARIWindow{Start: at(4 * day), End: at(6 * day)}},
			want: []Code{CodeRenewalWindowOpen}, source: WindowARI},
		{desc: "cert-manager only: the renewalTime is the window", in: RenewalInput{Now: at(59 * day), RenewalTime: at(60 * day), ChallengeFailing: true},
			want: []Code{CodeRenewalAtRisk}, source: WindowCertManager, deadlineSource: WindowCertManager, horizon: 7 * day},
		{desc: "cert-manager only, past renewalTime + 1 h: overdue", in: RenewalInput{Now: at(61 * day), RenewalTime: at(60 * day)},
			want: []Code{CodeRenewalOverdue}},
		{desc: "nothing known", in: RenewalInput{Now: at(0)}, noWindow: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.in.Name = "www.example.com"
			r := AssessRenewal(tc.in)
			if tc.noWindow {
				if r.Window != nil || len(r.Findings) > 0 {
					t.Fatalf("got %+v, want nothing", r)
				}
				return
			}
			if r.Window == nil {
				t.Fatal("no window")
			}
			var got []Code
			var details []string
			for _, f := range r.Findings {
				got = append(got, f.Code)
				details = append(details, f.Detail)
				if f.Name != "www.example.com" || f.Summary == "" || f.Fix == "" {
					t.Errorf("finding %s lacks name, summary or fix: %+v", f.Code, f)
				}
				if f.Severity != Lookup(f.Code).Severity {
					t.Errorf("%s severity %s, catalogue says %s", f.Code, f.Severity, Lookup(f.Code).Severity)
				}
				for k, v := range tc.evidence {
					if g, ok := f.Evidence[k]; !ok || !equalAny(g, v) {
						t.Errorf("%s evidence[%s] = %v, want %v", f.Code, k, g, v)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("codes = %v, want %v\n%s", got, tc.want, strings.Join(details, "\n"))
			}
			all := strings.Join(details, "\n")
			for _, s := range tc.detail {
				if !strings.Contains(all, s) {
					t.Errorf("details lack %q:\n%s", s, all)
				}
			}
			if tc.source != "" && r.Window.Source != tc.source {
				t.Errorf("source = %s, want %s", r.Window.Source, tc.source)
			}
			if tc.deadlineSource != "" && r.Window.DeadlineSource != tc.deadlineSource {
				t.Errorf("deadline source = %s, want %s", r.Window.DeadlineSource, tc.deadlineSource)
			}
			if tc.horizon != 0 && (r.Window.Horizon-tc.horizon).Abs() > time.Second {
				t.Errorf("horizon = %s, want %s", r.Window.Horizon, tc.horizon)
			}
		})
	}
}

func equalAny(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{90 * time.Second, "1m30s"},
		{3*time.Hour + 20*time.Minute, "3h20m"},
		{2 * time.Hour, "2h"},
		{24 * time.Hour, "1d"},
		{59*24*time.Hour + 23*time.Hour + 45*time.Minute, "60d"},
		{-36 * time.Hour, "1d12h"},
	} {
		if got := human(tc.d); got != tc.want {
			t.Errorf("human(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
