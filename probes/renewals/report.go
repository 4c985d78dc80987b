package renewals

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/acmediag/acmediag/reports"
)

// EventReason is the reason of every Event the watch writes.
const EventReason = "RenewalDiagnosis"

// maxEventMessage keeps a message within what every API server version
// stores and kubectl prints on one screen.
const maxEventMessage = 1024

// attempt is one failed (or stuck) renewal attempt of a Certificate.
type attempt struct {
	key       string // the same for every object of the attempt, across restarts
	cert      *cmapi.Certificate
	challenge *cmacme.Challenge // set when stuck: the Event goes on it too
	names     []string
	start     time.Time
	end       time.Time
	problem   *reports.Problem
	what      string // what cert-manager says
	// explained are the Challenge's solver's findings (Options.Explain).
	explained []reports.Finding
}

// failure is a Certificate's latest failed attempt, as findings of its names.
type failure struct {
	end      time.Time
	findings []reports.Finding
}

var problemRE = regexp.MustCompile(`urn:ietf:params:acme:error:[A-Za-z]+`)

// problemOf reads the ACME problem type cert-manager quotes in a reason
// ("... 400 urn:ietf:params:acme:error:connection: ...").
func problemOf(reason string) *reports.Problem {
	t := problemRE.FindString(reason)
	if t == "" {
		return nil
	}
	return &reports.Problem{Type: t, Detail: reason}
}

// report explains an attempt once: the ranked causes (reports.Correlate
// over every vantage's observations of its names), renewal.failed (or
// certmanager.self_check_blocked) on its names, and the Event.
func (w *Watcher) report(ctx context.Context, a attempt) error {
	if w.reported[a.key] {
		return nil
	}
	causes := append(solverCauses(a.explained), w.rank(a)...)
	lead := reports.CodeRenewalFailed
	if len(causes) > 0 {
		lead = causes[0].Code
	}
	code := reports.CodeRenewalFailed
	if a.challenge != nil {
		external := false
		for _, n := range a.names {
			failing, _ := w.opts.PathFailing(n)
			external = external || failing
		}
		if !external {
			// The CA's view passes: only the self-check is in the way.
			code, lead = reports.CodeCertManagerSelfCheckBlocked, reports.CodeCertManagerSelfCheckBlocked
		}
	}
	msg := eventMessage(lead, causes, a)
	crtKey := a.cert.Namespace + "/" + a.cert.Name
	var fs []reports.Finding
	for _, n := range a.names {
		f := reports.New(code, n, fmt.Sprintf("the renewal of Certificate %s failed: %s", crtKey, a.what)).
			With("certificate", crtKey).With("attempt", a.key).With("attempt_start", stamp(a.start)).With("attempt_end", stamp(a.end))
		if code == reports.CodeCertManagerSelfCheckBlocked {
			f.Detail = fmt.Sprintf("Certificate %s: %s, while the remote perspectives pass: cert-manager's self-check sees something the CA will not", crtKey, a.what)
		}
		fs = append(fs, reports.ExplainFinding(f, causes))
	}
	if w.cfg.Events {
		ref := corev1.ObjectReference{Kind: cmapi.CertificateKind, APIVersion: cmapi.SchemeGroupVersion.String(),
			Namespace: a.cert.Namespace, Name: a.cert.Name, UID: a.cert.UID}
		if err := w.event(ctx, ref, a.key, msg); err != nil {
			return err
		}
		if ch := a.challenge; ch != nil {
			ref := corev1.ObjectReference{Kind: "Challenge", APIVersion: cmacme.SchemeGroupVersion.String(),
				Namespace: ch.Namespace, Name: ch.Name, UID: ch.UID}
			if err := w.event(ctx, ref, a.key, msg); err != nil {
				return err
			}
		}
	}
	w.reported[a.key] = true
	w.metrics.failures.WithLabelValues(a.cert.Namespace, a.cert.Name, string(lead)).Inc()
	w.failures[crtKey] = failure{end: a.end, findings: fs}
	w.log.Info("renewal attempt explained", zap.String("certificate", crtKey), zap.String("attempt", a.key), zap.String("message", msg))
	w.recordCert(a.cert)
	return nil
}

// solverCause is the vantage a solver's finding is seen from in an
// Event ("certmanager.record_not_replicated from the solver's
// configuration: present at the primary ...").
const solverCause = "the solver's configuration"

