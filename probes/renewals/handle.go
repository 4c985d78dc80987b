package renewals

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/acmediag/acmediag/reports"
)

// handle looks at one object again.
func (w *Watcher) handle(ctx context.Context, k key) error {
	ls := w.lis.in(k.namespace)
	switch k.res {
	case resCertificate:
		if ls == nil {
			return nil
		}
		crt, err := ls.certs.Certificates(k.namespace).Get(k.name)
		if apierrors.IsNotFound(err) {
			w.removed(k.namespace, k.name)
			return nil
		} else if err != nil {
			return err
		}
		w.dirty = true
		return w.certificate(ctx, crt)
	case resIssuer, resClusterIssuer:
		w.dirty = true
		crts, _ := w.lis.certificates(labels.Everything())
		for _, c := range crts {
			ref := c.Spec.IssuerRef
			if ref.Name == k.name && (k.res == resClusterIssuer) == (ref.Kind == cmapi.ClusterIssuerKind) &&
				(k.res == resClusterIssuer || c.Namespace == k.namespace) {
				w.queue.Add(key{resCertificate, c.Namespace, c.Name})
			}
		}
	case resChallenge:
		if ls == nil {
			return nil
		}
		w.dirty = true // an open Challenge's token and key are its name's target's
		ch, err := ls.challenge.Challenges(k.namespace).Get(k.name)
		if err != nil {
			return nil // gone: cert-manager deletes Challenges once done
		}
		return w.challenge(ctx, ch)
	case resOrder:
		if ls == nil {
			return nil
		}
		o, err := ls.orders.Orders(k.namespace).Get(k.name)
		if err != nil {
			return nil
		}
		return w.order(ctx, o)
	case resRequest:
		if ls == nil {
			return nil
		}
		cr, err := ls.requests.CertificateRequests(k.namespace).Get(k.name)
		if err != nil {
			return nil
		}
		return w.request(ctx, cr)
	}
	return nil
}

// owner is the object of kind that owns m, by its owner references.
func owner(m metav1.Object, kind string) (name string, ok bool) {
	for _, r := range m.GetOwnerReferences() {
		if r.Kind == kind {
			return r.Name, true
		}
	}
	return "", false
}

// chain is what a Challenge or Order belongs to: its Order, the
// CertificateRequest, the Certificate. Any may be nil.
type chain struct {
	order   *cmacme.Order
	request *cmapi.CertificateRequest
	cert    *cmapi.Certificate
}

func (w *Watcher) chainOfOrder(o *cmacme.Order) chain {
	c := chain{order: o}
	ls := w.lis.in(o.Namespace)
	if n, ok := owner(o, cmapi.CertificateRequestKind); ok {
		c.request, _ = ls.requests.CertificateRequests(o.Namespace).Get(n)
	}
	if c.request != nil {
		n, ok := owner(c.request, cmapi.CertificateKind)
		if !ok {
			n, ok = c.request.Annotations[cmapi.CertificateNameKey]
		}
		if ok {
			c.cert, _ = ls.certs.Certificates(o.Namespace).Get(n)
		}
	}
	return c
}

// attemptKey names one attempt: its CertificateRequest (cert-manager
// makes a new one for each try), else the object itself.
func (c chain) attemptKey(fallback metav1.Object) string {
	switch {
	case c.request != nil:
		return "request/" + string(c.request.UID)
	case c.order != nil:
		return "order/" + string(c.order.UID)
	}
	return "object/" + string(fallback.GetUID())
}

// start is when the attempt began: its request's creation, else the
// order's, else fallback's.
func (c chain) start(fallback metav1.Object) time.Time {
	switch {
	case c.request != nil:
		return c.request.CreationTimestamp.Time
	case c.order != nil:
		return c.order.CreationTimestamp.Time
	}
	return fallback.GetCreationTimestamp().Time
}

