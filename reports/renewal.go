package reports

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// This file is the renewal rule: when a certificate should be renewed, by
// when it must have been, and what to say about it. It is the one place
// that decides; the tls probe (served certificates plus the CA's ARI
// window) and the cert-manager side (a Certificate's renewalTime) feed it
// what they know and report what it returns. It is pure: no clock, no I/O.

// DefaultRenewalHorizon is how far ahead of a renewal window a failing
// challenge path is reported as renewal.at_risk, unless one third of the
// certificate's lifetime is shorter (a 6-day certificate: 2 days).
const DefaultRenewalHorizon = 7 * 24 * time.Hour

const (
	// earlyTolerance: an ARI window starting less than this share of the
	// lifetime before the two-thirds point is the CA's ordinary schedule
	// (Boulder starts 1 % early, Pebble 24 h early on 90 days, 1.1 %);
	// beyond it the CA asks for an early renewal.
	earlyTolerance = 0.05
	// lifetimeWindowShare is the width of the window the lifetime alone
	// suggests, as a share of the lifetime: as wide as Let's Encrypt's own
	// default ARI window (±1 % around two thirds), starting at two thirds.
	lifetimeWindowShare = 0.02
	// certManagerGrace is how long after a Certificate's renewalTime the
	// old certificate may still be served before it is overdue: the first
	// attempt, issuance and the reload of whatever serves it.
	certManagerGrace = time.Hour
)

// WindowSource says where a renewal window came from.
type WindowSource string

const (
	WindowARI         WindowSource = "ari"          // the CA's suggested window (RFC 9773)
	WindowLifetime    WindowSource = "lifetime"     // two thirds of the certificate's lifetime
	WindowCertManager WindowSource = "cert-manager" // a Certificate's status.renewalTime
)

// ARIWindow is the renewal window a CA suggests for a certificate (RFC 9773
// renewalInfo), with the page explaining it when the CA gives one.
type ARIWindow struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
}

// valid is RFC 9773 §4.2: a window whose end does not follow its start is
// to be treated as no answer at all.
func (w *ARIWindow) valid() bool {
	return w != nil && !w.Start.IsZero() && w.End.After(w.Start)
}

// RenewalInput is what is known about one name's certificate. Zero values
// mean "unknown".
type RenewalInput struct {
	Name string
	// Serial, NotBefore and NotAfter describe the certificate served now
	// (or, for cert-manager, the one in the Certificate's Secret).
	Serial              string
	NotBefore, NotAfter time.Time
	// ARI is the CA's window for that certificate; nil when the CA has
	// none or was not asked.
	ARI *ARIWindow
	// RenewalTime is cert-manager's status.renewalTime of the Certificate
	// that manages the name, and Certificate its "namespace/name".
	RenewalTime time.Time
	Certificate string
	Now         time.Time
	// Horizon is how far ahead a failing challenge path puts the renewal
	// at risk: 0 → DefaultRenewalHorizon; never more than a third of the
	// lifetime.
	Horizon time.Duration
	// ChallengeFailing: the challenge path the renewal will use fails now;
	// FailingCodes are the findings that say so (for the detail).
	ChallengeFailing bool
	FailingCodes     []Code
}

// RenewalWindow is the rule's reading of the input.
type RenewalWindow struct {
	// Start is when renewal should begin: the ARI window's start, else two
	// thirds of the lifetime, else cert-manager's renewalTime.
	Start  time.Time    `json:"start"`
	Source WindowSource `json:"source"`
	// End is the end of the window Start belongs to.
	End time.Time `json:"end"`
	// Deadline is when a renewal is overdue if the old certificate is
	// still served: the ARI window's end, else cert-manager's renewalTime
	// (plus an hour for issuance and reload), else End.
	Deadline       time.Time    `json:"deadline"`
	DeadlineSource WindowSource `json:"deadline_source"`
	// TwoThirds is two thirds into the lifetime, where renewal usually
	// starts; zero when the lifetime is unknown.
	TwoThirds time.Time `json:"two_thirds,omitzero"`
	// Lifetime and Horizon follow from the certificate and the settings.
	Lifetime time.Duration `json:"-"`
	Horizon  time.Duration `json:"-"`
	// Early: the CA's window starts well before TwoThirds (ari_early).
	Early bool `json:"early,omitempty"`
	// CertManagerLate: cert-manager's renewalTime falls after the ARI
	// window's end (cert-manager does not read ARI).
	CertManagerLate bool `json:"cert_manager_late,omitempty"`
}

// RenewalAssessment is the window and the findings about it.
type RenewalAssessment struct {
	Window   *RenewalWindow // nil when nothing is known to judge by
	Findings []Finding
}

