package renewals_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acmediag/acmediag/probes/renewals"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/kube"
)

// runWatcher runs w until the test ends.
func runWatcher(t *testing.T, w *renewals.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// sighting is one probe run's observation as the daemon's store keeps it.
func sighting(name, vantage string, at time.Time, fs ...reports.Finding) reports.Observation {
	return reports.Observation{Name: name, Challenge: reports.HTTP01, Kind: "http-01", Start: at, Duration: 10 * time.Second,
		Vantage: reports.Vantage{Name: vantage, Kind: reports.External}, Findings: fs}.Finish()
}

// The watch on a real API server with cert-manager's CRDs: the cluster's
// names become targets with the solver cert-manager would pick; a renewal
// refused by the CA is explained by what the vantages saw (one Event per
// attempt, through an API server restart); the renewal rule flips as
// renewalTime enters the horizon; a stuck self-check while the remote
// perspectives pass is certmanager.self_check_blocked; an Issuer whose
// account Secret is missing is issuer.not_ready.
func TestWatcher(t *testing.T) {
	c := startCluster(t, kube.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin := clientsFor(t, c, c.AdminToken())
	const ns = "shop"
	if err := kube.EnsureNamespace(ctx, admin.kube, ns); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	clock := &testClock{now: now}
	s := newSink()
	w, err := renewals.New(renewals.Config{Events: true, Interval: 200 * time.Millisecond, StuckAfter: 10 * time.Minute, Retry: time.Second},
		s.options(admin, clock, t))
	if err != nil {
		t.Fatal(err)
	}

	zone := "shop.example"
	acmeIssuer(ctx, t, admin, ns, "le", []cmacme.ACMEChallengeSolver{
		{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{Name: "web"}}},
		{Selector: &cmacme.CertificateDNSNameSelector{DNSZones: []string{"internal." + zone}},
			DNS01: &cmacme.ACMEChallengeSolverDNS01{RFC2136: &cmacme.ACMEIssuerDNS01ProviderRFC2136{Nameserver: "192.0.2.53"}}},
	})
	notBefore := now.Add(-60 * 24 * time.Hour)
	www := issuedCertificate(ctx, t, admin, ns, "www", "le", []string{"www." + zone, "api.internal." + zone}, nil,
		notBefore, notBefore.Add(90*24*time.Hour-time.Second), now.Add(10*24*time.Hour))
	runWatcher(t, w)

	t.Run("targets with cert-manager's solver", func(t *testing.T) {
		eventually(ctx, t, "targets", func() error {
			a, ok1 := s.target("www." + zone)
			b, ok2 := s.target("api.internal." + zone)
			if !ok1 || !ok2 {
				return fmt.Errorf("targets %v", s.targetList())
			}
			if a.Challenge != reports.HTTP01 || a.Solver != "http01 (ingress web)" || a.Certificate != ns+"/www" || a.Issuer != "Issuer/shop/le" {
				return fmt.Errorf("www: %+v", a)
			}
			if b.Challenge != reports.DNS01 || !strings.HasPrefix(b.Solver, "dns01 (rfc2136 at 192.0.2.53)") {
				return fmt.Errorf("api: %+v", b)
			}
			return nil
		})
		// A Certificate for a name nothing resolves is a target like any
		// other: the probes say dns.nxdomain.
		ghost := issuedCertificate(ctx, t, admin, ns, "ghost", "le", []string{"no-such-name." + zone}, nil, notBefore, notBefore.Add(90*24*time.Hour), now.Add(10*24*time.Hour))
		eventually(ctx, t, "the ghost's target", func() error {
			if _, ok := s.target("no-such-name." + zone); !ok {
				return errors.New("missing")
			}
			return nil
		})
		if err := admin.cm.CertmanagerV1().Certificates(ns).Delete(ctx, ghost.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(ctx, t, "the deleted Certificate's target and observation go", func() error {
			if _, ok := s.target("no-such-name." + zone); ok {
				return errors.New("still a target")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.forgot["no-such-name."+zone] {
				return errors.New("not forgotten")
			}
			return nil
		})
	})

	t.Run("renewal.at_risk flips as renewalTime enters the horizon", func(t *testing.T) {
		name := "www." + zone
		s.mu.Lock()
		s.failing[name] = []reports.Code{reports.CodeHTTP01ConnectTimeout}
		s.mu.Unlock()
		// renewalTime is 10 days away: outside the 7-day horizon.
		eventually(ctx, t, "no risk 10 days ahead", func() error {
			if cs := s.codes(name); len(cs) != 0 {
				return fmt.Errorf("codes %v", cs)
			}
			return nil
		})
		clock.Set(now.Add(4 * 24 * time.Hour)) // 6 days ahead
		eventually(ctx, t, "at risk 6 days ahead", func() error {
			f, ok := s.finding(name, reports.CodeRenewalAtRisk)
			if !ok {
				return fmt.Errorf("codes %v", s.codes(name))
			}
			if !strings.Contains(f.Detail, "http01.connect_timeout") || f.Evidence["certificate"] != ns+"/www" {
				return fmt.Errorf("detail %q evidence %v", f.Detail, f.Evidence)
			}
			return nil
		})
		s.mu.Lock()
		delete(s.failing, name) // the path passes again
		s.mu.Unlock()
		eventually(ctx, t, "no risk once the path passes", func() error {
			if slices.Contains(s.codes(name), reports.CodeRenewalAtRisk) {
				return errors.New("still at risk")
			}
			return nil
		})
		clock.Set(now.Add(11 * 24 * time.Hour)) // renewalTime passed a day ago
		eventually(ctx, t, "overdue", func() error {
			if !slices.Contains(s.codes(name), reports.CodeRenewalOverdue) {
				return fmt.Errorf("codes %v", s.codes(name))
			}
			return nil
		})
		clock.Set(now)
	})

	name := "www." + zone
	t0 := time.Now()
	// What the vantages saw around the attempt: us-east times out
	// connecting, eu-west and ap-south fetch the token.
	s.mu.Lock()
	s.sighting[name] = []reports.Observation{
		sighting(name, "us-east", t0.Add(-30*time.Second), reports.New(reports.CodeHTTP01ConnectTimeout, name,
			"connecting to 192.0.2.80:80 timed out after 10s").WithProblem(reports.ProblemConnection, "192.0.2.80: Fetching http://"+name+"/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)")),
		sighting(name, "eu-west", t0.Add(-25*time.Second)),
		sighting(name, "ap-south", t0.Add(-20*time.Second)),
	}
	s.sighting["api.internal."+zone] = nil
	s.failing[name] = []reports.Code{reports.CodeHTTP01ConnectTimeout}
	s.mu.Unlock()
	connProblem := "urn:ietf:params:acme:error:connection: 192.0.2.80: Fetching http://" + name + "/.well-known/acme-challenge/tok: Timeout during connect (likely firewall problem)"

	t.Run("a refused renewal gets one Event naming the root cause and the vantage", func(t *testing.T) {
		a := startRenewal(ctx, t, admin, www, 1, name, cmacme.ACMEChallengeTypeHTTP01, time.Now())
		failRenewal(ctx, t, admin, a, connProblem)
		var msg string
		eventually(ctx, t, "the Event", func() error {
			evs, err := diagnoses(ctx, admin, ns, "Certificate", "www")
			if err != nil || len(evs) != 1 {
				return fmt.Errorf("%d events, %v", len(evs), err)
			}
			msg = evs[0].Message
			if evs[0].Type != "Warning" || evs[0].InvolvedObject.UID != www.UID {
				return fmt.Errorf("event %+v", evs[0])
			}
			return nil
		})
		if !strings.HasPrefix(msg, "http01.connect_timeout from us-east: us-east (http-01 probe") || !strings.Contains(msg, "Timeout during connect") {
			t.Errorf("message %q", msg)
		}
		eventually(ctx, t, "renewal.failed", func() error {
			f, ok := s.finding(name, reports.CodeRenewalFailed)
			if !ok {
				return fmt.Errorf("codes %v", s.codes(name))
			}
			causes, _ := f.Evidence["root_causes"].([]reports.Cause)
			if len(causes) == 0 || causes[0].Code != reports.CodeHTTP01ConnectTimeout || !slices.Equal(causes[0].Vantages, []string{"us-east"}) || !causes[0].MatchesProblem {
				return fmt.Errorf("causes %+v", causes)
			}
			if !slices.Contains(s.codes(name), reports.CodeRenewalBackoff) {
				return fmt.Errorf("no backoff in %v", s.codes(name))
			}
			return nil
		})
	})

	t.Run("the API server restarts mid-watch: no attempt lost, no Event twice", func(t *testing.T) {
		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		cur, err := admin.cm.CertmanagerV1().Certificates(ns).Get(ctx, "www", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a := startRenewal(ctx, t, admin, cur, 2, name, cmacme.ACMEChallengeTypeHTTP01, time.Now())
		failRenewal(ctx, t, admin, a, connProblem)
		eventually(ctx, t, "the second attempt's Event", func() error {
			evs, err := diagnoses(ctx, admin, ns, "Certificate", "www")
			if err != nil || len(evs) != 2 {
				return fmt.Errorf("%d events, %v", len(evs), err)
			}
			return nil
		})
		// A new watcher (a restart, a new leader) sees both attempts again
		// and writes nothing new.
		s2 := newSink()
		s2.sighting, s2.failing = s.sighting, s.failing
		w2, err := renewals.New(renewals.Config{Events: true, Interval: time.Hour}, s2.options(admin, clock, t))
		if err != nil {
			t.Fatal(err)
		}
		ctx2, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w2.Run(ctx2) }()
		eventually(ctx, t, "the second watcher's findings", func() error {
			if _, ok := s2.finding(name, reports.CodeRenewalFailed); !ok {
				return errors.New("no renewal.failed yet")
			}
			return nil
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		evs, err := diagnoses(ctx, admin, ns, "Certificate", "www")
		if err != nil || len(evs) != 2 {
			t.Fatalf("%d events after a second watcher, %v", len(evs), err)
		}
	})

	t.Run("a Challenge stuck in the self-check while the CA's view passes", func(t *testing.T) {
		s.mu.Lock()
		delete(s.failing, name)
		s.sighting[name] = append(s.sighting[name], reports.Observation{Name: name, Challenge: reports.HTTP01, Kind: "http-01", Start: time.Now(),
			Vantage: reports.Vantage{Name: "cluster", Kind: reports.Cluster}, Findings: []reports.Finding{
				reports.New(reports.CodeHTTP01ConnectTimeout, name, "connecting to 192.0.2.80:80 from inside the cluster timed out (no hairpin NAT)")}}.Finish())
		s.mu.Unlock()
		cur, err := admin.cm.CertmanagerV1().Certificates(ns).Get(ctx, "www", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a := startRenewal(ctx, t, admin, cur, 3, name, cmacme.ACMEChallengeTypeHTTP01, time.Now())
		clock.Set(time.Now().Add(11 * time.Minute)) // past stuck_after
		defer clock.Set(now)
		eventually(ctx, t, "Events on the Certificate and the Challenge", func() error {
			evs, err := diagnoses(ctx, admin, ns, "Challenge", a.Challenge.Name)
			if err != nil || len(evs) != 1 {
				return fmt.Errorf("%d events on the Challenge, %v", len(evs), err)
			}
			if !strings.HasPrefix(evs[0].Message, "certmanager.self_check_blocked: the remote perspectives pass") || !strings.Contains(evs[0].Message, "cluster") {
				return fmt.Errorf("message %q", evs[0].Message)
			}
			crtEvs, err := diagnoses(ctx, admin, ns, "Certificate", "www")
			if err != nil || len(crtEvs) != 3 {
				return fmt.Errorf("%d events on the Certificate, %v", len(crtEvs), err)
			}
			return nil
		})
	})

	t.Run("an Issuer whose account Secret is missing", func(t *testing.T) {
		is := acmeIssuer(ctx, t, admin, ns, "broken", []cmacme.ACMEChallengeSolver{{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}})
		setIssuerReady(ctx, t, admin, is, cmmeta.ConditionFalse, "ErrVerifyACMEAccount", `Failed to verify ACME account: secrets "broken-account" not found`)
		issuedCertificate(ctx, t, admin, ns, "blog", "broken", []string{"blog." + zone}, nil, notBefore, notBefore.Add(90*24*time.Hour), now.Add(10*24*time.Hour))
		eventually(ctx, t, "issuer.not_ready", func() error {
			f, ok := s.finding("blog."+zone, reports.CodeIssuerNotReady)
			if !ok {
				return fmt.Errorf("codes %v", s.codes("blog."+zone))
			}
			if !strings.Contains(f.Detail, `secrets "broken-account" not found`) || !strings.Contains(f.Detail, "Issuer/shop/broken") {
				return fmt.Errorf("detail %q", f.Detail)
			}
			return nil
		})
	})
}

// Without cert-manager's CRDs the watch says so and waits; it starts by
// itself once they are installed.
func TestWatcherWithoutCRDs(t *testing.T) {
	c := startCluster(t, kube.Options{SkipCertManagerCRDs: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := clientsFor(t, c, c.AdminToken())
	s := newSink()
	w, err := renewals.New(renewals.Config{Retry: 200 * time.Millisecond}, s.options(admin, nil, t))
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	eventually(ctx, t, "certmanager.crds_missing", func() error {
		fs := w.Findings()
		if len(fs) != 1 || fs[0].Code != reports.CodeCertManagerCRDsMissing || !strings.Contains(fs[0].Detail, "certificates.cert-manager.io") {
			return fmt.Errorf("findings %+v", fs)
		}
		return nil
	})
	if err := c.InstallCRDs(ctx, kube.CertManagerCRDs); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the watch starts", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.updates == 0 || len(w.Findings()) != 0 {
			return fmt.Errorf("%d target updates, findings %v", s.updates, w.Findings())
		}
		return nil
	})
}

// RBAC: the ServiceAccount bound to the chart's rules can make every call
// the watch makes (it runs without a finding and writes its Events), and
// cannot read Secrets or write cert-manager's resources; one bound to
// nothing gets certmanager.forbidden naming the verb and the resource.
func TestWatcherRBAC(t *testing.T) {
	c := startCluster(t, kube.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := clientsFor(t, c, c.AdminToken())
	const ns = "acmediag"
	token := bindChartRules(ctx, t, c, admin, ns, "acmediag")
	sa := clientsFor(t, c, token)

	const app = "app"
	if err := kube.EnsureNamespace(ctx, admin.kube, app); err != nil {
		t.Fatal(err)
	}
	acmeIssuer(ctx, t, admin, app, "le", []cmacme.ACMEChallengeSolver{{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}})
	now := time.Now()
	crt := issuedCertificate(ctx, t, admin, app, "web", "le", []string{"web.app.example"}, nil, now.Add(-60*24*time.Hour), now.Add(30*24*time.Hour), now.Add(10*24*time.Hour))

	s := newSink()
	w, err := renewals.New(renewals.Config{Events: true, Retry: 200 * time.Millisecond}, s.options(sa, nil, t))
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	eventually(ctx, t, "targets through the ServiceAccount", func() error {
		if _, ok := s.target("web.app.example"); !ok {
			return errors.New("no target")
		}
		return nil
	})
	a := startRenewal(ctx, t, admin, crt, 1, "web.app.example", cmacme.ACMEChallengeTypeHTTP01, now)
	failRenewal(ctx, t, admin, a, "urn:ietf:params:acme:error:unauthorized: Invalid response from http://web.app.example/.well-known/acme-challenge/x: 404")
	eventually(ctx, t, "the Event written as the ServiceAccount", func() error {
		evs, err := diagnoses(ctx, admin, app, "Certificate", "web")
		if err != nil || len(evs) != 1 {
			return fmt.Errorf("%d events, %v", len(evs), err)
		}
		if !strings.HasPrefix(evs[0].Message, "renewal.failed: no vantage observed a problem") {
			return fmt.Errorf("message %q", evs[0].Message)
		}
		return nil
	})
	if fs := w.Findings(); len(fs) != 0 {
		t.Errorf("the chart's rules: findings %+v", fs)
	}

	for _, tc := range []struct {
		verb, group, resource, sub string
		allowed                    bool
	}{
		{"get", "", "secrets", "", false},
		{"list", "", "secrets", "", false},
		{"create", "cert-manager.io", "certificates", "", false},
		{"update", "cert-manager.io", "certificates", "status", false},
		{"patch", "acme.cert-manager.io", "challenges", "status", false},
		{"delete", "acme.cert-manager.io", "orders", "", false},
		{"watch", "acme.cert-manager.io", "challenges", "", true},
		{"create", "", "events", "", true},
	} {
		r, err := sa.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: app, Verb: tc.verb, Group: tc.group, Resource: tc.resource, Subresource: tc.sub}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != tc.allowed {
			t.Errorf("%s %s.%s/%s: allowed %v, want %v", tc.verb, tc.resource, tc.group, tc.sub, r.Status.Allowed, tc.allowed)
		}
	}

	nobodyToken, err := c.TokenFor(ctx, ns, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := renewals.New(renewals.Config{Retry: time.Hour}, newSink().options(clientsFor(t, c, nobodyToken), nil, t))
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w2)
	eventually(ctx, t, "certmanager.forbidden", func() error {
		fs := w2.Findings()
		var details []string
		for _, f := range fs {
			if f.Code == reports.CodeCertManagerForbidden {
				details = append(details, f.Detail)
			}
		}
		if !slices.ContainsFunc(details, func(d string) bool {
			return strings.HasPrefix(d, "the ServiceAccount may not list certificates.cert-manager.io in every namespace")
		}) || !slices.ContainsFunc(details, func(d string) bool {
			return strings.HasPrefix(d, "the ServiceAccount may not create events in every namespace")
		}) {
			return fmt.Errorf("findings %v", details)
		}
		return nil
	})
}