func (w *Watcher) challenge(ctx context.Context, ch *cmacme.Challenge) error {
	ls := w.lis.in(ch.Namespace)
	var c chain
	if n, ok := owner(ch, "Order"); ok {
		if o, err := ls.orders.Orders(ch.Namespace).Get(n); err == nil {
			c = w.chainOfOrder(o)
		}
	}
	if c.cert == nil {
		return nil // not one of the watched Certificates'
	}
	name := ch.Spec.DNSName
	if ch.Spec.Wildcard {
		name = "*." + name
	}
	now := w.clock.Now()
	what := fmt.Sprintf("Challenge %s/%s (%s for %s)", ch.Namespace, ch.Name, ch.Spec.Type, name)
	switch ch.Status.State {
	case cmacme.Invalid, cmacme.Errored:
		end := now
		if c.order != nil && c.order.Status.FailureTime != nil {
			end = c.order.Status.FailureTime.Time
		}
		return w.report(ctx, attempt{key: c.attemptKey(ch), cert: c.cert, names: []string{name}, start: c.start(ch), end: end,
			problem: problemOf(ch.Status.Reason), what: fmt.Sprintf("%s is %s: %s", what, ch.Status.State, ch.Status.Reason),
			explained: w.explain(ctx, c.attemptKey(ch), ch)})
	case cmacme.Valid:
		return nil
	}
	if !ch.Status.Presented {
		return nil
	}
	since := ch.CreationTimestamp.Time
	if ch.Status.PresentedAt != nil {
		since = ch.Status.PresentedAt.Time
	}
	if now.Sub(since) < w.cfg.StuckAfter {
		return nil
	}
	return w.report(ctx, attempt{key: "stuck/" + string(ch.UID), cert: c.cert, challenge: ch, names: []string{name}, start: since, end: now,
		problem: problemOf(ch.Status.Reason), explained: w.explain(ctx, "stuck/"+string(ch.UID), ch),
		what: fmt.Sprintf("%s presented %s ago and not valid: %s", what, now.Sub(since).Round(time.Second), cmp.Or(ch.Status.Reason, "no reason given"))})
}

// explain asks Options.Explain about a Challenge whose attempt is not
// reported yet (asking the DNS once per attempt, not on every resync).
func (w *Watcher) explain(ctx context.Context, key string, ch *cmacme.Challenge) []reports.Finding {
	if w.opts.Explain == nil || w.reported[key] {
		return nil
	}
	return w.opts.Explain(ctx, CheckFor(ch))
}

func (w *Watcher) order(ctx context.Context, o *cmacme.Order) error {
	if o.Status.State != cmacme.Invalid && o.Status.State != cmacme.Errored {
		return nil
	}
	c := w.chainOfOrder(o)
	if c.cert == nil {
		return nil
	}
	end := w.clock.Now()
	if o.Status.FailureTime != nil {
		end = o.Status.FailureTime.Time
	}
	return w.report(ctx, attempt{key: c.attemptKey(o), cert: c.cert, names: orderNames(o, c.cert), start: c.start(o), end: end,
		problem: problemOf(o.Status.Reason), what: fmt.Sprintf("Order %s/%s is %s: %s", o.Namespace, o.Name, o.Status.State, o.Status.Reason)})
}

func orderNames(o *cmacme.Order, crt *cmapi.Certificate) []string {
	if len(o.Spec.DNSNames) > 0 {
		return o.Spec.DNSNames
	}
	return certNames(crt)
}

func (w *Watcher) request(ctx context.Context, cr *cmapi.CertificateRequest) error {
	ready := requestCondition(cr, cmapi.CertificateRequestConditionReady)
	if ready == nil || ready.Status != cmmeta.ConditionFalse || ready.Reason != cmapi.CertificateRequestReasonFailed {
		return nil
	}
	n, ok := owner(cr, cmapi.CertificateKind)
	if !ok {
		return nil
	}
	crt, err := w.lis.in(cr.Namespace).certs.Certificates(cr.Namespace).Get(n)
	if err != nil {
		return nil
	}
	end := w.clock.Now()
	if cr.Status.FailureTime != nil {
		end = cr.Status.FailureTime.Time
	}
	return w.report(ctx, attempt{key: chain{request: cr}.attemptKey(cr), cert: crt, names: certNames(crt), start: cr.CreationTimestamp.Time, end: end,
		problem: problemOf(ready.Message), what: fmt.Sprintf("CertificateRequest %s/%s failed: %s", cr.Namespace, cr.Name, ready.Message)})
}

