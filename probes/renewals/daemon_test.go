package renewals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/kube"
)

// daemonUniversePort is this package's universe (DNS on 11450).
const daemonUniversePort = 11450

// The whole path on real components: the daemon (kube.enabled) takes a
// Certificate's name from the API server as a target and probes it from
// the universe's vantages, where a firewall drops us-east (the
// mpic-partial scenario); cert-manager's renewal is then refused by the
// CA with a connection problem, and the RenewalDiagnosis Event on the
// Certificate names http01.connect_timeout and us-east.
func TestDaemonExplainsAFirewalledRenewal(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("the universe's firewall needs root")
	}
	c := startCluster(t, kube.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: daemonUniversePort, Logger: zaptest.NewLogger(t).Named("universe")})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("the universe did not start: %v", err)
	}
	t.Cleanup(func() { _ = u.Close() })
	domain := ""
	for _, sc := range testenv.Catalogue() {
		if sc.Name == "mpic-partial" {
			domain = sc.Domain
		}
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}

	s := probes.DefaultSettings()
	s.Listen = "127.0.0.1:0"
	s.Vantages = nil
	for _, v := range u.Vantages() {
		s.Vantages = append(s.Vantages, probes.VantageSettings{Name: v.Name, Source: v.Addr, Resolver: v.Resolver, RIR: v.RIR, Region: v.Region, Kind: v.Kind})
	}
	s.DNS.Roots, s.DNS.DNSPort, s.DNS.TrustAnchor = u.Roots(), u.Port(), u.TrustAnchorFile()
	s.DNS.Resolvers, s.DNS.AllowAddresses = []string{u.Resolver()}, []string{"127.0.0.0/8", "::1/128"}
	s.HTTP.HTTPPort, s.HTTP.HTTPSPort = u.HTTPPort(), u.HTTPSPort()
	s.Kube = probes.KubeSettings{Enabled: true, Kubeconfig: kubeconfig, Resync: probes.Duration(10 * time.Minute), Interval: probes.Duration(time.Second),
		StuckAfter: probes.Duration(5 * time.Minute), Retry: probes.Duration(time.Second), Events: true}
	d, err := run.NewDaemon(s, run.DaemonOptions{Logger: zaptest.NewLogger(t).Named("daemon")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- d.Serve(dctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	admin := clientsFor(t, c, c.AdminToken())
	const ns = "web"
	if err := kube.EnsureNamespace(ctx, admin.kube, ns); err != nil {
		t.Fatal(err)
	}
	acmeIssuer(ctx, t, admin, ns, "le", []cmacme.ACMEChallengeSolver{{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}})
	now := time.Now()
	crt := issuedCertificate(ctx, t, admin, ns, "site", "le", []string{domain}, nil, now.Add(-60*24*time.Hour), now.Add(30*24*time.Hour), now.Add(time.Hour))

	eventually(ctx, t, "the Certificate's name probed from us-east", func() error {
		if !slices.ContainsFunc(d.Plan().Targets, func(t probes.Target) bool { return t.Name == domain }) {
			return fmt.Errorf("not a target yet")
		}
		for _, o := range d.Observations(domain, time.Time{}) {
			if o.Vantage.Name == "us-east" && o.Kind == probes.KindHTTP01 && slices.ContainsFunc(o.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeHTTP01ConnectTimeout }) {
				return nil
			}
		}
		return fmt.Errorf("no http01.connect_timeout from us-east yet")
	})

	a := startRenewal(ctx, t, admin, crt, 1, domain, cmacme.ACMEChallengeTypeHTTP01, time.Now())
	// While the Challenge waits, the daemon probes the name with its own
	// token and key authorization: what the CA will fetch.
	eventually(ctx, t, "the open Challenge's token in the plan", func() error {
		i := slices.IndexFunc(d.Plan().Targets, func(t probes.Target) bool { return t.Name == domain })
		if i < 0 {
			return fmt.Errorf("not a target")
		}
		if tg := d.Plan().Targets[i]; tg.Token != a.Challenge.Spec.Token || tg.KeyAuth != a.Challenge.Spec.Key {
			return fmt.Errorf("target %+v", tg)
		}
		return nil
	})
	failRenewal(ctx, t, admin, a, "urn:ietf:params:acme:error:connection: During secondary validation: 127.80.0.1: Fetching http://"+domain+"/.well-known/acme-challenge/"+a.Challenge.Spec.Token+": Timeout during connect (likely firewall problem)")
	eventually(ctx, t, "the Event", func() error {
		evs, err := diagnoses(ctx, admin, ns, "Certificate", "site")
		if err != nil || len(evs) != 1 {
			return fmt.Errorf("%d events, %v", len(evs), err)
		}
		if m := evs[0].Message; !strings.HasPrefix(m, "http01.connect_timeout from us-east: us-east (http-01 probe") {
			return fmt.Errorf("message %q", m)
		}
		return nil
	})
	// The leader serves the Certificate's timeline from the watch's caches:
	// the failed attempt with its order and challenge.
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/v1/certificates?namespace=" + ns + "&name=site")
	if err != nil {
		t.Fatal(err)
	}
	var tl reports.Timeline
	err = json.NewDecoder(resp.Body).Decode(&tl)
	resp.Body.Close()
	switch {
	case err != nil || resp.StatusCode != http.StatusOK:
		t.Errorf("GET /api/v1/certificates: %d, %v", resp.StatusCode, err)
	case len(tl.Attempts) != 1 || tl.Attempts[0].Order == nil || len(tl.Attempts[0].Order.Challenges) != 1:
		t.Errorf("the timeline is not the one attempt with its order and challenge: %+v", tl)
	case tl.Attempts[0].Outcome == reports.OutcomeIssued:
		t.Errorf("the failed attempt reads %q", tl.Attempts[0].Outcome)
	}
	v := d.View(domain)
	if !slices.ContainsFunc(v.Report.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeRenewalFailed }) {
		t.Errorf("the daemon's report has no renewal.failed: %v", v.Report.Findings)
	}

	// A dns-01 renewal refused because the rfc2136 solver wrote to a hidden
	// primary the public secondaries never hear from: the Event names the
	// broken part, from the solver's configuration asked with the
	// Challenge's own key, ahead of what the probes saw.
	const hidden = "www.hidden-primary.com"
	primary := u.ServerAddr(testenv.HiddenPrimaryServer)
	rfc := cmacme.ACMEChallengeSolver{DNS01: &cmacme.ACMEChallengeSolverDNS01{RFC2136: &cmacme.ACMEIssuerDNS01ProviderRFC2136{Nameserver: primary}}}
	acmeIssuer(ctx, t, admin, ns, "le-dns", []cmacme.ACMEChallengeSolver{rfc})
	dcrt := issuedCertificate(ctx, t, admin, ns, "hidden", "le-dns", []string{hidden}, nil, now.Add(-60*24*time.Hour), now.Add(30*24*time.Hour), now.Add(time.Hour))
	da, err := kube.StartRenewal(ctx, admin.cm, dcrt, kube.Renewal{Attempt: 1, Name: hidden, Type: cmacme.ACMEChallengeTypeDNS01, PresentedAt: time.Now(),
		Key: testenv.Token(testenv.HiddenPrimaryScenario), Solver: &rfc,
		Reason: `Waiting for DNS-01 challenge propagation: DNS record for "` + hidden + `" not yet propagated`})
	if err != nil {
		t.Fatal(err)
	}
	failRenewal(ctx, t, admin, da, "urn:ietf:params:acme:error:unauthorized: No TXT record found at _acme-challenge."+hidden)
	eventually(ctx, t, "the hidden primary's Event", func() error {
		evs, err := diagnoses(ctx, admin, ns, "Certificate", "hidden")
		if err != nil || len(evs) != 1 {
			return fmt.Errorf("%d events, %v", len(evs), err)
		}
		if m := evs[0].Message; !strings.HasPrefix(m, "certmanager.record_not_replicated from the solver's configuration: present at the primary "+primary+", missing at ns1.hidden-primary.com") {
			return fmt.Errorf("message %q", m)
		}
		return nil
	})

	// The Certificate goes: its name leaves the plan and the store.
	if err := admin.cm.CertmanagerV1().Certificates(ns).Delete(ctx, crt.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the name leaves the plan", func() error {
		if slices.ContainsFunc(d.Plan().Targets, func(t probes.Target) bool { return t.Name == domain }) {
			return fmt.Errorf("still a target")
		}
		if n := len(d.Observations(domain, time.Time{})); n != 0 {
			return fmt.Errorf("%d observations left", n)
		}
		return nil
	})
}
