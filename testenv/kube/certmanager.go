package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strconv"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The functions below write cert-manager's objects the way its
// controllers do (owner references, the revision annotation, status
// through the status subresource, cert-manager's condition types, reasons
// and messages), so tests and the demo can stage renewals on a real API
// server without running cert-manager.

// ACMEIssuer creates an ACME Issuer with solvers and sets it Ready as
// cert-manager's issuer controller does once the account is registered.
func ACMEIssuer(ctx context.Context, cm cmclient.Interface, ns, name string, solvers []cmacme.ACMEChallengeSolver) (*cmapi.Issuer, error) {
	is := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{ACME: &cmacme.ACMEIssuer{
			Server:     "https://acme.test/directory",
			PrivateKey: cmmeta.SecretKeySelector{LocalObjectReference: cmmeta.LocalObjectReference{Name: name + "-account"}},
			Solvers:    solvers,
		}}}}
	is, err := cm.CertmanagerV1().Issuers(ns).Create(ctx, is, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: creating Issuer %s/%s: %w", ns, name, err)
	}
	return SetIssuerReady(ctx, cm, is, cmmeta.ConditionTrue, "ACMEAccountRegistered", "The ACME account was registered with the ACME server")
}

// SetIssuerReady writes the Issuer's Ready condition.
func SetIssuerReady(ctx context.Context, cm cmclient.Interface, is *cmapi.Issuer, status cmmeta.ConditionStatus, reason, msg string) (*cmapi.Issuer, error) {
	now := metav1.Now()
	is.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: status, Reason: reason, Message: msg,
		LastTransitionTime: &now, ObservedGeneration: is.Generation}}
	if status == cmmeta.ConditionTrue {
		is.Status.ACME = &cmacme.ACMEIssuerStatus{URI: "https://acme.test/acct/1"}
	}
	is, err := cm.CertmanagerV1().Issuers(is.Namespace).UpdateStatus(ctx, is, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: the Issuer's status: %w", err)
	}
	return is, nil
}

// IssuedCertificate creates a Certificate and gives it the status of one
// issued at notBefore (revision 1, Ready), renewing at renewal.
func IssuedCertificate(ctx context.Context, cm cmclient.Interface, ns, name, issuer string, names []string, labels map[string]string, notBefore, notAfter, renewal time.Time) (*cmapi.Certificate, error) {
	crt := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: cmapi.CertificateSpec{SecretName: name + "-tls", DNSNames: names, IssuerRef: cmmeta.IssuerReference{Name: issuer, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}}}
	crt, err := cm.CertmanagerV1().Certificates(ns).Create(ctx, crt, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: creating Certificate %s/%s: %w", ns, name, err)
	}
	rev := 1
	nb, na, rt := metav1.NewTime(notBefore), metav1.NewTime(notAfter), metav1.NewTime(renewal)
	crt.Status = cmapi.CertificateStatus{Revision: &rev, NotBefore: &nb, NotAfter: &na, RenewalTime: &rt,
		Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready",
			Message: "Certificate is up to date and has not expired", LastTransitionTime: &nb, ObservedGeneration: crt.Generation}}}
	if crt, err = cm.CertmanagerV1().Certificates(ns).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("kube: the Certificate's status: %w", err)
	}
	return crt, nil
}

func ownedBy(kind, apiVersion string, m metav1.ObjectMeta) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: m.Name, UID: m.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
}

// csrPEM is a CSR for the requests' spec: the watch never reads its names.
var csrPEM = func() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"csr.example"}}, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}()

// Renewal says which renewal attempt StartRenewal writes.
type Renewal struct {
	// Attempt numbers the attempt (it names the request and the order).
	Attempt int
	// Name is the identifier the Challenge validates.
	Name string
	Type cmacme.ACMEChallengeType
	// PresentedAt is when the solver presented the Challenge.
	PresentedAt time.Time
	// Token and Key are the Challenge's; "" makes ones from the order's name.
	Token, Key string
	// Solver is the Challenge's solver; nil an HTTP-01 Ingress solver.
	Solver *cmacme.ACMEChallengeSolver
	// Reason is the Challenge's status reason while it waits; "" the
	// HTTP-01 self-check's timeout.
	Reason string
}

// RenewalAttempt is one attempt's objects.
type RenewalAttempt struct {
	Request   *cmapi.CertificateRequest
	Order     *cmacme.Order
	Challenge *cmacme.Challenge
}