// solverCauses makes the solver's error findings causes that lead the
// probes' ranking: they name the broken part (a secondary that never got
// the record) where the probes only see its effect.
func solverCauses(fs []reports.Finding) []reports.Cause {
	var out []reports.Cause
	for _, f := range fs {
		if f.Severity < reports.Error {
			continue
		}
		out = append(out, reports.Cause{Code: f.Code, Score: 2, Severity: f.Severity, Vantages: []string{solverCause},
			MatchesProblem: true, Evidence: []string{f.Detail}})
	}
	return out
}

// rank correlates the attempt with each of its names' sightings and keeps
// each code's best cause.
func (w *Watcher) rank(a attempt) []reports.Cause {
	var all []reports.Cause
	since := a.start.Add(-reports.DefaultCorrelationMargin - reports.DefaultCorrelationLookback)
	for _, n := range a.names {
		obs := slices.DeleteFunc(w.opts.Sightings(n, since), func(o reports.Observation) bool { return !o.Perspective() })
		all = append(all, reports.Correlate(reports.Attempt{Name: n, Start: a.start, End: a.end, Problem: a.problem}, obs, reports.CorrelateOptions{})...)
	}
	slices.SortStableFunc(all, func(x, y reports.Cause) int { return cmp.Compare(y.Score, x.Score) })
	var out []reports.Cause
	for _, c := range all {
		if !slices.ContainsFunc(out, func(o reports.Cause) bool { return o.Code == c.Code }) {
			out = append(out, c)
		}
	}
	return out
}

// eventMessage begins with the root-cause code, then who saw it and what:
// "http01.connect_timeout from us-east: us-east (http-01 probe, during the
// attempt): ...; cert-manager: Challenge ... is invalid: ...".
func eventMessage(lead reports.Code, causes []reports.Cause, a attempt) string {
	var b strings.Builder
	b.WriteString(string(lead))
	switch {
	case lead == reports.CodeCertManagerSelfCheckBlocked:
		b.WriteString(": the remote perspectives pass, cert-manager's self-check does not")
		if len(causes) > 0 {
			fmt.Fprintf(&b, "; seen from %s: %s (%s)", strings.Join(causes[0].Vantages, ", "), causes[0].Code, first(causes[0].Evidence))
		}
	case len(causes) > 0:
		c := causes[0]
		fmt.Fprintf(&b, " from %s: %s", strings.Join(nonEmpty(c.Vantages), ", "), first(c.Evidence))
		if len(causes) > 1 {
			var others []string
			for _, o := range causes[1:min(len(causes), 3)] {
				others = append(others, fmt.Sprintf("%s (%.2f)", o.Code, o.Score))
			}
			b.WriteString("; also seen: " + strings.Join(others, ", "))
		}
	default:
		b.WriteString(": no vantage observed a problem with " + strings.Join(a.names, ", ") + " around the attempt")
	}
	b.WriteString("; cert-manager: " + a.what)
	return ellipsize(b.String(), maxEventMessage)
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

func nonEmpty(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = cmp.Or(v, "local")
	}
	return out
}

