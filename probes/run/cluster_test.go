package run

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/kube"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// The handover test runs two daemons as child processes of this test
// binary (so that one can be killed with SIGKILL); childEnv tells
// TestMain to be a daemon instead of running the tests.
const (
	childEnv        = "ACMEDIAG_TEST_CLUSTER_CHILD"
	fakeCanary      = reports.Kind("fake-canary")
	attemptLabel    = "acmediag.test/attempt"
	testNamespace   = "acmediag"
	testLease       = 3 * time.Second
	testRenew       = 2 * time.Second
	testRetry       = 500 * time.Millisecond
	testServiceName = "acmediag"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(clusterChild())
	}
	os.Exit(m.Run())
}

// clusterChild is one pod of the handover test: a daemon in cluster mode
// whose vantage is NODE_NAME, with a probe kind, a canary-lane kind and a
// LeaderWork that writes the open "attempts" (ConfigMaps labelled
// attemptLabel, standing for cert-manager's open attempts: state in the
// API server) to CHILD_MARKERS/POD_NAME while it leads, and removes the
// file when its term ends.
func clusterChild() int {
	log, _ := zap.NewDevelopment()
	fail := func(err error) int {
		log.Error("child", zap.Error(err))
		return 1
	}
	canaryKind := probes.KindSpec{Kind: fakeCanary, Lane: probes.LaneCanary, Doc: "a leader-only test kind",
		Applies: func(*probes.Plan, probes.Target) bool { return true },
		New: func(*probes.Plan) probes.Probe {
			return probes.ProbeFunc(func(_ context.Context, t probes.Target, _ probes.Vantage) reports.Observation {
				return reports.Observation{Name: t.Name, Challenge: t.Challenge, Kind: fakeCanary, Start: time.Now()}.Finish()
			})
		}}
	reg, err := newFakeRegistry(canaryKind)
	if err != nil {
		return fail(err)
	}
	s := probes.DefaultSettings()
	s.Listen = os.Getenv("CHILD_LISTEN")
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: os.Getenv("NODE_NAME"), Kind: "cluster"}}
	s.Targets = []probes.Target{{Name: "a.example.com"}}
	s.Schedule.Intervals = map[string]probes.Duration{string(fakeKind): probes.Duration(time.Second)}
	s.Cluster = probes.ClusterSettings{Enabled: true, LeaseName: "acmediag", Service: testServiceName,
		LeaseDuration: probes.Duration(testLease), RenewDeadline: probes.Duration(testRenew), RetryPeriod: probes.Duration(testRetry),
		PeerInterval: probes.Duration(time.Second), PeerTimeout: probes.Duration(900 * time.Millisecond)}
	kubeCfg := &rest.Config{Host: os.Getenv("CHILD_HOST"), BearerToken: os.Getenv("CHILD_TOKEN"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: os.Getenv("CHILD_CA")}}
	admin := rest.CopyConfig(kubeCfg)
	admin.BearerToken = os.Getenv("CHILD_ADMIN_TOKEN")
	adminCS, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fail(err)
	}
	marker := filepath.Join(os.Getenv("CHILD_MARKERS"), os.Getenv("POD_NAME"))
	attempts := LeaderWork{Name: "attempts", Run: func(ctx context.Context) error {
		defer os.Remove(marker)
		for {
			list, err := adminCS.CoreV1().ConfigMaps(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: attemptLabel})
			if err == nil {
				var names []string
				for _, cm := range list.Items {
					names = append(names, cm.Name)
				}
				tmp := marker + ".tmp"
				if os.WriteFile(tmp, []byte(strings.Join(names, " ")+"\n"), 0o644) == nil {
					_ = os.Rename(tmp, marker)
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}}
	d, err := NewDaemon(s, DaemonOptions{Registry: reg, Logger: log, Kube: kubeCfg, LeaderWork: []LeaderWork{attempts}})
	if err != nil {
		return fail(err)
	}
	// The API server refuses loopback addresses in EndpointSlices: the
	// test lists the pods at documentation addresses (192.0.2.0/24), and
	// the peers' client dials them on loopback, at the same port.
	var dialer net.Dialer
	d.peers.hc.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !strings.HasPrefix(host, "192.0.2.") {
			return nil, fmt.Errorf("the test dials only its pods' documentation addresses, not %s", addr)
		}
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// Two daemons in cluster mode against a real kube-apiserver, with the
// chart's namespace Role (files/rbac-namespace-rules.yaml) as their only
// rights: one leads (acmediag_leader 1, the canary lane runs there only,
// the LeaderWork runs there only, and it merges its peer's observations
// found through the Service's EndpointSlices); killed with SIGKILL, the
// other takes the Lease within lease_duration and the retry slack, and its
// LeaderWork sees the attempt that was open before the kill and the one
// opened while nobody led. Stopped with SIGTERM, it gives the Lease up.
func TestLeaderHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and two daemons")
	}
	bins := toolbuild.Need(t, toolbuild.Etcd, toolbuild.KubeAPIServer)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := kube.Start(ctx, kube.Options{Dir: t.TempDir(), EtcdBin: bins[0], APIServerBin: bins[1], SkipCertManagerCRDs: true,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	token := namespaceRoleToken(ctx, t, c, cs)

	ports := []int{freePort(t), freePort(t)}
	pods := []string{"pod-a", "pod-b"}
	for i, pod := range pods {
		// One slice per pod: both listen on 127.0.0.1, on their own port
		// (listed at a documentation address, see clusterChild).
		name, port := "http", int32(ports[i])
		ready := true
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: testServiceName + "-" + pod, Namespace: testNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: testServiceName}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("192.0.2.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: testNamespace, Name: pod}}}}
		if _, err := cs.DiscoveryV1().EndpointSlices(testNamespace).Create(ctx, es, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	markers := t.TempDir()
	start := func(i int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", fmt.Sprintf("CHILD_LISTEN=127.0.0.1:%d", ports[i]),
			"CHILD_HOST="+c.Host(), "CHILD_CA="+c.CAFile(), "CHILD_TOKEN="+token, "CHILD_ADMIN_TOKEN="+c.AdminToken(),
			"CHILD_MARKERS="+markers, "POD_NAME="+pods[i], "POD_NAMESPACE="+testNamespace, "NODE_NAME=node-"+pods[i][4:], "POD_IP=")
		logf, err := os.Create(filepath.Join(t.TempDir(), pods[i]+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s's log:\n%s", pods[i], tail(string(b), 60))
			}
		})
		return cmd
	}
	base := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i]) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	markerOf := func(pod string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(markers, pod))
		return strings.TrimSpace(string(b)), err == nil
	}

	a := start(0)
	waitFor("pod-a to lead", func() bool { return metric(base(0), "acmediag_leader") == "1" })
	bCmd := start(1)
	waitFor("pod-b to be ready", func() bool { return status(base(1)+"/readyz") == http.StatusOK })
	if got := metric(base(1), "acmediag_leader"); got != "0" {
		t.Fatalf("pod-b: acmediag_leader %q while pod-a leads", got)
	}
	attempt := func(name string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Labels: map[string]string{attemptLabel: "open"}}}
		if _, err := cs.CoreV1().ConfigMaps(testNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	attempt("attempt-1")
	waitFor("pod-a's leader work to see attempt-1", func() bool { m, _ := markerOf("pod-a"); return m == "attempt-1" })
	waitFor("pod-a to merge pod-b's observations", func() bool { return hasObservation(base(0), "node-b", fakeKind) })
	waitFor("pod-a's canary lane to run", func() bool { return hasObservation(base(0), "", fakeCanary) })
	if _, ok := markerOf("pod-b"); ok {
		t.Error("pod-b runs leader work while pod-a leads")
	}
	if hasObservation(base(1), "", fakeCanary) {
		t.Error("pod-b runs the canary lane while pod-a leads")
	}
	if hasObservation(base(1), "node-a", fakeKind) {
		t.Error("pod-b, not leading, merged pod-a's observations")
	}

	// kill -9 the leader: no lease release, no cleanup.
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = a.Process.Wait()
	lease, err := cs.CoordinationV1().Leases(testNamespace).Get(ctx, "acmediag", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "pod-a" || lease.Spec.RenewTime == nil {
		t.Fatalf("the Lease before the handover: %+v, want pod-a holding it", lease.Spec)
	}
	lastRenew := lease.Spec.RenewTime.Time
	attempt("attempt-2") // opened while nobody leads
	waitFor("pod-b to take the Lease", func() bool {
		l, err := cs.CoordinationV1().Leases(testNamespace).Get(ctx, "acmediag", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "pod-b" {
			lease = l
			return true
		}
		return false
	})
	takeover := lease.Spec.AcquireTime.Sub(lastRenew)
	// client-go: pod-b sees pod-a's last renewal within a retry period
	// (jittered by 1.2), deems it expired lease_duration later, and takes
	// it at its next retry.
	bound := testLease + 2*time.Duration(2.2*float64(testRetry)) + time.Second
	t.Logf("handover: pod-a's last renewal to pod-b's acquisition %s (lease %s, retry %s; bound %s)", takeover, testLease, testRetry, bound)
	if takeover > bound {
		t.Errorf("pod-b took the Lease %s after pod-a's last renewal, more than %s", takeover, bound)
	}
	if lease.Spec.LeaseTransitions == nil || *lease.Spec.LeaseTransitions < 1 {
		t.Errorf("lease transitions %v, want at least 1", lease.Spec.LeaseTransitions)
	}
	waitFor("pod-b's acmediag_leader to be 1", func() bool { return metric(base(1), "acmediag_leader") == "1" })
	waitFor("pod-b's leader work to see both attempts", func() bool { m, _ := markerOf("pod-b"); return m == "attempt-1 attempt-2" })
	waitFor("pod-b's canary lane to run", func() bool { return hasObservation(base(1), "", fakeCanary) })
	if status(base(1)+"/readyz") != http.StatusOK {
		t.Error("pod-b is not ready as the leader")
	}

	// SIGTERM: the term ends (its leader work stops) and the Lease is
	// given up for the next pod.
	if err := bCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("pod-b to give the Lease up", func() bool {
		l, err := cs.CoordinationV1().Leases(testNamespace).Get(ctx, "acmediag", metav1.GetOptions{})
		return err == nil && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "")
	})
	waitFor("pod-b's leader work to stop", func() bool { _, ok := markerOf("pod-b"); return !ok })
}

// namespaceRoleToken binds files/rbac-namespace-rules.yaml (the chart's
// one copy) to ServiceAccount acmediag/acmediag and returns its token: the
// daemons act with exactly those rights.
func namespaceRoleToken(ctx context.Context, t *testing.T, c *kube.Cluster, cs kubernetes.Interface) string {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/helm/acmediag/files/rbac-namespace-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatal(err)
	}
	token, err := c.TokenFor(ctx, testNamespace, "acmediag")
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "acmediag", Namespace: testNamespace}, Rules: rules}
	if _, err := cs.RbacV1().Roles(testNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "acmediag", Namespace: testNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "acmediag"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: testNamespace, Name: "acmediag"}}}
	if _, err := cs.RbacV1().RoleBindings(testNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return token
}

// freePort is a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// status is the HTTP status of GET url (0 when there is no answer).
func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric is the value of an unlabelled metric on base's /metrics ("" when
// absent or unreachable).
func metric(base, name string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// hasObservation reports whether base's API holds an observation of kind
// from vantage (by name; "" the zero vantage).
func hasObservation(base, vantage string, kind reports.Kind) bool {
	resp, err := http.Get(base + "/api/v1/observations?name=a.example.com")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var obs []reports.Observation
	if json.NewDecoder(resp.Body).Decode(&obs) != nil {
		return false
	}
	return slices.ContainsFunc(obs, func(o reports.Observation) bool { return o.Vantage.Name == vantage && o.Kind == kind })
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