// StartRenewal writes what cert-manager writes when crt's renewal starts:
// the CertificateRequest of the next revision (approved, pending), its
// Order, the Certificate Issuing, and the Challenge presented and in its
// self-check.
func StartRenewal(ctx context.Context, cm cmclient.Interface, crt *cmapi.Certificate, r Renewal) (RenewalAttempt, error) {
	ns := crt.Namespace
	next := 1
	if crt.Status.Revision != nil {
		next = *crt.Status.Revision + 1
	}
	ref := crt.Spec.IssuerRef
	cr := &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", crt.Name, r.Attempt),
		Annotations: map[string]string{cmapi.CertificateRequestRevisionAnnotationKey: strconv.Itoa(next), cmapi.CertificateNameKey: crt.Name,
			cmapi.CertificateRequestPrivateKeyAnnotationKey: crt.Spec.SecretName + "-next"},
		Labels:          crt.Labels,
		OwnerReferences: ownedBy(cmapi.CertificateKind, cmapi.SchemeGroupVersion.String(), crt.ObjectMeta)},
		Spec: cmapi.CertificateRequestSpec{Request: csrPEM, IssuerRef: ref, Usages: []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment}}}
	cr, err := cm.CertmanagerV1().CertificateRequests(ns).Create(ctx, cr, metav1.CreateOptions{})
	if err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: creating CertificateRequest: %w", err)
	}
	order := &cmacme.Order{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", cr.Name, 1234567890+r.Attempt),
		Labels: cr.Labels, Annotations: map[string]string{cmapi.CertificateNameKey: crt.Name},
		OwnerReferences: ownedBy(cmapi.CertificateRequestKind, cmapi.SchemeGroupVersion.String(), cr.ObjectMeta)},
		Spec: cmacme.OrderSpec{Request: csrPEM, IssuerRef: ref, DNSNames: crt.Spec.DNSNames}}
	if order, err = cm.AcmeV1().Orders(ns).Create(ctx, order, metav1.CreateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: creating Order: %w", err)
	}
	token := r.Token
	if token == "" {
		token = "tok-" + order.Name
	}
	key := r.Key
	if key == "" {
		key = token + ".thumbprint"
	}
	authz := "https://acme.test/authz/" + order.Name
	order.Status = cmacme.OrderStatus{URL: "https://acme.test/order/" + order.Name, FinalizeURL: "https://acme.test/finalize/" + order.Name, State: cmacme.Pending,
		Authorizations: []cmacme.ACMEAuthorization{{URL: authz, Identifier: r.Name, InitialState: cmacme.Pending,
			Challenges: []cmacme.ACMEChallenge{{URL: authz + "/chall", Token: token, Type: string(r.Type)}}}}}
	if order, err = cm.AcmeV1().Orders(ns).UpdateStatus(ctx, order, metav1.UpdateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: the Order's status: %w", err)
	}
	cr.Status.Conditions = []cmapi.CertificateRequestCondition{
		{Type: cmapi.CertificateRequestConditionApproved, Status: cmmeta.ConditionTrue, Reason: "cert-manager.io", Message: "Certificate request has been approved by cert-manager.io"},
		{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse, Reason: cmapi.CertificateRequestReasonPending,
			Message: fmt.Sprintf("Waiting on certificate issuance from order %s/%s: %q", ns, order.Name, cmacme.Pending)}}
	if cr, err = cm.CertmanagerV1().CertificateRequests(ns).UpdateStatus(ctx, cr, metav1.UpdateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: the CertificateRequest's status: %w", err)
	}
	issuing := metav1.Now()
	crt = crt.DeepCopy()
	crt.Status.Conditions = slices.DeleteFunc(crt.Status.Conditions, func(c cmapi.CertificateCondition) bool { return c.Type == cmapi.CertificateConditionIssuing })
	crt.Status.Conditions = append(crt.Status.Conditions, cmapi.CertificateCondition{Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue,
		Reason: "Renewing", Message: "Renewing certificate as renewal was scheduled at " + crt.Status.RenewalTime.String(), LastTransitionTime: &issuing})
	if _, err := cm.CertmanagerV1().Certificates(ns).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: the Certificate's status: %w", err)
	}
	solver := cmacme.ACMEChallengeSolver{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}
	if r.Solver != nil {
		solver = *r.Solver
	}
	ch := &cmacme.Challenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", order.Name, 42),
		Finalizers:      []string{"finalizer.acme.cert-manager.io"},
		OwnerReferences: ownedBy("Order", cmacme.SchemeGroupVersion.String(), order.ObjectMeta)},
		Spec: cmacme.ChallengeSpec{URL: authz + "/chall", AuthorizationURL: authz, DNSName: r.Name, Type: r.Type, Token: token,
			Key: key, IssuerRef: ref, Solver: solver}}
	if ch, err = cm.AcmeV1().Challenges(ns).Create(ctx, ch, metav1.CreateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: creating Challenge: %w", err)
	}
	reason := r.Reason
	if reason == "" {
		reason = fmt.Sprintf("Waiting for %s challenge propagation: failed to perform self check GET request 'http://%s/.well-known/acme-challenge/%s': context deadline exceeded", r.Type, r.Name, token)
	}
	pa := metav1.NewTime(r.PresentedAt)
	ch.Status = cmacme.ChallengeStatus{Processing: true, Presented: true, PresentedAt: &pa, State: cmacme.Pending, Reason: reason}
	if ch, err = cm.AcmeV1().Challenges(ns).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
		return RenewalAttempt{}, fmt.Errorf("kube: the Challenge's status: %w", err)
	}
	return RenewalAttempt{Request: cr, Order: order, Challenge: ch}, nil
}

