package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/kube"
)

// The demo's cluster part (--cluster): a real etcd and kube-apiserver with
// cert-manager's CRDs, an ACME Issuer and three Certificates whose
// renewals the demo drives the way cert-manager's controller would, while
// the daemon watches them (kube.enabled).
const (
	demoNamespace = "shop"
	// A presented Challenge not valid after this long is stuck: short, so
	// the stalled one gets its Event within the demo.
	demoStuckAfter = 15 * time.Second
)

// demoCert is one Certificate of the cluster part.
type demoCert struct {
	role, what string
	scenario   string
	domain     string
	typ        cmacme.ACMEChallengeType
	token, key string
	reason     string // the Challenge's reason while it waits
	crt        *cmapi.Certificate
	attempt    kube.RenewalAttempt
	done       bool // the attempt's end is written
}

// demoCluster is the running cluster part.
type demoCluster struct {
	c          *kube.Cluster
	cm         cmclient.Interface
	kube       kubernetes.Interface
	kubeconfig string
	certs      []*demoCert
}

// demoCerts are the three Certificates: one whose Challenge passes, one
// whose dns-01 Challenge stalls on propagation, one the CA refuses
// because a firewall drops its us-east perspective.
func demoCerts() ([]*demoCert, error) {
	byName := map[string]testenv.Scenario{}
	for _, sc := range testenv.Catalogue() {
		byName[sc.Name] = sc
	}
	certs := []*demoCert{
		{role: "passes", scenario: "web-dual-stack", typ: cmacme.ACMEChallengeTypeHTTP01,
			what: "HTTP-01 served on both addresses: every vantage passes, the Challenge goes valid"},
		{role: "stalls", scenario: "dns01-txt-not-propagated", typ: cmacme.ACMEChallengeTypeDNS01,
			what: "DNS-01: the TXT value is at the primary only; cert-manager's self-check waits for propagation (stuck after " + demoStuckAfter.String() + ")"},
		{role: "firewalled", scenario: "mpic-partial", typ: cmacme.ACMEChallengeTypeHTTP01,
			what: "a firewall drops us-east's packets: the CA's secondary validation times out and the Challenge goes invalid"},
	}
	for _, c := range certs {
		sc, ok := byName[c.scenario]
		if !ok {
			return nil, fmt.Errorf("demo --cluster: the universe has no scenario %q (the firewall needs root)", c.scenario)
		}
		c.domain = sc.Domain
		switch c.typ {
		case cmacme.ACMEChallengeTypeHTTP01:
			c.token, c.key = testenv.Token(c.scenario), testenv.KeyAuth(c.scenario)
		default:
			// The value the scenario's primary serves: the digest
			// cert-manager's solver would have presented.
			c.token, c.key = testenv.Token("demo-"+c.scenario), testenv.Token(c.scenario)
			c.reason = fmt.Sprintf("Waiting for DNS-01 challenge propagation: DNS record for %q not yet propagated", "_acme-challenge."+sc.Domain+".")
		}
	}
	return certs, nil
}

// startDemoCluster starts etcd and kube-apiserver (cert-manager's CRDs
// installed) under dir and writes a kubeconfig for the daemon.
func startDemoCluster(ctx context.Context, w io.Writer, dir string, logger *zap.Logger) (*demoCluster, error) {
	certs, err := demoCerts()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "starting etcd and kube-apiserver with cert-manager's CRDs…\n")
	started := time.Now()
	c, err := kube.Start(ctx, kube.Options{Dir: filepath.Join(dir, "kube"), Logger: logger.Named("kube")})
	if err != nil {
		return nil, fmt.Errorf("demo --cluster: %w", err)
	}
	dc := &demoCluster{c: c, certs: certs, kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := c.Kubeconfig(dc.kubeconfig); err != nil {
		c.Close()
		return nil, fmt.Errorf("demo --cluster: %w", err)
	}
	if dc.cm, err = cmclient.NewForConfig(c.RESTConfig()); err == nil {
		dc.kube, err = kubernetes.NewForConfig(c.RESTConfig())
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("demo --cluster: %w", err)
	}
	fmt.Fprintf(w, "API server ready in %s at %s\n", time.Since(started).Round(time.Millisecond), c.Host())
	return dc, nil
}

func (dc *demoCluster) Close() { dc.c.Close() }

// kubeYAML is the daemon configuration's kube: section.
func (dc *demoCluster) kubeYAML() string {
	return fmt.Sprintf("kube:\n  enabled: true\n  kubeconfig: %s\n  namespaces: [%s]\n  interval: 1s\n  stuck_after: %s\n  retry: 1s\n  events: true\n",
		dc.kubeconfig, demoNamespace, demoStuckAfter)
}

// create writes the Issuer and the Certificates (issued two months ago,
// renewing now) and starts each renewal, as cert-manager's controller
// does: request, order, Challenge presented.
func (dc *demoCluster) create(ctx context.Context, w io.Writer) error {
	if err := kube.EnsureNamespace(ctx, dc.kube, demoNamespace); err != nil {
		return err
	}
	solvers := []cmacme.ACMEChallengeSolver{
		{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}},
		dnsSolver(),
	}
	if _, err := kube.ACMEIssuer(ctx, dc.cm, demoNamespace, "letsencrypt", solvers); err != nil {
		return err
	}
	now := time.Now()
	fmt.Fprintf(w, "cluster: Issuer %s/letsencrypt (ACME) and three Certificates renewing now:\n", demoNamespace)
	for _, c := range dc.certs {
		crt, err := kube.IssuedCertificate(ctx, dc.cm, demoNamespace, c.role, "letsencrypt", []string{c.domain}, nil,
			now.Add(-60*24*time.Hour), now.Add(30*24*time.Hour), now)
		if err != nil {
			return err
		}
		r := kube.Renewal{Attempt: 1, Name: c.domain, Type: c.typ, PresentedAt: time.Now(), Token: c.token, Key: c.key, Reason: c.reason}
		if c.typ == cmacme.ACMEChallengeTypeDNS01 {
			s := dnsSolver()
			r.Solver = &s
		}
		if c.attempt, err = kube.StartRenewal(ctx, dc.cm, crt, r); err != nil {
			return err
		}
		c.crt = crt
		fmt.Fprintf(w, "  Certificate %s/%-10s %-28s %s challenge %s: %s\n", demoNamespace, c.role, c.domain, c.typ, c.attempt.Challenge.Name, c.what)
	}
	return nil
}

