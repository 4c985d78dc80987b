package renewals_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/acmediag/acmediag/probes/renewals"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/kube"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// startCluster starts etcd and kube-apiserver for one test (run under
// flock /tmp/acmediag-universe.lock).
func startCluster(t *testing.T, opts kube.Options) *kube.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	bins := toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	opts.EtcdBin, opts.APIServerBin = bins[0], bins[1]
	opts.Dir = t.TempDir()
	opts.Logger = zaptest.NewLogger(t).Named("kube")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := kube.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// clients are cert-manager's and Kubernetes' clients as one token.
type clients struct {
	cm   cmclient.Interface
	kube kubernetes.Interface
}

func clientsFor(t testing.TB, c *kube.Cluster, token string) clients {
	t.Helper()
	cfg := c.ConfigForToken(token)
	cfg.QPS, cfg.Burst = 200, 400
	cm, k, err := renewals.Clients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return clients{cm, k}
}

// eventually polls f until it returns nil or ctx ends.
func eventually(ctx context.Context, t testing.TB, what string, f func() error) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error // the last error not caused by ctx ending
	for {
		err := f()
		if err == nil {
			return
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (%v)", what, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// sink is what the watch hands the daemon: targets and observations.
type sink struct {
	mu       sync.Mutex
	targets  []renewals.Target
	updates  int
	obs      map[string]reports.Observation
	forgot   map[string]bool
	sighting map[string][]reports.Observation // what the vantages saw, by name
	failing  map[string][]reports.Code        // names whose path fails now
}

func newSink() *sink {
	return &sink{obs: map[string]reports.Observation{}, forgot: map[string]bool{}, sighting: map[string][]reports.Observation{}, failing: map[string][]reports.Code{}}
}

func (s *sink) options(c clients, clock renewals.Clock, t testing.TB) renewals.Options {
	return renewals.Options{CertManager: c.cm, Kube: c.kube, Logger: zaptest.NewLogger(t), Clock: clock,
		Sightings: func(name string, since time.Time) []reports.Observation {
			s.mu.Lock()
			defer s.mu.Unlock()
			var out []reports.Observation
			for _, o := range s.sighting[name] {
				if !o.Start.Before(since) {
					out = append(out, o)
				}
			}
			return out
		},
		PathFailing: func(name string) (bool, []reports.Code) {
			s.mu.Lock()
			defer s.mu.Unlock()
			cs, ok := s.failing[name]
			return ok, cs
		},
		OnTargets: func(ts []renewals.Target) {
			s.mu.Lock()
			s.targets, s.updates = ts, s.updates+1
			s.mu.Unlock()
		},
		Record: func(o reports.Observation) {
			s.mu.Lock()
			s.obs[o.Name] = o
			delete(s.forgot, o.Name)
			s.mu.Unlock()
		},
		Forget: func(name string) {
			s.mu.Lock()
			delete(s.obs, name)
			s.forgot[name] = true
			s.mu.Unlock()
		},
	}
}

// codes are the codes of the watch's latest observation of name.
func (s *sink) codes(name string) []reports.Code {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []reports.Code
	for _, f := range s.obs[name].Findings {
		out = append(out, f.Code)
	}
	return out
}

func (s *sink) finding(name string, code reports.Code) (reports.Finding, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.obs[name].Findings {
		if f.Code == code {
			return f, true
		}
	}
	return reports.Finding{}, false
}

// targetList is the targets last published.
func (s *sink) targetList() []renewals.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.targets)
}

func (s *sink) target(name string) (renewals.Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.targets {
		if t.Name == name {
			return t, true
		}
	}
	return renewals.Target{}, false
}

// ---- cert-manager's objects, written the way its controller writes them ----

var csrPEM = func() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{}, DNSNames: []string{"csr.example"}}, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}()

// acmeIssuer creates an ACME Issuer with solvers and sets it Ready as
// cert-manager's issuer controller does once the account is registered.
func acmeIssuer(ctx context.Context, t testing.TB, c clients, ns, name string, solvers []cmacme.ACMEChallengeSolver) *cmapi.Issuer {
	t.Helper()
	is := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{ACME: &cmacme.ACMEIssuer{
			Server:     "https://acme.test/directory",
			PrivateKey: cmmeta.SecretKeySelector{LocalObjectReference: cmmeta.LocalObjectReference{Name: name + "-account"}},
			Solvers:    solvers,
		}}}}
	is, err := c.cm.CertmanagerV1().Issuers(ns).Create(ctx, is, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return setIssuerReady(ctx, t, c, is, cmmeta.ConditionTrue, "ACMEAccountRegistered", "The ACME account was registered with the ACME server")
}