// AssessRenewal applies the renewal rule:
//
//   - renewal.overdue (error): Deadline has passed and the old certificate is
//     still served;
//   - renewal.at_risk (error): not overdue, the window starts within the
//     horizon (or has started) and the challenge path fails now;
//   - renewal.window_open (info): the window has started, the deadline has
//     not passed;
//   - renewal.ari_early (warning): the CA's window starts well before two
//     thirds of the lifetime — an incident or a revocation — with the CA's
//     explanation URL in the evidence.
//
// When cert-manager's renewalTime falls after the ARI window's end, the
// findings say so and name the fix: cert-manager does not read ARI.
func AssessRenewal(in RenewalInput) RenewalAssessment {
	w, ok := renewalWindow(in)
	if !ok {
		return RenewalAssessment{}
	}
	r := RenewalAssessment{Window: &w}
	base := renewalEvidence(in, w)
	cmNote := ""
	if w.CertManagerLate {
		cmNote = certManagerNote(in, w)
	}
	served := ""
	if !in.NotAfter.IsZero() {
		served = fmt.Sprintf("the certificate served now (%sexpires %s, %s)", serialText(in.Serial), stamp(in.NotAfter), relative(in.NotAfter, in.Now))
	}

	overdue := !in.Now.Before(w.Deadline)
	switch {
	case overdue:
		what := served
		if what == "" {
			what = "the certificate"
		}
		d := fmt.Sprintf("the renewal deadline (%s) was %s, %s; %s has not been replaced", deadlineText(in, w), stamp(w.Deadline), relative(w.Deadline, in.Now), what)
		if in.ChallengeFailing {
			d += "; the challenge path fails now" + codesText(in.FailingCodes)
		}
		r.Findings = append(r.Findings, withEvidence(New(CodeRenewalOverdue, in.Name, d+cmNote), base))
	case in.ChallengeFailing && !w.Start.After(in.Now.Add(w.Horizon)):
		when := "opens " + stamp(w.Start) + ", " + relative(w.Start, in.Now)
		if !w.Start.After(in.Now) {
			when = "opened " + stamp(w.Start) + ", " + relative(w.Start, in.Now)
		}
		d := fmt.Sprintf("the renewal window (%s) %s, within the %s horizon, and the challenge path fails now%s", sourceText(w.Source), when, human(w.Horizon), codesText(in.FailingCodes))
		if served != "" {
			d += "; " + served
		}
		r.Findings = append(r.Findings, withEvidence(New(CodeRenewalAtRisk, in.Name, d+cmNote), base))
	}
	if !overdue && !in.Now.Before(w.Start) {
		d := fmt.Sprintf("the renewal window (%s) opened %s, %s; the deadline is %s, %s", sourceText(w.Source), stamp(w.Start), relative(w.Start, in.Now), stamp(w.Deadline), relative(w.Deadline, in.Now))
		if served != "" {
			d += "; " + served
		}
		r.Findings = append(r.Findings, withEvidence(New(CodeRenewalWindowOpen, in.Name, d+cmNote), base))
	}
	if w.Early {
		d := fmt.Sprintf("the CA's renewal window starts %s, %s before two thirds of the certificate's lifetime (%s), where it usually starts: the CA wants this certificate replaced early (an incident or a revocation)",
			stamp(in.ARI.Start), human(w.TwoThirds.Sub(in.ARI.Start)), stamp(w.TwoThirds))
		if served != "" {
			d += "; " + served
		}
		if in.ARI.ExplanationURL != "" {
			d += "; the CA explains it at " + in.ARI.ExplanationURL
		}
		r.Findings = append(r.Findings, withEvidence(New(CodeRenewalARIEarly, in.Name, d+cmNote), base))
	}
	return r
}

// renewalWindow computes the window, or false when nothing is known.
func renewalWindow(in RenewalInput) (RenewalWindow, bool) {
	var w RenewalWindow
	if !in.NotBefore.IsZero() && in.NotAfter.After(in.NotBefore) {
		// RFC 5280 validity is inclusive: a 90-day certificate's notAfter
		// is one second short of 90 days (Let's Encrypt, Pebble).
		w.Lifetime = in.NotAfter.Sub(in.NotBefore) + time.Second
		w.TwoThirds = in.NotBefore.Add(w.Lifetime / 3 * 2)
	}
	ari := in.ARI.valid()
	switch {
	case ari:
		w.Start, w.End, w.Source = in.ARI.Start, in.ARI.End, WindowARI
	case w.Lifetime > 0:
		w.Start, w.End, w.Source = w.TwoThirds, w.TwoThirds.Add(share(w.Lifetime, lifetimeWindowShare)), WindowLifetime
	case !in.RenewalTime.IsZero():
		w.Start, w.End, w.Source = in.RenewalTime, in.RenewalTime.Add(certManagerGrace), WindowCertManager
	default:
		return w, false
	}
	// FINDINGS.md: overdue once "the window (ARI end, or renewalTime)"
	// has passed; the lifetime alone falls back to its own window.
	switch {
	case ari:
		w.Deadline, w.DeadlineSource = in.ARI.End, WindowARI
	case !in.RenewalTime.IsZero():
		w.Deadline, w.DeadlineSource = in.RenewalTime.Add(certManagerGrace), WindowCertManager
	default:
		w.Deadline, w.DeadlineSource = w.End, w.Source
	}
	w.Horizon = in.Horizon
	if w.Horizon <= 0 {
		w.Horizon = DefaultRenewalHorizon
	}
	if w.Lifetime > 0 && w.Lifetime/3 < w.Horizon {
		w.Horizon = w.Lifetime / 3
	}
	if ari && w.Lifetime > 0 {
		w.Early = in.ARI.Start.Before(w.TwoThirds.Add(-share(w.Lifetime, earlyTolerance)))
	}
	w.CertManagerLate = ari && !in.RenewalTime.IsZero() && in.RenewalTime.After(in.ARI.End)
	return w, true
}

