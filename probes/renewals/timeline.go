package renewals

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/acmediag/acmediag/reports"
)

// Chain is a Certificate with the objects of its issuance attempts, as read
// from the cluster. Objects that belong to other Certificates may be in the
// lists: BuildTimeline keeps only those owned along the chain.
type Chain struct {
	Certificate *cmapi.Certificate
	Requests    []*cmapi.CertificateRequest
	Orders      []*acmev1.Order
	Challenges  []*acmev1.Challenge
}

// BuildTimeline is the Certificate's history: every CertificateRequest it
// owns that carries cert-manager's revision annotation (the way cert-manager
// and cmctl tie a request to a Certificate), the Orders each request owns
// and the Challenges each Order owns, oldest attempt first.
func BuildTimeline(c Chain) reports.Timeline {
	crt := c.Certificate
	t := reports.Timeline{Namespace: crt.Namespace, Certificate: crt.Name, DNSNames: slices.Clone(crt.Spec.DNSNames),
		NotBefore: timeOf(crt.Status.NotBefore), NotAfter: timeOf(crt.Status.NotAfter), RenewalTime: timeOf(crt.Status.RenewalTime),
		LastFailure: timeOf(crt.Status.LastFailureTime), Attempts: []reports.TimelineAttempt{}}
	if crt.Status.Revision != nil {
		t.Revision = *crt.Status.Revision
	}
	if crt.Status.FailedIssuanceAttempts != nil {
		t.FailedAttempts = *crt.Status.FailedIssuanceAttempts
	}
	for _, cond := range crt.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady {
			t.Ready, t.Reason, t.Message = string(cond.Status), cond.Reason, cond.Message
		}
	}
	for _, cr := range c.Requests {
		rev, err := strconv.Atoi(cr.Annotations[cmapi.CertificateRequestRevisionAnnotationKey])
		if err != nil || !ownedBy(cr.OwnerReferences, crt.UID) {
			continue
		}
		a := attemptOf(cr, rev)
		// An attempt has one Order normally; a retried Order (the old one
		// deleted by a user) leaves the newest.
		for _, o := range c.Orders {
			if !ownedBy(o.OwnerReferences, cr.UID) {
				continue
			}
			if a.Order != nil && !o.CreationTimestamp.After(a.Order.Created) {
				continue
			}
			a.Order = orderOf(o, c.Challenges)
		}
		t.Attempts = append(t.Attempts, a)
	}
	slices.SortStableFunc(t.Attempts, func(a, b reports.TimelineAttempt) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Revision, b.Revision), cmp.Compare(a.Request, b.Request))
	})
	return t
}

func attemptOf(cr *cmapi.CertificateRequest, rev int) reports.TimelineAttempt {
	a := reports.TimelineAttempt{Revision: rev, Request: cr.Name, Created: cr.CreationTimestamp.Time, Outcome: reports.OutcomePending}
	for _, cond := range cr.Status.Conditions {
		switch {
		case cond.Type == cmapi.CertificateRequestConditionDenied && cond.Status == cmmeta.ConditionTrue:
			a.Outcome, a.Reason, a.Message, a.Ended = reports.OutcomeDenied, cond.Reason, cond.Message, timeOf(cond.LastTransitionTime)
		case cond.Type == cmapi.CertificateRequestConditionReady && a.Outcome != reports.OutcomeDenied:
			a.Reason, a.Message = cond.Reason, cond.Message
			switch cond.Reason {
			case cmapi.CertificateRequestReasonIssued:
				a.Outcome, a.Ended = reports.OutcomeIssued, timeOf(cond.LastTransitionTime)
			case cmapi.CertificateRequestReasonFailed:
				a.Outcome, a.Ended = reports.OutcomeFailed, cmp.Or(timeOf(cr.Status.FailureTime), timeOf(cond.LastTransitionTime))
			case cmapi.CertificateRequestReasonDenied:
				a.Outcome, a.Ended = reports.OutcomeDenied, timeOf(cond.LastTransitionTime)
			}
		}
	}
	return a
}

func orderOf(o *acmev1.Order, chs []*acmev1.Challenge) *reports.TimelineOrder {
	out := &reports.TimelineOrder{Name: o.Name, Created: o.CreationTimestamp.Time, State: string(o.Status.State),
		Reason: o.Status.Reason, FailureTime: timeOf(o.Status.FailureTime)}
	for _, ch := range chs {
		if !ownedBy(ch.OwnerReferences, o.UID) {
			continue
		}
		out.Challenges = append(out.Challenges, reports.TimelineChallenge{Name: ch.Name, DNSName: DisplayName(ch),
			Type: challengeType(ch.Spec.Type), Created: ch.CreationTimestamp.Time, State: string(ch.Status.State),
			Reason: ch.Status.Reason, Presented: ch.Status.Presented, Processing: ch.Status.Processing,
			Solver: SolverOf(ch.Spec.Solver).Description, Token: ch.Spec.Token, Key: ch.Spec.Key})
	}
	slices.SortFunc(out.Challenges, func(a, b reports.TimelineChallenge) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// ownedBy says whether refs name uid as an owner.
func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	return uid != "" && slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == uid })
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}