// dnsSolver is the Issuer's dns-01 solver: RFC 2136 at the zone's primary.
func dnsSolver() cmacme.ACMEChallengeSolver {
	return cmacme.ACMEChallengeSolver{DNS01: &cmacme.ACMEChallengeSolverDNS01{RFC2136: &cmacme.ACMEIssuerDNS01ProviderRFC2136{
		Nameserver: "ns1.txtprop.com:53", TSIGKeyName: "acme-update", TSIGAlgorithm: "HMACSHA256",
		TSIGSecret: cmmeta.SecretKeySelector{LocalObjectReference: cmmeta.LocalObjectReference{Name: "tsig"}, Key: "secret"}}}}
}

// step ends the attempts whose outcome the vantages have shown, as the CA
// would decide them: the passing one valid once every vantage fetched its
// key authorization, the firewalled one refused once us-east timed out.
// After force the outcome is written whatever the probes have shown yet.
func (dc *demoCluster) step(ctx context.Context, w io.Writer, d *run.Daemon, force bool) error {
	vantages := d.Plan().Vantages
	for _, c := range dc.certs {
		if c.done || c.typ != cmacme.ACMEChallengeTypeHTTP01 {
			continue
		}
		since := c.attempt.Challenge.CreationTimestamp.Time
		obs := d.Observations(c.domain, since)
		switch c.role {
		case "passes":
			passed := 0
			for _, v := range vantages {
				if slices.ContainsFunc(obs, func(o reports.Observation) bool {
					return o.Vantage.Name == v.Name && o.Kind == probes.KindHTTP01 && o.OK
				}) {
					passed++
				}
			}
			if passed < len(vantages) && !force {
				continue
			}
			if err := kube.ValidateChallenge(ctx, dc.cm, c.attempt); err != nil {
				return err
			}
			fmt.Fprintf(w, "cluster: the CA validated Challenge %s/%s (%s) — every vantage fetched its key authorization\n", demoNamespace, c.attempt.Challenge.Name, c.domain)
		case "firewalled":
			if !force && !slices.ContainsFunc(obs, func(o reports.Observation) bool {
				return o.Vantage.Name == "us-east" && o.Kind == probes.KindHTTP01 &&
					slices.ContainsFunc(o.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeHTTP01ConnectTimeout })
			}) {
				continue
			}
			problem := "urn:ietf:params:acme:error:connection: During secondary validation: 127.80.0.1: Fetching http://" + c.domain +
				"/.well-known/acme-challenge/" + c.token + ": Timeout during connect (likely firewall problem)"
			if err := kube.FailRenewal(ctx, dc.cm, c.attempt, problem); err != nil {
				return err
			}
			fmt.Fprintf(w, "cluster: the CA refused Challenge %s/%s (%s): %s\n", demoNamespace, c.attempt.Challenge.Name, c.domain, problem)
		}
		c.done = true
	}
	return nil
}

// print prints the Events in the namespace (the daemon is their only
// writer: its RenewalDiagnosis ones) and each Certificate's timeline as the daemon serves it (its lines start with
// the summary).
func (dc *demoCluster) print(ctx context.Context, w io.Writer, base string) {
	fmt.Fprintf(w, "\n━━ cluster: the Events in namespace %s (the daemon's RenewalDiagnosis)\n", demoNamespace)
	evs, err := dc.kube.CoreV1().Events(demoNamespace).List(ctx, metav1.ListOptions{})
	switch {
	case err != nil:
		fmt.Fprintf(w, "listing the Events: %v\n", err)
	case len(evs.Items) == 0:
		fmt.Fprintf(w, "none yet\n")
	}
	if err == nil {
		items := evs.Items
		slices.SortFunc(items, func(a, b corev1.Event) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
		for _, e := range items {
			fmt.Fprintf(w, "Event on %s %s/%s (%s, %s): %s\n", e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
	}
	fmt.Fprintf(w, "\n━━ cluster: each Certificate's timeline (%s/api/v1/certificates?namespace=%s&name=NAME)\n", base, demoNamespace)
	client := &http.Client{Timeout: 5 * time.Second}
	now := time.Now()
	for _, c := range dc.certs {
		fmt.Fprintf(w, "\nCertificate %s/%s (%s, %s):\n", demoNamespace, c.role, c.domain, c.what)
		tl, err := fetchTimeline(ctx, client, base, demoNamespace, c.role)
		if err != nil {
			fmt.Fprintf(w, "  %v\n", err)
			continue
		}
		for _, l := range tl.Lines(now) {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// fetchTimeline reads one Certificate's timeline from the daemon's API.
func fetchTimeline(ctx context.Context, client *http.Client, base, ns, name string) (*reports.Timeline, error) {
	u := base + "/api/v1/certificates?" + url.Values{"namespace": {ns}, "name": {name}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var tl reports.Timeline
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &tl, nil
}