func setIssuerReady(ctx context.Context, t testing.TB, c clients, is *cmapi.Issuer, status cmmeta.ConditionStatus, reason, msg string) *cmapi.Issuer {
	t.Helper()
	now := metav1.Now()
	is.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: status, Reason: reason, Message: msg,
		LastTransitionTime: &now, ObservedGeneration: is.Generation}}
	if status == cmmeta.ConditionTrue {
		is.Status.ACME = &cmacme.ACMEIssuerStatus{URI: "https://acme.test/acct/1"}
	}
	is, err := c.cm.CertmanagerV1().Issuers(is.Namespace).UpdateStatus(ctx, is, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// issuedCertificate creates a Certificate and gives it the status of one
// issued at notBefore (revision 1, Ready), renewing at renewal.
func issuedCertificate(ctx context.Context, t testing.TB, c clients, ns, name, issuer string, names []string, labels map[string]string, notBefore, notAfter, renewal time.Time) *cmapi.Certificate {
	t.Helper()
	crt := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: cmapi.CertificateSpec{SecretName: name + "-tls", DNSNames: names, IssuerRef: cmmeta.IssuerReference{Name: issuer, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}}}
	crt, err := c.cm.CertmanagerV1().Certificates(ns).Create(ctx, crt, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev := 1
	nb, na, rt := metav1.NewTime(notBefore), metav1.NewTime(notAfter), metav1.NewTime(renewal)
	crt.Status = cmapi.CertificateStatus{Revision: &rev, NotBefore: &nb, NotAfter: &na, RenewalTime: &rt,
		Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready",
			Message: "Certificate is up to date and has not expired", LastTransitionTime: &nb, ObservedGeneration: crt.Generation}}}
	crt, err = c.cm.CertmanagerV1().Certificates(ns).UpdateStatus(ctx, crt, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return crt
}

func ownedBy(kind, apiVersion string, m metav1.ObjectMeta) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: m.Name, UID: m.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
}

// renewalAttempt is one attempt's objects.
type renewalAttempt struct {
	request   *cmapi.CertificateRequest
	order     *cmacme.Order
	challenge *cmacme.Challenge
}

