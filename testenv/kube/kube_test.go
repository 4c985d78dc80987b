package kube

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/toolbuild"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	cminformers "github.com/cert-manager/cert-manager/pkg/client/informers/externalversions"
	"go.uber.org/zap/zaptest"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// startCluster starts a cluster for one test and stops it at the end.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	bins := toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	opts.EtcdBin, opts.APIServerBin = bins[0], bins[1]
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	opts.Logger = zaptest.NewLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tm := c.Timings()
	t.Logf("cluster %s up in %s: etcd %s, kube-apiserver %s, CRDs %s", c.Host(), time.Since(start).Round(time.Millisecond),
		tm.Etcd.Round(time.Millisecond), tm.APIServer.Round(time.Millisecond), tm.CRDs.Round(time.Millisecond))
	return c
}

func clientset(t *testing.T, c *Cluster, token string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.ConfigForToken(token))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// eventually polls f until it returns nil or ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (%v)", what, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestCluster checks one real cluster from several sides: versions, RBAC
// with TokenRequest tokens, SubjectAccessReviews, CRDs and kubeconfigs.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{PrometheusOperatorCRDs: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := clientset(t, c, c.AdminToken())

	t.Run("version", func(t *testing.T) {
		v, err := admin.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != "v1.37.2" {
			t.Errorf("server version %s, want the pinned v1.37.2", v.GitVersion)
		}
	})

	t.Run("anonymous and unknown tokens are refused", func(t *testing.T) {
		for _, tc := range []struct {
			desc, token string
			want        func(error) bool
		}{
			{"no token", "", apierrors.IsForbidden},
			{"unknown token", "not-a-token", apierrors.IsUnauthorized},
		} {
			_, err := clientset(t, c, tc.token).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			if !tc.want(err) {
				t.Errorf("%s: list namespaces: err = %v", tc.desc, err)
			}
		}
	})

	t.Run("TokenRequest and RBAC", func(t *testing.T) {
		const ns, sa = "rbac-test", "reader"
		token, err := c.TokenFor(ctx, ns, sa)
		if err != nil {
			t.Fatal(err)
		}
		reader := clientset(t, c, token)

		// The token authenticates as the ServiceAccount.
		review, err := reader.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "system:serviceaccount:" + ns + ":" + sa; review.Status.UserInfo.Username != want {
			t.Errorf("token user %q, want %q", review.Status.UserInfo.Username, want)
		}

		// Without a binding: 403.
		_, err = reader.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list configmaps without a binding: err = %v, want 403", err)
		}
		sar := func() (bool, error) {
			r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               review.Status.UserInfo.Username,
					Groups:             review.Status.UserInfo.Groups,
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "configmaps"},
				}}, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			return r.Status.Allowed, nil
		}
		if allowed, err := sar(); err != nil || allowed {
			t.Fatalf("SubjectAccessReview before the binding: allowed %v, %v", allowed, err)
		}

		// With a Role and a RoleBinding: 200 for what it grants, 403 beyond.
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}}
		if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}
		if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The authorizer sees new bindings through its informers: poll.
		eventually(ctx, t, "list configmaps after the binding", func() error {
			_, err := reader.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			return err
		})
		if allowed, err := sar(); err != nil || !allowed {
			t.Errorf("SubjectAccessReview after the binding: allowed %v, %v", allowed, err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}}
		if _, err := reader.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("create configmap with a read-only role: err = %v, want 403", err)
		}
		if _, err := reader.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list configmaps in another namespace: err = %v, want 403", err)
		}
	})

	t.Run("CRDs established", func(t *testing.T) {
		ext, err := apiextensionsclient.NewForConfig(c.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{
			"certificates.cert-manager.io", "certificaterequests.cert-manager.io", "issuers.cert-manager.io",
			"clusterissuers.cert-manager.io", "orders.acme.cert-manager.io", "challenges.acme.cert-manager.io",
			"servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
		} {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Errorf("CRD %s: %v", name, err)
				continue
			}
			if !established(crd) {
				t.Errorf("CRD %s not established: %+v", name, crd.Status.Conditions)
			}
		}
		// Installing again (an upgrade) is fine.
		if err := c.InstallCRDs(ctx, CertManagerCRDs); err != nil {
			t.Errorf("installing cert-manager's CRDs again: %v", err)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := c.Kubeconfig(path); err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
			t.Errorf("get kube-system through the kubeconfig: %v", err)
		}
	})
}

func testCertificate(ns, name string) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: cmapi.CertificateSpec{
			SecretName: name + "-tls",
			DNSNames:   []string{name + ".acmeweb.com"},
			IssuerRef:  cmmeta.IssuerReference{Name: "letsencrypt-staging", Kind: "ClusterIssuer", Group: "cert-manager.io"},
		},
	}
}