// certificate reads a Certificate: a failed issuance (Issuing=False with
// a failure time) is an attempt; the renewal rule and cert-manager's own
// state are findings of each of its names.
func (w *Watcher) certificate(ctx context.Context, crt *cmapi.Certificate) error {
	issuing := certCondition(crt, cmapi.CertificateConditionIssuing)
	if issuing != nil && issuing.Status == cmmeta.ConditionFalse && crt.Status.LastFailureTime != nil {
		a := attempt{cert: crt, names: certNames(crt), end: crt.Status.LastFailureTime.Time, problem: problemOf(issuing.Message),
			what: fmt.Sprintf("Certificate %s/%s: Issuing=False (%s): %s", crt.Namespace, crt.Name, issuing.Reason, issuing.Message)}
		cr, inFlight := w.requestOf(crt)
		switch {
		case cr != nil:
			a.key, a.start = chain{request: cr}.attemptKey(cr), cr.CreationTimestamp.Time
		case inFlight:
			// A new attempt has begun; the failed one's request is gone.
			a.key = ""
		default:
			a.key = fmt.Sprintf("certificate/%s/%d", crt.UID, crt.Status.LastFailureTime.Unix())
			a.start = issuing.LastTransitionTime.Time
		}
		if a.key != "" {
			if err := w.report(ctx, a); err != nil {
				return err
			}
		}
	}
	if ready := certCondition(crt, cmapi.CertificateConditionReady); ready != nil && ready.Status == cmmeta.ConditionTrue {
		// Issued since the failures: they are history now.
		k := crt.Namespace + "/" + crt.Name
		if f, ok := w.failures[k]; ok && crt.Status.LastFailureTime == nil && ready.LastTransitionTime != nil && ready.LastTransitionTime.After(f.end) {
			delete(w.failures, k)
		}
	}
	w.recordCert(crt)
	return nil
}

// requestOf is the CertificateRequest of crt's failed attempt: owned by
// it, of the next revision, failed; inFlight says a request of that
// revision has not failed (the next attempt has begun: cert-manager may
// create it before the Issuing condition turns True).
func (w *Watcher) requestOf(crt *cmapi.Certificate) (failed *cmapi.CertificateRequest, inFlight bool) {
	next := 1
	if crt.Status.Revision != nil {
		next = *crt.Status.Revision + 1
	}
	crs, err := w.lis.in(crt.Namespace).requests.CertificateRequests(crt.Namespace).List(labels.Everything())
	if err != nil {
		return nil, false
	}
	rev := fmt.Sprint(next)
	for _, cr := range crs {
		if cr.Annotations[cmapi.CertificateRequestRevisionAnnotationKey] != rev || !slices.ContainsFunc(cr.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == crt.UID }) {
			continue
		}
		if ready := requestCondition(cr, cmapi.CertificateRequestConditionReady); ready == nil || ready.Reason != cmapi.CertificateRequestReasonFailed {
			inFlight = true
			continue
		}
		if failed == nil || cr.CreationTimestamp.After(failed.CreationTimestamp.Time) {
			failed = cr
		}
	}
	return failed, inFlight && failed == nil
}

func certCondition(crt *cmapi.Certificate, t cmapi.CertificateConditionType) *cmapi.CertificateCondition {
	for i := range crt.Status.Conditions {
		if crt.Status.Conditions[i].Type == t {
			return &crt.Status.Conditions[i]
		}
	}
	return nil
}

func requestCondition(cr *cmapi.CertificateRequest, t cmapi.CertificateRequestConditionType) *cmapi.CertificateRequestCondition {
	for i := range cr.Status.Conditions {
		if cr.Status.Conditions[i].Type == t {
			return &cr.Status.Conditions[i]
		}
	}
	return nil
}

// removed forgets a deleted Certificate: its findings, its series; its
// names leave the targets at the next publish.
func (w *Watcher) removed(namespace, name string) {
	w.dirty = true
	k := namespace + "/" + name
	delete(w.failures, k)
	w.metrics.forget(namespace, name)
	for n, byCert := range w.byName {
		if _, ok := byCert[k]; ok {
			delete(byCert, k)
			w.recordName(n)
		}
	}
}