// startRenewal writes what cert-manager writes when crt's renewal starts:
// the CertificateRequest of the next revision (approved, pending), its
// Order, and the Challenge of name presented and in its self-check.
func startRenewal(ctx context.Context, t testing.TB, c clients, crt *cmapi.Certificate, attemptN int, name string, typ cmacme.ACMEChallengeType, presentedAt time.Time) renewalAttempt {
	t.Helper()
	ns := crt.Namespace
	next := 1
	if crt.Status.Revision != nil {
		next = *crt.Status.Revision + 1
	}
	ref := crt.Spec.IssuerRef
	cr := &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", crt.Name, attemptN),
		Annotations: map[string]string{cmapi.CertificateRequestRevisionAnnotationKey: strconv.Itoa(next), cmapi.CertificateNameKey: crt.Name,
			cmapi.CertificateRequestPrivateKeyAnnotationKey: crt.Spec.SecretName + "-next"},
		Labels:          crt.Labels,
		OwnerReferences: ownedBy(cmapi.CertificateKind, cmapi.SchemeGroupVersion.String(), crt.ObjectMeta)},
		Spec: cmapi.CertificateRequestSpec{Request: csrPEM, IssuerRef: ref, Usages: []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment}}}
	cr, err := c.cm.CertmanagerV1().CertificateRequests(ns).Create(ctx, cr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	order := &cmacme.Order{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", cr.Name, 1234567890+attemptN),
		Labels: cr.Labels, Annotations: map[string]string{cmapi.CertificateNameKey: crt.Name},
		OwnerReferences: ownedBy(cmapi.CertificateRequestKind, cmapi.SchemeGroupVersion.String(), cr.ObjectMeta)},
		Spec: cmacme.OrderSpec{Request: csrPEM, IssuerRef: ref, DNSNames: crt.Spec.DNSNames}}
	if order, err = c.cm.AcmeV1().Orders(ns).Create(ctx, order, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	authz := "https://acme.test/authz/" + order.Name
	order.Status = cmacme.OrderStatus{URL: "https://acme.test/order/" + order.Name, FinalizeURL: "https://acme.test/finalize/" + order.Name, State: cmacme.Pending,
		Authorizations: []cmacme.ACMEAuthorization{{URL: authz, Identifier: name, InitialState: cmacme.Pending,
			Challenges: []cmacme.ACMEChallenge{{URL: authz + "/chall", Token: "tok-" + order.Name, Type: string(typ)}}}}}
	if order, err = c.cm.AcmeV1().Orders(ns).UpdateStatus(ctx, order, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr.Status.Conditions = []cmapi.CertificateRequestCondition{
		{Type: cmapi.CertificateRequestConditionApproved, Status: cmmeta.ConditionTrue, Reason: "cert-manager.io", Message: "Certificate request has been approved by cert-manager.io"},
		{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse, Reason: cmapi.CertificateRequestReasonPending,
			Message: fmt.Sprintf("Waiting on certificate issuance from order %s/%s: %q", ns, order.Name, cmacme.Pending)}}
	if cr, err = c.cm.CertmanagerV1().CertificateRequests(ns).UpdateStatus(ctx, cr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	issuing := metav1.Now()
	crt = crt.DeepCopy()
	crt.Status.Conditions = slices.DeleteFunc(crt.Status.Conditions, func(c cmapi.CertificateCondition) bool { return c.Type == cmapi.CertificateConditionIssuing })
	crt.Status.Conditions = append(crt.Status.Conditions, cmapi.CertificateCondition{Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue,
		Reason: "Renewing", Message: "Renewing certificate as renewal was scheduled at " + crt.Status.RenewalTime.String(), LastTransitionTime: &issuing})
	if _, err := c.cm.CertmanagerV1().Certificates(ns).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ch := &cmacme.Challenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", order.Name, 42),
		Finalizers:      []string{"finalizer.acme.cert-manager.io"},
		OwnerReferences: ownedBy("Order", cmacme.SchemeGroupVersion.String(), order.ObjectMeta)},
		Spec: cmacme.ChallengeSpec{URL: authz + "/chall", AuthorizationURL: authz, DNSName: name, Type: typ, Token: "tok-" + order.Name,
			Key: "tok-" + order.Name + ".thumbprint", IssuerRef: ref, Solver: cmacme.ACMEChallengeSolver{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{
				Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}}}
	if ch, err = c.cm.AcmeV1().Challenges(ns).Create(ctx, ch, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pa := metav1.NewTime(presentedAt)
	ch.Status = cmacme.ChallengeStatus{Processing: true, Presented: true, PresentedAt: &pa, State: cmacme.Pending,
		Reason: fmt.Sprintf("Waiting for %s challenge propagation: failed to perform self check GET request 'http://%s/.well-known/acme-challenge/%s': context deadline exceeded", typ, name, ch.Spec.Token)}
	if ch, err = c.cm.AcmeV1().Challenges(ns).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return renewalAttempt{request: cr, order: order, challenge: ch}
}

// failRenewal writes what cert-manager writes when the CA refuses the
// authorization: the Challenge invalid with the CA's problem, the Order
// invalid, the request failed, the Certificate Issuing=False with a
// failure and one more failed attempt.
func failRenewal(ctx context.Context, t testing.TB, c clients, a renewalAttempt, problem string) {
	t.Helper()
	ch := a.challenge.DeepCopy()
	ch.Status.Processing, ch.Status.Presented, ch.Status.State = false, false, cmacme.Invalid
	ch.Status.Reason = fmt.Sprintf("Error accepting authorization: acme: authorization error for %s: 400 %s", ch.Spec.DNSName, problem)
	if _, err := c.cm.AcmeV1().Challenges(ch.Namespace).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	o, err := c.cm.AcmeV1().Orders(a.order.Namespace).Get(ctx, a.order.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Status.State, o.Status.FailureTime = cmacme.Invalid, &now
	o.Status.Authorizations[0].InitialState = cmacme.Invalid
	if _, err := c.cm.AcmeV1().Orders(o.Namespace).UpdateStatus(ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr, err := c.cm.CertmanagerV1().CertificateRequests(a.request.Namespace).Get(ctx, a.request.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("Failed to wait for order resource %q to become ready: order is in %q state: %s", o.Name, cmacme.Invalid, o.Status.Reason)
	for i := range cr.Status.Conditions {
		if cr.Status.Conditions[i].Type == cmapi.CertificateRequestConditionReady {
			cr.Status.Conditions[i] = cmapi.CertificateRequestCondition{Type: cmapi.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse,
				Reason: cmapi.CertificateRequestReasonFailed, Message: msg, LastTransitionTime: &now}
		}
	}
	cr.Status.FailureTime = &now
	if _, err := c.cm.CertmanagerV1().CertificateRequests(cr.Namespace).UpdateStatus(ctx, cr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := cr.Annotations[cmapi.CertificateNameKey]
	crt, err := c.cm.CertmanagerV1().Certificates(cr.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
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
	if _, err := c.cm.CertmanagerV1().Certificates(crt.Namespace).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// diagnoses are the RenewalDiagnosis Events on one object.
func diagnoses(ctx context.Context, c clients, ns, kind, name string) ([]corev1.Event, error) {
	l, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "reason=" + renewals.EventReason + ",involvedObject.kind=" + kind + ",involvedObject.name=" + name})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// bindChartRules binds the chart's ClusterRole rules (the one place they
// are written) to a ServiceAccount and returns its token.
func bindChartRules(ctx context.Context, t testing.TB, c *kube.Cluster, admin clients, ns, sa string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "acmediag", "files", "rbac-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatal(err)
	}
	token, err := c.TokenFor(ctx, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "acmediag-" + sa}, Rules: rules}
	if _, err := admin.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "acmediag-" + sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}}}
	if _, err := admin.kube.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return token
}
