package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/kube"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// diagnose --kube against a real kube-apiserver holding cert-manager's
// objects as its controller writes them (owner references, the revision
// annotation, status through the status subresource, its condition
// reasons and messages), for a renewal stuck on a dns-01 Challenge whose
// rfc2136 solver writes to a hidden primary that the public secondaries
// never hear from (testenv.HiddenPrimaryScenario).
func TestDiagnoseKube(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	if binary == "" {
		t.Skip("the binary was not built (-short)")
	}
	bins := toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A universe of its own (no Pebble: nothing is ordered), on a port no
	// other test package uses.
	u, err := testenv.Start(ctx, testenv.Options{Port: kubeUniversePort, WorkDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		if os.Getenv("CI") == "true" || os.Geteuid() == 0 {
			t.Fatal(err)
		}
		t.Skipf("the test universe did not start: %v", err)
	}
	defer u.Close()
	c, err := kube.Start(ctx, kube.Options{Dir: t.TempDir(), EtcdBin: bins[0], APIServerBin: bins[1], Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	core, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureNamespace(ctx, core, "shop"); err != nil {
		t.Fatal(err)
	}
	cm, err := versioned.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	primary := u.ServerAddr(testenv.HiddenPrimaryServer)
	key := testenv.Token(testenv.HiddenPrimaryScenario)
	objs := stageStuckRenewal(ctx, t, cm, "www.hidden-primary.com", primary, key)
	base := u.DiagnoseArgs(testenv.Scenario{})
	base = append([]string{"diagnose", "--kube", "--kubeconfig", kubeconfig, "-n", "shop"}, base[:len(base)-1]...)

	t.Run("challenge", func(t *testing.T) {
		rep, out, code := diagnoseJSON(t, append(base, "-o", "json", "challenge/"+objs.challenge)...)
		if code != 1 {
			t.Errorf("exit %d, want 1 (the challenge fails)", code)
		}
		i := slices.IndexFunc(rep.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeCertManagerRecordNotReplicated })
		if i < 0 {
			t.Fatalf("no %s:\n%s", reports.CodeCertManagerRecordNotReplicated, out)
		}
		f := rep.Findings[i]
		ns1, ns2 := u.Server("hidden-primary.com-ns1").Addrs()[0], u.Server("hidden-primary.com-ns2").Addrs()[0]
		want := "present at the primary " + primary + ", missing at ns1.hidden-primary.com (" + ns1 + ") and ns2.hidden-primary.com (" + ns2 +
			"): zone transfer or NOTIFY is not reaching the secondaries"
		if !strings.Contains(f.Detail, want) || f.Name != "www.hidden-primary.com" || f.Severity != reports.Error {
			t.Errorf("finding %+v\nwant detail with %q", f, want)
		}
		if !slices.ContainsFunc(rep.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeDNS01TXTMissing }) {
			t.Errorf("the public view (dns01.txt_missing) is missing:\n%s", out)
		}
		if len(rep.Timelines) != 1 || rep.Timelines[0].Certificate != "www" {
			t.Errorf("timelines %+v", rep.Timelines)
		}
	})
	t.Run("certificate", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, append(base, "certificate/www")...)
		t.Logf("diagnose --kube certificate/www:\n%s", stdout)
		if code != 1 {
			t.Errorf("exit %d, want 1; stderr %s", code, stderr)
		}
		for _, want := range []string{
			"Certificate shop/www: Ready=True (Ready)",
			"#1 www-1: issued",
			"#2 www-2: pending, order " + objs.order + " pending — www.hidden-primary.com: Waiting for DNS-01 challenge propagation: DNS record for \"www.hidden-primary.com\" not yet propagated",
			"challenge " + objs.challenge + " dns-01 www.hidden-primary.com: pending via rfc2136 at " + primary,
			"certmanager.record_not_replicated",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("markdown order", func(t *testing.T) {
		stdout, _, _ := runBinary(t, append(base, "-o", "markdown", "order/"+objs.order)...)
		if !strings.Contains(stdout, "## Renewal timeline") || !strings.Contains(stdout, "certmanager.record_not_replicated") {
			t.Errorf("markdown:\n%s", stdout)
		}
	})
	t.Run("http-01 ingress route missing", func(t *testing.T) {
		// A Challenge on its own (its Order deleted): still checked with its
		// token and key. The universe's web server answers 404 for a token
		// it does not know, as a controller without the solver's route does.
		ingress := acmev1.ACMEChallengeSolver{HTTP01: &acmev1.ACMEChallengeSolverHTTP01{Ingress: &acmev1.ACMEChallengeSolverHTTP01Ingress{
			IngressClassName: ptrTo("nginx"), Name: "web"}}}
		ch, err := cm.AcmeV1().Challenges("shop").Create(ctx, &acmev1.Challenge{ObjectMeta: metav1.ObjectMeta{Name: "web-1-1-1", Namespace: "shop"},
			Spec: acmev1.ChallengeSpec{URL: "https://acme.example/chall/9", AuthorizationURL: "https://acme.example/authz/9", DNSName: "www.healthy-unsigned.com",
				Type: acmev1.ACMEChallengeTypeHTTP01, Token: "tok-missing", Key: "tok-missing.thumbprint", Solver: ingress,
				IssuerRef: cmmeta.IssuerReference{Name: "acme", Kind: cmapi.IssuerKind, Group: "cert-manager.io"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ch.Status = acmev1.ChallengeStatus{Processing: true, Presented: true, State: acmev1.Pending,
			Reason: "Waiting for HTTP-01 challenge propagation: wrong status code '404', expected '200'"}
		if _, err := cm.AcmeV1().Challenges("shop").UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		rep, out, code := diagnoseJSON(t, append(base, "-o", "json", "challenge/web-1-1-1")...)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		i := slices.IndexFunc(rep.Findings, func(f reports.Finding) bool {
			return strings.Contains(f.Detail, "the solver's ingress class nginx (editing Ingress web) does not carry it")
		})
		if i < 0 || rep.Findings[i].Code != reports.CodeHTTP01BadStatus && rep.Findings[i].Code != reports.CodeHTTP01NotRouted {
			t.Errorf("no http-01 finding names the ingress solver:\n%s", out)
		}
		if !slices.ContainsFunc(rep.Checks, func(c reports.Check) bool { return c.Name == "certmanager.path" && c.Status == reports.CheckWarn }) {
			t.Errorf("the broken chain is not noted:\n%s", out)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			desc string
			args []string
			code int
			want string
		}{
			{desc: "an object that does not exist", args: []string{"certificate/nope"}, code: 1, want: "certificate/nope not found in namespace shop"},
			{desc: "a kind diagnose does not read", args: []string{"secret/www"}, code: 2, want: "is not certificate, order or challenge"},
			{desc: "names and an object", args: []string{"certificate/www", "www.example.com"}, code: 2, want: "needs one object"},
			{desc: "a token with --kube", args: []string{"--token", "t", "--key-auth", "k", "certificate/www"}, code: 2, want: "takes the challenge, token and key from the cluster"},
		}
		for _, tc := range cases {
			_, stderr, code := runBinary(t, append(base, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.desc, code, stderr, tc.code, tc.want)
			}
		}
	})
}

// kubeUniversePort is the DNS port of TestDiagnoseKube's u.
const kubeUniversePort = 11453

type stagedRenewal struct{ order, challenge string }

// stageStuckRenewal writes a Certificate issued once (revision 1) and
// renewing (revision 2): its requests, the Order of the renewal and its
// dns-01 Challenge, presented and stuck in cert-manager's self-check.
func stageStuckRenewal(ctx context.Context, t *testing.T, cm versioned.Interface, name, nameserver, key string) stagedRenewal {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) *metav1.Time { v := metav1.NewTime(now.Add(d)); return &v }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	solver := acmev1.ACMEChallengeSolver{DNS01: &acmev1.ACMEChallengeSolverDNS01{RFC2136: &acmev1.ACMEIssuerDNS01ProviderRFC2136{Nameserver: nameserver}}}
	issuerRef := cmmeta.IssuerReference{Name: "acme", Kind: cmapi.IssuerKind, Group: "cert-manager.io"}
	iss, err := cm.CertmanagerV1().Issuers("shop").Create(ctx, &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "shop"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{ACME: &acmev1.ACMEIssuer{Server: "https://acme-staging-v02.api.letsencrypt.org/directory",
			PrivateKey: cmmeta.SecretKeySelector{LocalObjectReference: cmmeta.LocalObjectReference{Name: "acme-account"}},
			Solvers:    []acmev1.ACMEChallengeSolver{solver}}}}}, metav1.CreateOptions{})
	must(err)
	iss.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue, Reason: "ACMEAccountRegistered",
		Message: "The ACME account was registered with the ACME server", LastTransitionTime: at(-90 * 24 * time.Hour)}}
	_, err = cm.CertmanagerV1().Issuers("shop").UpdateStatus(ctx, iss, metav1.UpdateOptions{})
	must(err)

	crt, err := cm.CertmanagerV1().Certificates("shop").Create(ctx, &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "www", Namespace: "shop"},
		Spec: cmapi.CertificateSpec{SecretName: "www-tls", DNSNames: []string{name}, IssuerRef: issuerRef}}, metav1.CreateOptions{})
	must(err)
	renewal := at(-time.Hour)
	crt.Status = cmapi.CertificateStatus{Revision: ptrTo(1), NotBefore: at(-60 * 24 * time.Hour), NotAfter: at(30 * 24 * time.Hour), RenewalTime: renewal,
		Conditions: []cmapi.CertificateCondition{
			{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready", Message: "Certificate is up to date and has not expired", LastTransitionTime: at(-60 * 24 * time.Hour)},
			{Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue, Reason: "Renewing",
				Message: "Renewing certificate as renewal was scheduled at " + renewal.String(), LastTransitionTime: renewal},
		}}
	crt, err = cm.CertmanagerV1().Certificates("shop").UpdateStatus(ctx, crt, metav1.UpdateOptions{})
	must(err)
	crtRef := *metav1.NewControllerRef(crt, cmapi.SchemeGroupVersion.WithKind(cmapi.CertificateKind))

	request := func(rev, reason, message string, since time.Duration) *cmapi.CertificateRequest {
		cr, err := cm.CertmanagerV1().CertificateRequests("shop").Create(ctx, &cmapi.CertificateRequest{ObjectMeta: metav1.ObjectMeta{
			Name: "www-" + rev, Namespace: "shop", OwnerReferences: []metav1.OwnerReference{crtRef},
			Annotations: map[string]string{cmapi.CertificateRequestRevisionAnnotationKey: rev, cmapi.CertificateNameKey: "www",
				cmapi.CertificateRequestPrivateKeyAnnotationKey: "www-tls"}},
			Spec: cmapi.CertificateRequestSpec{Request: []byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"), IssuerRef: issuerRef}},
			metav1.CreateOptions{})
		must(err)
		status := cmmeta.ConditionFalse
		if reason == cmapi.CertificateRequestReasonIssued {
			status = cmmeta.ConditionTrue
		}
		cr.Status.Conditions = []cmapi.CertificateRequestCondition{
			{Type: cmapi.CertificateRequestConditionApproved, Status: cmmeta.ConditionTrue, Reason: "cert-manager.io", Message: "Certificate request has been approved by cert-manager.io", LastTransitionTime: at(since)},
			{Type: cmapi.CertificateRequestConditionReady, Status: status, Reason: reason, Message: message, LastTransitionTime: at(since + time.Minute)}}
		cr, err = cm.CertmanagerV1().CertificateRequests("shop").UpdateStatus(ctx, cr, metav1.UpdateOptions{})
		must(err)
		return cr
	}
	request("1", cmapi.CertificateRequestReasonIssued, "Certificate fetched from issuer successfully", -60*24*time.Hour)
	orderName := "www-2-1394245318"
	cr2 := request("2", cmapi.CertificateRequestReasonPending, `Waiting on certificate issuance from order shop/`+orderName+`: "pending"`, -time.Hour)

	order, err := cm.AcmeV1().Orders("shop").Create(ctx, &acmev1.Order{ObjectMeta: metav1.ObjectMeta{Name: orderName, Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cr2, cmapi.SchemeGroupVersion.WithKind(cmapi.CertificateRequestKind))}},
		Spec: acmev1.OrderSpec{Request: cr2.Spec.Request, IssuerRef: issuerRef, DNSNames: []string{name}}}, metav1.CreateOptions{})
	must(err)
	const authz = "https://acme-staging-v02.api.letsencrypt.org/acme/authz/1/2"
	order.Status = acmev1.OrderStatus{URL: "https://acme-staging-v02.api.letsencrypt.org/acme/order/1/2", State: acmev1.Pending,
		FinalizeURL: "https://acme-staging-v02.api.letsencrypt.org/acme/finalize/1/2",
		Authorizations: []acmev1.ACMEAuthorization{{URL: authz, Identifier: name, InitialState: acmev1.Pending,
			Challenges: []acmev1.ACMEChallenge{{URL: authz + "/dns", Token: "tok-dns", Type: "dns-01"}}}}}
	order, err = cm.AcmeV1().Orders("shop").UpdateStatus(ctx, order, metav1.UpdateOptions{})
	must(err)

	ch, err := cm.AcmeV1().Challenges("shop").Create(ctx, &acmev1.Challenge{ObjectMeta: metav1.ObjectMeta{Name: orderName + "-2710334120", Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(order, acmev1.SchemeGroupVersion.WithKind("Order"))},
		Finalizers:      []string{"finalizer.acme.cert-manager.io"}},
		Spec: acmev1.ChallengeSpec{URL: authz + "/dns", AuthorizationURL: authz, DNSName: name, Type: acmev1.ACMEChallengeTypeDNS01,
			Token: "tok-dns", Key: key, Solver: solver, IssuerRef: issuerRef}}, metav1.CreateOptions{})
	must(err)
	ch.Status = acmev1.ChallengeStatus{Processing: true, Presented: true, State: acmev1.Pending,
		Reason: `Waiting for DNS-01 challenge propagation: DNS record for "` + name + `" not yet propagated`}
	_, err = cm.AcmeV1().Challenges("shop").UpdateStatus(ctx, ch, metav1.UpdateOptions{})
	must(err)
	return stagedRenewal{order: orderName, challenge: ch.Name}
}

func ptrTo[T any](v T) *T { return &v }
