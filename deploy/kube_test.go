package deploy

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/acmediag/acmediag/testenv/kube"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// The chart's objects, rendered with everything on, are created on a real
// kube-apiserver (with cert-manager's and prometheus-operator's CRDs): the
// API server accepts every one. Then the ServiceAccount the DaemonSet runs
// as may do exactly what files/rbac-*.yaml say, asked of the API server's
// own authorizer: it reads cert-manager's resources, writes Events and its
// Lease, and can neither read Secrets nor change cert-manager's objects.
func TestChartOnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	bins := toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	h := newHelm(t)
	objs, err := render(t, h, "-f", ciFull)
	if err != nil {
		t.Fatal(err)
	}
	agentObjs, err := render(t, h, "-f", ciAgent)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, agentObjs...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := kube.Start(ctx, kube.Options{Dir: t.TempDir(), EtcdBin: bins[0], APIServerBin: bins[1], PrometheusOperatorCRDs: true,
		Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureNamespace(ctx, cs, "acmediag"); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		remarshalJSON(t, o, &u.Object)
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, gvk.Version)
		if err != nil {
			t.Errorf("%s %s: the API server does not know the kind: %v", gvk.Kind, u.GetName(), err)
			continue
		}
		ri := dyn.Resource(m.Resource)
		var created *unstructured.Unstructured
		if m.Scope.Name() == "namespace" {
			created, err = ri.Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
		} else {
			created, err = ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
		}
		if err != nil {
			t.Errorf("%s %s: refused: %v", gvk.Kind, u.GetName(), err)
			continue
		}
		t.Logf("created %s %s/%s", gvk.Kind, created.GetNamespace(), created.GetName())
	}
	if t.Failed() {
		return
	}

	user := "system:serviceaccount:acmediag:diag-acmediag"
	cases := []struct {
		verb, group, resource, namespace string
		allowed                          bool
	}{
		{"list", "cert-manager.io", "certificates", "", true},
		{"watch", "cert-manager.io", "certificaterequests", "", true},
		{"get", "cert-manager.io", "clusterissuers", "", true},
		{"watch", "cert-manager.io", "issuers", "shop", true},
		{"list", "acme.cert-manager.io", "challenges", "", true},
		{"watch", "acme.cert-manager.io", "orders", "", true},
		{"create", "", "events", "shop", true},
		{"patch", "events.k8s.io", "events", "shop", true},
		{"get", "coordination.k8s.io", "leases", "acmediag", true},
		{"update", "coordination.k8s.io", "leases", "acmediag", true},
		{"watch", "discovery.k8s.io", "endpointslices", "acmediag", true},
		// Never: Secrets, cert-manager's objects written, other namespaces' Leases.
		{"get", "", "secrets", "shop", false},
		{"list", "", "secrets", "", false},
		{"update", "cert-manager.io", "certificates", "shop", false},
		{"patch", "cert-manager.io", "certificates", "shop", false},
		{"delete", "cert-manager.io", "certificaterequests", "shop", false},
		{"create", "cert-manager.io", "certificates", "shop", false},
		{"update", "acme.cert-manager.io", "challenges", "shop", false},
		{"delete", "acme.cert-manager.io", "orders", "shop", false},
		{"update", "coordination.k8s.io", "leases", "kube-system", false},
		{"list", "discovery.k8s.io", "endpointslices", "kube-system", false},
		{"delete", "", "events", "shop", false},
		{"create", "", "pods", "acmediag", false},
	}
	for _, tc := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:acmediag", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: tc.verb, Group: tc.group, Resource: tc.resource, Namespace: tc.namespace}}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.allowed {
			t.Errorf("%s %s.%s in %q: allowed %v, want %v (%s)", tc.verb, tc.resource, tc.group, tc.namespace, got.Status.Allowed, tc.allowed, got.Status.Reason)
		}
	}
}
