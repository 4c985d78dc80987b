package renewals

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acmediag/acmediag/reports"
)

// call is one kind of request the watch makes.
type call struct {
	verb, group, resource string
	namespaced            bool
	// optional: without it the watch still runs (no Events).
	optional bool
}

// calls are every request the watch makes: the chart's ClusterRole
// (deploy/helm/acmediag/files/rbac-rules.yaml) allows each.
var calls = func() []call {
	var out []call
	for _, r := range []struct {
		group, resource string
		namespaced      bool
	}{
		{"cert-manager.io", resCertificate, true}, {"cert-manager.io", resRequest, true}, {"cert-manager.io", resIssuer, true},
		{"cert-manager.io", resClusterIssuer, false}, {"acme.cert-manager.io", resOrder, true}, {"acme.cert-manager.io", resChallenge, true},
	} {
		for _, v := range []string{"list", "watch"} {
			out = append(out, call{verb: v, group: r.group, resource: r.resource, namespaced: r.namespaced})
		}
	}
	return append(out, call{verb: "create", resource: "events", namespaced: true, optional: true})
}()

// crdGroups are the API groups cert-manager's CRDs serve, and the
// resources each must hold.
var crdGroups = map[string][]string{
	"cert-manager.io/v1":      {resCertificate, resRequest, resIssuer, resClusterIssuer},
	"acme.cert-manager.io/v1": {resOrder, resChallenge},
}

// preflight says what keeps the watch from starting: CRDs missing
// (certmanager.crds_missing), calls forbidden (certmanager.forbidden, one
// per verb and resource); an error when the API server cannot be asked.
// A forbidden optional call (Events) is reported but does not stop it.
func (w *Watcher) preflight(ctx context.Context) (fs []reports.Finding, blocking bool, err error) {
	var missing []string
	for _, gv := range []string{"cert-manager.io/v1", "acme.cert-manager.io/v1"} {
		rl, err := w.opts.Kube.Discovery().ServerResourcesForGroupVersion(gv)
		switch {
		case apierrors.IsNotFound(err):
			for _, r := range crdGroups[gv] {
				missing = append(missing, r+"."+strings.TrimSuffix(gv, "/v1"))
			}
			continue
		case err != nil:
			return nil, false, fmt.Errorf("renewals: discovery of %s: %w", gv, err)
		}
		for _, r := range crdGroups[gv] {
			if !slices.ContainsFunc(rl.APIResources, func(a metav1.APIResource) bool { return a.Name == r }) {
				missing = append(missing, r+"."+strings.TrimSuffix(gv, "/v1"))
			}
		}
	}
	if len(missing) > 0 {
		fs = append(fs, reports.New(reports.CodeCertManagerCRDsMissing, "",
			fmt.Sprintf("the API server serves no %s: cert-manager's CRDs are not installed; the YAML targets are still probed, and the watch starts when the CRDs appear (looking again every %s)",
				strings.Join(missing, ", "), w.cfg.Retry)).With("missing", missing))
		return fs, true, nil
	}
	nss := w.cfg.Namespaces
	if len(nss) == 0 {
		nss = []string{metav1.NamespaceAll}
	}
	for _, c := range calls {
		scopes := nss
		if !c.namespaced {
			scopes = []string{metav1.NamespaceAll}
		}
		for _, ns := range scopes {
			r, err := w.opts.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
				Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
					Namespace: ns, Verb: c.verb, Group: c.group, Resource: c.resource}},
			}, metav1.CreateOptions{})
			if err != nil {
				return nil, false, fmt.Errorf("renewals: asking whether %s %s is allowed: %w", c.verb, c.resource, err)
			}
			if r.Status.Allowed {
				continue
			}
			where := "in every namespace"
			if ns != "" {
				where = "in namespace " + ns
			} else if !c.namespaced {
				where = "(cluster-scoped)"
			}
			res := c.resource
			if c.group != "" {
				res += "." + c.group
			}
			d := fmt.Sprintf("the ServiceAccount may not %s %s %s", c.verb, res, where)
			if c.optional {
				d += ": the watch runs, but writes no RenewalDiagnosis Events"
			} else {
				blocking = true
				d += fmt.Sprintf(": the watch waits, looking again every %s", w.cfg.Retry)
			}
			if r.Status.Reason != "" {
				d += " (" + r.Status.Reason + ")"
			}
			fs = append(fs, reports.New(reports.CodeCertManagerForbidden, "", d).
				With("verb", c.verb).With("resource", res).With("namespace", ns))
		}
	}
	return fs, blocking, nil
}