// ValidateChallenge writes what cert-manager writes when the CA accepts
// the attempt's authorization: the Challenge valid and no longer
// presented, the Order ready for finalization.
func ValidateChallenge(ctx context.Context, cm cmclient.Interface, a RenewalAttempt) error {
	ch, err := cm.AcmeV1().Challenges(a.Challenge.Namespace).Get(ctx, a.Challenge.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: reading the Challenge: %w", err)
	}
	ch.Status.Processing, ch.Status.Presented, ch.Status.State, ch.Status.Reason = false, false, cmacme.Valid, "Successfully authorized domain"
	if _, err := cm.AcmeV1().Challenges(ch.Namespace).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the Challenge's status: %w", err)
	}
	o, err := cm.AcmeV1().Orders(a.Order.Namespace).Get(ctx, a.Order.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: reading the Order: %w", err)
	}
	o.Status.State = cmacme.Ready
	o.Status.Authorizations[0].InitialState = cmacme.Valid
	if _, err := cm.AcmeV1().Orders(o.Namespace).UpdateStatus(ctx, o, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the Order's status: %w", err)
	}
	return nil
}

// FailRenewal writes what cert-manager writes when the CA refuses the
// authorization: the Challenge invalid with the CA's problem, the Order
// invalid, the request failed, the Certificate Issuing=False with a
// failure and one more failed attempt.
func FailRenewal(ctx context.Context, cm cmclient.Interface, a RenewalAttempt, problem string) error {
	ch := a.Challenge.DeepCopy()
	ch.Status.Processing, ch.Status.Presented, ch.Status.State = false, false, cmacme.Invalid
	ch.Status.Reason = fmt.Sprintf("Error accepting authorization: acme: authorization error for %s: 400 %s", ch.Spec.DNSName, problem)
	if _, err := cm.AcmeV1().Challenges(ch.Namespace).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the Challenge's status: %w", err)
	}
	now := metav1.Now()
	o, err := cm.AcmeV1().Orders(a.Order.Namespace).Get(ctx, a.Order.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: reading the Order: %w", err)
	}
	o.Status.State, o.Status.FailureTime = cmacme.Invalid, &now
	o.Status.Authorizations[0].InitialState = cmacme.Invalid
	if _, err := cm.AcmeV1().Orders(o.Namespace).UpdateStatus(ctx, o, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the Order's status: %w", err)
	}
	cr, err := cm.CertmanagerV1().CertificateRequests(a.Request.Namespace).Get(ctx, a.Request.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: reading the CertificateRequest: %w", err)
	}
	msg := fmt.Sprintf("Failed to wait for order resource %q to become ready: order is in %q state: %s", o.Name, cmacme.Invalid, o.Status.Reason)
	for i := range cr.Status.Conditions {
		if cr.Status.Conditions[i].Type == cmapi.CertificateRequestConditionReady {
			cr.Status.Conditions[i] = cmapi.CertificateRequestCondition{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse,
				Reason: cmapi.CertificateRequestReasonFailed, Message: msg, LastTransitionTime: &now}
		}
	}
	cr.Status.FailureTime = &now
	if _, err := cm.CertmanagerV1().CertificateRequests(cr.Namespace).UpdateStatus(ctx, cr, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the CertificateRequest's status: %w", err)
	}
	name := cr.Annotations[cmapi.CertificateNameKey]
	crt, err := cm.CertmanagerV1().Certificates(cr.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: reading the Certificate: %w", err)
	}
	n := 1
	if crt.Status.FailedIssuanceAttempts != nil {
		n = *crt.Status.FailedIssuanceAttempts + 1
	}
	crt.Status.FailedIssuanceAttempts, crt.Status.LastFailureTime = &n, &now
	for i := range crt.Status.Conditions {
		if crt.Status.Conditions[i].Type == cmapi.CertificateConditionIssuing {
			crt.Status.Conditions[i] = cmapi.CertificateCondition{Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionFalse,
				Reason: cmapi.CertificateRequestReasonFailed, Message: "The certificate request has failed to complete and will be retried: " + msg, LastTransitionTime: &now}
		}
	}
	if _, err := cm.CertmanagerV1().Certificates(crt.Namespace).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kube: the Certificate's status: %w", err)
	}
	return nil
}