// share is f of d, rounded to the second.
func share(d time.Duration, f float64) time.Duration {
	return time.Duration(math.Round(float64(d)*f/float64(time.Second))) * time.Second
}

// certManagerNote says that cert-manager will renew after the CA's window
// and how to fix it.
func certManagerNote(in RenewalInput, w RenewalWindow) string {
	cert := in.Certificate
	if cert == "" {
		cert = "NAMESPACE/NAME"
	}
	return fmt.Sprintf("; cert-manager does not read ARI: the Certificate %s renews at %s, %s after the CA's window ends (%s) — renew now with `cmctl renew %s`, or lower the Certificate's `renewBefore` so that cert-manager renews inside the window",
		cert, stamp(in.RenewalTime), human(in.RenewalTime.Sub(in.ARI.End)), stamp(in.ARI.End), cert)
}

// renewalEvidence is the machine-readable part every renewal finding carries.
func renewalEvidence(in RenewalInput, w RenewalWindow) map[string]any {
	ev := map[string]any{
		"window_source":   string(w.Source),
		"window_start":    stamp(w.Start),
		"window_end":      stamp(w.End),
		"deadline":        stamp(w.Deadline),
		"deadline_source": string(w.DeadlineSource),
		"horizon_seconds": int64(w.Horizon / time.Second),
	}
	if in.Serial != "" {
		ev["serial"] = in.Serial
	}
	if !in.NotAfter.IsZero() {
		ev["not_before"], ev["not_after"] = stamp(in.NotBefore), stamp(in.NotAfter)
	}
	if !w.TwoThirds.IsZero() {
		ev["two_thirds"] = stamp(w.TwoThirds)
	}
	if in.ARI.valid() {
		ev["ari_start"], ev["ari_end"] = stamp(in.ARI.Start), stamp(in.ARI.End)
		if in.ARI.ExplanationURL != "" {
			ev["explanation_url"] = in.ARI.ExplanationURL
		}
	}
	if !in.RenewalTime.IsZero() {
		ev["certmanager_renewal_time"] = stamp(in.RenewalTime)
		if in.Certificate != "" {
			ev["certificate"] = in.Certificate
		}
	}
	if w.CertManagerLate {
		ev["certmanager_after_window"] = true
	}
	if in.ChallengeFailing {
		ev["challenge_failing"] = true
		if len(in.FailingCodes) > 0 {
			cs := make([]string, len(in.FailingCodes))
			for i, c := range in.FailingCodes {
				cs[i] = string(c)
			}
			ev["failing_codes"] = cs
		}
	}
	return ev
}

func withEvidence(f Finding, ev map[string]any) Finding {
	f.Evidence = make(map[string]any, len(ev))
	for k, v := range ev {
		f.Evidence[k] = v
	}
	return f
}

func sourceText(s WindowSource) string {
	switch s {
	case WindowARI:
		return "the CA's ARI window"
	case WindowLifetime:
		return "two thirds of the certificate's lifetime"
	default:
		return "cert-manager's renewalTime"
	}
}

func deadlineText(in RenewalInput, w RenewalWindow) string {
	switch w.DeadlineSource {
	case WindowARI:
		return "the end of the CA's ARI window"
	case WindowCertManager:
		cert := ""
		if in.Certificate != "" {
			cert = " of " + in.Certificate
		}
		return "cert-manager's renewalTime" + cert + " plus an hour"
	default:
		return "the end of the window two thirds into the certificate's lifetime"
	}
}

func codesText(cs []Code) string {
	if len(cs) == 0 {
		return ""
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return " (" + strings.Join(s, ", ") + ")"
}

func serialText(s string) string {
	if s == "" {
		return ""
	}
	return "serial " + s + ", "
}

// stamp is a time as findings print it: UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// relative says how far t is from now: "in 3d4h" or "2h ago".
func relative(t, now time.Time) string {
	if d := t.Sub(now); d >= 0 {
		return "in " + human(d)
	}
	return human(now.Sub(t)) + " ago"
}

// human is a duration in days and hours (or minutes and seconds when short).
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= 24*time.Hour:
		days, h := d/(24*time.Hour), (d%(24*time.Hour)+30*time.Minute)/time.Hour
		if h == 24 {
			days, h = days+1, 0
		}
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	case d >= time.Hour:
		d = d.Round(time.Minute)
		if m := d % time.Hour / time.Minute; m != 0 {
			return fmt.Sprintf("%dh%dm", d/time.Hour, m)
		}
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return d.Round(time.Second).String()
	}
}