func ellipsize(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// eventName is the same for the same attempt and object in every process
// and after every restart: creating it again is AlreadyExists, so an
// attempt gets one Event.
func eventName(object, attemptKey string) string {
	sum := sha256.Sum256([]byte(attemptKey))
	if len(object) > 200 {
		object = object[:200]
	}
	return strings.TrimRight(object, ".-") + ".diag-" + hex.EncodeToString(sum[:8])
}

// event writes one Warning Event on ref; one that exists (written before
// a restart, or by a previous leader) is left alone.
func (w *Watcher) event(ctx context.Context, ref corev1.ObjectReference, attemptKey, msg string) error {
	now := metav1.NewTime(w.clock.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: eventName(ref.Name, attemptKey), Namespace: ref.Namespace},
		InvolvedObject: ref,
		Reason:         EventReason,
		Message:        msg,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "acmediag"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	_, err := w.opts.Kube.CoreV1().Events(ref.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	switch {
	case err == nil:
		w.metrics.events.WithLabelValues("created").Inc()
	case apierrors.IsAlreadyExists(err):
		w.metrics.events.WithLabelValues("exists").Inc()
	case apierrors.IsForbidden(err):
		// Reported by the preflight; the diagnosis still stands.
		w.metrics.events.WithLabelValues("forbidden").Inc()
		w.log.Warn("may not write the Event", zap.String("object", ref.Namespace+"/"+ref.Name), zap.Error(err))
	default:
		w.metrics.events.WithLabelValues("failed").Inc()
		return fmt.Errorf("renewals: Event on %s %s/%s: %w", ref.Kind, ref.Namespace, ref.Name, err)
	}
	return nil
}

// recordCert computes the findings crt gives each of its names and
// records them.
func (w *Watcher) recordCert(crt *cmapi.Certificate) {
	k := crt.Namespace + "/" + crt.Name
	now := w.clock.Now()
	own := w.issuerFindings(crt)
	own = append(own, backoff(crt, now)...)
	fail := w.failures[k]
	for _, n := range certNames(crt) {
		fs := slices.Clone(own)
		for i := range fs {
			fs[i].Name = n
		}
		fs = append(fs, w.renewalFindings(crt, n, now)...)
		for _, f := range fail.findings {
			if f.Name == n {
				fs = append(fs, f)
			}
		}
		if w.byName[n] == nil {
			w.byName[n] = map[string][]reports.Finding{}
		}
		w.byName[n][k] = fs
		w.recordName(n)
	}
}

// recordName records the observation of one name: every watched
// Certificate's findings about it.
func (w *Watcher) recordName(n string) {
	byCert := w.byName[n]
	if len(byCert) == 0 {
		delete(w.byName, n)
		delete(w.lastRec, n)
		if w.opts.Forget != nil {
			w.opts.Forget(n)
		}
		return
	}
	if w.opts.Record == nil {
		return
	}
	keys := make([]string, 0, len(byCert))
	for k := range byCert {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o := reports.Observation{Name: n, Challenge: reports.DefaultChallenge(n), Kind: KindCertManager, Start: w.clock.Now()}
	var fp strings.Builder
	for _, k := range keys {
		o.Findings = append(o.Findings, byCert[k]...)
		for _, f := range byCert[k] {
			fp.WriteString(string(f.Code) + "\x00" + f.Detail + "\x00")
		}
	}
	// Re-read every interval, recorded only when it says something new:
	// the store's history holds changes, not ticks.
	if w.lastRec[n] == fp.String() {
		return
	}
	w.lastRec[n] = fp.String()
	w.opts.Record(o.Finish())
}

// issuerFindings: issuer.not_ready when crt's (Cluster)Issuer is missing
// or not Ready (a missing account Secret shows here: cert-manager says so
// in the condition, and acmediag never reads Secrets).
func (w *Watcher) issuerFindings(crt *cmapi.Certificate) []reports.Finding {
	ref := crt.Spec.IssuerRef
	if ref.Group != "" && ref.Group != "cert-manager.io" {
		return nil // an external issuer: its own conditions, its own types
	}
	var conds []cmapi.IssuerCondition
	var err error
	if ref.Kind == cmapi.ClusterIssuerKind {
		var ci *cmapi.ClusterIssuer
		if ci, err = w.lis.clusterIssuers.Get(ref.Name); err == nil {
			conds = ci.Status.Conditions
		}
	} else {
		var is *cmapi.Issuer
		if is, err = w.lis.in(crt.Namespace).issuers.Issuers(crt.Namespace).Get(ref.Name); err == nil {
			conds = is.Status.Conditions
		}
	}
	what := issuerKey(crt)
	if err != nil {
		return []reports.Finding{reports.New(reports.CodeIssuerNotReady, "", fmt.Sprintf("Certificate %s/%s names %s, which does not exist", crt.Namespace, crt.Name, what)).With("issuer", what)}
	}
	for _, c := range conds {
		if c.Type != cmapi.IssuerConditionReady {
			continue
		}
		if c.Status == cmmeta.ConditionTrue {
			return nil
		}
		return []reports.Finding{reports.New(reports.CodeIssuerNotReady, "", fmt.Sprintf("%s is Ready=%s (%s): %s", what, c.Status, c.Reason, c.Message)).
			With("issuer", what).With("reason", c.Reason)}
	}
	return []reports.Finding{reports.New(reports.CodeIssuerNotReady, "", what+" has no Ready condition yet: cert-manager has not set it up").With("issuer", what)}
}

// Backoff bounds cert-manager uses by default (--certificate-request-
// minimum/maximum-backoff-duration).
const (
	minBackoff = time.Hour
	maxBackoff = 32 * time.Hour
)

// backoff: renewal.backoff while cert-manager waits after failed
// issuances: 1 h × 2^(attempts−1), at most 32 h, after the last failure.
func backoff(crt *cmapi.Certificate, now time.Time) []reports.Finding {
	n := crt.Status.FailedIssuanceAttempts
	if n == nil || *n < 1 || crt.Status.LastFailureTime == nil {
		return nil
	}
	wait := maxBackoff
	if *n <= 6 {
		wait = min(time.Duration(math.Pow(2, float64(*n-1)))*minBackoff, maxBackoff)
	}
	next := crt.Status.LastFailureTime.Add(wait)
	d := fmt.Sprintf("cert-manager has failed %d issuance attempts of %s/%s, the last at %s; it waits %s and tries again at %s",
		*n, crt.Namespace, crt.Name, stamp(crt.Status.LastFailureTime.Time), wait, stamp(next))
	if next.Before(now) {
		d += " (due now)"
	} else {
		d += fmt.Sprintf(" (in %s)", next.Sub(now).Round(time.Minute))
	}
	return []reports.Finding{reports.New(reports.CodeRenewalBackoff, "", d).
		With("failed_issuance_attempts", *n).With("last_failure", stamp(crt.Status.LastFailureTime.Time)).With("next_attempt", stamp(next))}
}

// renewalFindings applies the renewal rule (reports.AssessRenewal, the
// one the tls probe uses) to crt's renewalTime for name: renewal.at_risk
// when it is within the horizon while the name's challenge path fails now,
// renewal.overdue, renewal.window_open.
func (w *Watcher) renewalFindings(crt *cmapi.Certificate, name string, now time.Time) []reports.Finding {
	if crt.Status.RenewalTime == nil {
		return nil
	}
	failing, codes := w.opts.PathFailing(name)
	horizon := cmp.Or(w.cfg.Horizon, reports.DefaultRenewalHorizon)
	if nb, na := crt.Status.NotBefore, crt.Status.NotAfter; nb != nil && na != nil && na.After(nb.Time) {
		horizon = min(horizon, (na.Sub(nb.Time)+time.Second)/3)
	}
	// The window is cert-manager's renewalTime (its renewBefore may differ
	// from a third of the lifetime), so the lifetime is not passed.
	a := reports.AssessRenewal(reports.RenewalInput{Name: name, RenewalTime: crt.Status.RenewalTime.Time,
		Certificate: crt.Namespace + "/" + crt.Name, Now: now, Horizon: horizon, ChallengeFailing: failing, FailingCodes: codes})
	return a.Findings
}

// publish hands the daemon the cluster's targets when they changed.
func (w *Watcher) publish() {
	w.dirty = false
	crts, err := w.lis.certificates(labels.Everything())
	if err != nil {
		return
	}
	w.metrics.certificates.Set(float64(len(crts)))
	open := w.openChallenges()
	var ts []Target
	for _, crt := range crts {
		solvers := w.solversOf(crt)
		for _, n := range certNames(crt) {
			s, ch := pickSolver(n, crt.Labels, solvers)
			t := Target{Name: n, Challenge: ch, Certificate: crt.Namespace + "/" + crt.Name, Issuer: issuerKey(crt), Solver: describeSolver(s, ch)}
			if c, ok := open[crt.Namespace+"/"+n]; ok {
				t.Challenge, t.Token, t.Key = c.Type, c.Token, c.Key
			}
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(x, y Target) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Certificate, y.Certificate))
	})
	w.mu.Lock()
	changed := !slices.Equal(ts, w.targets) || !w.published
	w.targets, w.published = ts, true
	w.mu.Unlock()
	if changed && w.opts.OnTargets != nil {
		w.opts.OnTargets(slices.Clone(ts))
	}
}

// openChallenges are the Challenges still waiting (neither valid nor
// failed), by "namespace/name they validate": a stuck one is checked with
// its own token and key, from every vantage, on the daemon's schedule.
func (w *Watcher) openChallenges() map[string]Check {
	chs, err := w.lis.challenges()
	if err != nil {
		return nil
	}
	out := map[string]Check{}
	for _, ch := range chs {
		switch ch.Status.State {
		case cmacme.Valid, cmacme.Invalid, cmacme.Errored, cmacme.Expired:
			continue
		}
		if ch.Spec.Token == "" || ch.Spec.Key == "" {
			continue
		}
		out[ch.Namespace+"/"+DisplayName(ch)] = CheckFor(ch)
	}
	return out
}

func (w *Watcher) solversOf(crt *cmapi.Certificate) []cmacme.ACMEChallengeSolver {
	ref := crt.Spec.IssuerRef
	var spec *cmapi.IssuerSpec
	switch {
	case ref.Group != "" && ref.Group != "cert-manager.io":
	case ref.Kind == cmapi.ClusterIssuerKind:
		if ci, err := w.lis.clusterIssuers.Get(ref.Name); err == nil {
			spec = &ci.Spec
		}
	default:
		if is, err := w.lis.in(crt.Namespace).issuers.Issuers(crt.Namespace).Get(ref.Name); err == nil {
			spec = &is.Spec
		}
	}
	if spec == nil || spec.ACME == nil {
		return nil
	}
	return spec.ACME.Solvers
}

// stamp is a time as findings print it.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
