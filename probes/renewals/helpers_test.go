package renewals_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
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

// ---- cert-manager's objects, written the way its controller writes them (testenv/kube) ----

// must fails the test on err and returns v.
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func acmeIssuer(ctx context.Context, t testing.TB, c clients, ns, name string, solvers []cmacme.ACMEChallengeSolver) *cmapi.Issuer {
	t.Helper()
	return must[*cmapi.Issuer](t)(kube.ACMEIssuer(ctx, c.cm, ns, name, solvers))
}

func setIssuerReady(ctx context.Context, t testing.TB, c clients, is *cmapi.Issuer, status cmmeta.ConditionStatus, reason, msg string) *cmapi.Issuer {
	t.Helper()
	return must[*cmapi.Issuer](t)(kube.SetIssuerReady(ctx, c.cm, is, status, reason, msg))
}

func issuedCertificate(ctx context.Context, t testing.TB, c clients, ns, name, issuer string, names []string, labels map[string]string, notBefore, notAfter, renewal time.Time) *cmapi.Certificate {
	t.Helper()
	return must[*cmapi.Certificate](t)(kube.IssuedCertificate(ctx, c.cm, ns, name, issuer, names, labels, notBefore, notAfter, renewal))
}

func startRenewal(ctx context.Context, t testing.TB, c clients, crt *cmapi.Certificate, attemptN int, name string, typ cmacme.ACMEChallengeType, presentedAt time.Time) kube.RenewalAttempt {
	t.Helper()
	return must[kube.RenewalAttempt](t)(kube.StartRenewal(ctx, c.cm, crt, kube.Renewal{Attempt: attemptN, Name: name, Type: typ, PresentedAt: presentedAt}))
}

func failRenewal(ctx context.Context, t testing.TB, c clients, a kube.RenewalAttempt, problem string) {
	t.Helper()
	if err := kube.FailRenewal(ctx, c.cm, a, problem); err != nil {
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