// TestCertificateRoundTripAndRestart writes a cert-manager Certificate and
// its status through cert-manager's typed clientset, reads it back through
// its informers and listers, then restarts kube-apiserver under a running
// informer: the object survives, the watch resumes and sees what was
// written after the restart.
func TestCertificateRoundTripAndRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "certs"
	admin := clientset(t, c, c.AdminToken())
	if err := EnsureNamespace(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	cm, err := cmclient.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	created, err := cm.CertmanagerV1().Certificates(ns).Create(ctx, testCertificate(ns, "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Status the way cert-manager's controller writes it: the subresource.
	notAfter := metav1.NewTime(time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second))
	created.Status = cmapi.CertificateStatus{
		NotAfter: &notAfter,
		Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionFalse,
			Reason: "Failed", Message: "Waiting for http-01 challenge propagation", LastTransitionTime: &notAfter}},
	}
	if _, err := cm.CertmanagerV1().Certificates(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status: %v", err)
	}
	// The CRD's schema is enforced: a key algorithm outside its enum is refused.
	bad := testCertificate(ns, "bad")
	bad.Spec.PrivateKey = &cmapi.CertificatePrivateKey{Algorithm: "DSA"}
	if _, err := cm.CertmanagerV1().Certificates(ns).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("create a Certificate with privateKey.algorithm DSA: err = %v, want Invalid", err)
	}

	factory := cminformers.NewSharedInformerFactoryWithOptions(cm, 0, cminformers.WithNamespace(ns))
	informer := factory.Certmanager().V1().Certificates()
	lister := informer.Lister()
	events := make(chan string, 100)
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { events <- "add " + obj.(*cmapi.Certificate).Name },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		t.Fatal("informer never synced")
	}
	got, err := lister.Certificates(ns).Get("web")
	if err != nil {
		t.Fatalf("lister: %v", err)
	}
	if got.Spec.DNSNames[0] != "web.acmeweb.com" || got.Spec.IssuerRef.Kind != "ClusterIssuer" ||
		len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != "Failed" || !got.Status.NotAfter.Equal(&notAfter) {
		t.Errorf("lister returned %+v / %+v", got.Spec, got.Status)
	}
	waitEvent(ctx, t, events, "add web")

	oldPid := c.APIServerPid()
	restart := time.Now()
	if err := c.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted in %s", time.Since(restart).Round(time.Millisecond))
	if c.APIServerPid() == oldPid {
		t.Fatal("RestartAPIServer kept the same process")
	}
	if _, err := cm.CertmanagerV1().Certificates(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("the Certificate after the restart: %v", err)
	}
	if _, err := cm.CertmanagerV1().Certificates(ns).Create(ctx, testCertificate(ns, "after"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The informer's watch broke with the old process; it re-lists or
	// re-watches and delivers the new object.
	waitEvent(ctx, t, events, "add after")
	if _, err := lister.Certificates(ns).Get("after"); err != nil {
		t.Errorf("lister after the restart: %v", err)
	}
}

func waitEvent(ctx context.Context, t *testing.T, events <-chan string, want string) {
	t.Helper()
	for {
		select {
		case e := <-events:
			if e == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no informer event %q: %v", want, ctx.Err())
		}
	}
}

// TestStartErrors: a process that cannot start is reported with its name.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		desc string
		opts Options
		want string
	}{
		{"etcd exits at once", Options{EtcdBin: "/bin/false", APIServerBin: "/bin/false"}, "etcd (pid"},
		{"missing etcd binary", Options{EtcdBin: "/nonexistent/etcd", APIServerBin: "/bin/false"}, "/nonexistent/etcd"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.opts.Dir = t.TempDir()
			_, err := Start(ctx, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReadCRDs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("reads the module cache")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		set   CRDSet
		kinds []string
	}{
		{CertManagerCRDs, []string{"Certificate", "CertificateRequest", "Challenge", "ClusterIssuer", "Issuer", "Order"}},
		{PrometheusOperatorCRDs, []string{"PodMonitor", "PrometheusRule", "ServiceMonitor"}},
	} {
		crds, version, err := tc.set.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, crd := range crds {
			kinds = append(kinds, crd.Spec.Names.Kind)
			if !servesV1(crd) {
				t.Errorf("%s %s: %s serves no v1", tc.set.Name, version, crd.Name)
			}
		}
		if got, want := fmt.Sprint(slices.Sorted(slices.Values(kinds))), fmt.Sprint(tc.kinds); got != want {
			t.Errorf("%s %s: kinds %s, want %s", tc.set.Name, version, got, want)
		}
		t.Logf("%s CRDs from module version %s", tc.set.Name, version)
	}
}

func servesV1(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1" && v.Served && v.Storage {
			return true
		}
	}
	return false
}
