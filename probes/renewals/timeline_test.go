package renewals

import (
	"testing"
	"time"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/acmediag/acmediag/reports"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func meta(name string, uid types.UID, at time.Duration, owner types.UID) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Namespace: "shop", Name: name, UID: uid, CreationTimestamp: metav1.NewTime(t0.Add(at))}
	if owner != "" {
		m.OwnerReferences = []metav1.OwnerReference{{UID: owner, Name: "owner", Controller: ptr(true)}}
	}
	return m
}

func ptr[T any](v T) *T { return &v }

func request(name string, uid types.UID, at time.Duration, owner types.UID, rev string, reason string) *cmapi.CertificateRequest {
	cr := &cmapi.CertificateRequest{ObjectMeta: meta(name, uid, at, owner)}
	if rev != "" {
		cr.Annotations = map[string]string{cmapi.CertificateRequestRevisionAnnotationKey: rev}
	}
	if reason != "" {
		status := cmmeta.ConditionFalse
		if reason == cmapi.CertificateRequestReasonIssued {
			status = cmmeta.ConditionTrue
		}
		cr.Status.Conditions = []cmapi.CertificateRequestCondition{{Type: cmapi.CertificateRequestConditionReady, Status: status,
			Reason: reason, Message: reason + " message", LastTransitionTime: ptr(metav1.NewTime(t0.Add(at + time.Minute)))}}
	}
	return cr
}

func TestBuildTimeline(t *testing.T) {
	t.Parallel()
	crt := &cmapi.Certificate{ObjectMeta: meta("www", "crt", 0, ""),
		Spec: cmapi.CertificateSpec{DNSNames: []string{"www.example.com"}},
		Status: cmapi.CertificateStatus{Revision: ptr(1), FailedIssuanceAttempts: ptr(1),
			RenewalTime: ptr(metav1.NewTime(t0.Add(60 * 24 * time.Hour))),
			Conditions:  []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready"}}}}
	chain := Chain{Certificate: crt,
		Requests: []*cmapi.CertificateRequest{
			request("www-2", "cr2", 2*time.Hour, "crt", "2", cmapi.CertificateRequestReasonFailed),
			request("www-1", "cr1", time.Hour, "crt", "1", cmapi.CertificateRequestReasonIssued),
			request("www-noannot", "cr3", 3*time.Hour, "crt", "", ""),       // not an issuance attempt of cert-manager's
			request("other-1", "cr4", 3*time.Hour, "other", "1", "Pending"), // another Certificate's
		},
		Orders: []*acmev1.Order{
			{ObjectMeta: meta("www-2-1", "o2", 2*time.Hour, "cr2"), Status: acmev1.OrderStatus{State: acmev1.Invalid, Reason: "authorization failed"}},
			{ObjectMeta: meta("other-1-1", "o4", 3*time.Hour, "cr4")},
		},
		Challenges: []*acmev1.Challenge{
			{ObjectMeta: meta("www-2-1-0", "ch2", 2*time.Hour, "o2"),
				Spec: acmev1.ChallengeSpec{DNSName: "www.example.com", Type: acmev1.ACMEChallengeTypeHTTP01,
					Solver: acmev1.ACMEChallengeSolver{HTTP01: &acmev1.ACMEChallengeSolverHTTP01{Ingress: &acmev1.ACMEChallengeSolverHTTP01Ingress{IngressClassName: ptr("nginx")}}}},
				Status: acmev1.ChallengeStatus{State: acmev1.Invalid, Reason: "Timeout during connect (likely firewall problem)"}},
			{ObjectMeta: meta("other-1-1-0", "ch4", 3*time.Hour, "o4")},
		}}
	tl := BuildTimeline(chain)
	if tl.Certificate != "www" || tl.Ready != "True" || tl.Revision != 1 || tl.FailedAttempts != 1 || tl.RenewalTime == nil {
		t.Errorf("certificate fields: %+v", tl)
	}
	if len(tl.Attempts) != 2 {
		t.Fatalf("attempts %+v, want www-1 and www-2 only (owned and annotated)", tl.Attempts)
	}
	cases := []struct {
		desc  string
		got   reports.TimelineAttempt
		req   string
		rev   int
		out   reports.Outcome
		order string
		cause string
	}{
		{desc: "the issued first attempt, oldest first", got: tl.Attempts[0], req: "www-1", rev: 1, out: reports.OutcomeIssued},
		{desc: "the failed renewal with its order and challenge", got: tl.Attempts[1], req: "www-2", rev: 2, out: reports.OutcomeFailed,
			order: "www-2-1", cause: "www.example.com: Timeout during connect (likely firewall problem)"},
	}
	for _, tc := range cases {
		a := tc.got
		if a.Request != tc.req || a.Revision != tc.rev || a.Outcome != tc.out || a.Ended == nil {
			t.Errorf("%s: %+v", tc.desc, a)
		}
		if (a.Order == nil) != (tc.order == "") || a.Order != nil && a.Order.Name != tc.order {
			t.Errorf("%s: order %+v, want %q", tc.desc, a.Order, tc.order)
		}
		if got := a.Cause(); got != tc.cause {
			t.Errorf("%s: cause %q, want %q", tc.desc, got, tc.cause)
		}
	}
	if o := tl.Attempts[1].Order; o != nil && (len(o.Challenges) != 1 || o.Challenges[0].Solver != "ingress class nginx" || o.Challenges[0].Type != reports.HTTP01) {
		t.Errorf("challenges %+v", o.Challenges)
	}
}
