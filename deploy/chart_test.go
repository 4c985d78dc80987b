package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acmediag/acmediag/testenv/helm"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// newHelm is the pinned helm with private state for one test.
func newHelm(t *testing.T) *helm.Helm {
	t.Helper()
	toolbuild.Need(t, toolbuild.Helm)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := helm.New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// render is `helm template` of the chart with the given values files and
// --set flags, in namespace acmediag, as a list of objects.
func render(t *testing.T, h *helm.Helm, args ...string) ([]map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Template(ctx, "diag", chartDir, append([]string{"--namespace", "acmediag"}, args...)...)
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm's output is not YAML: %v\n%s", err, out)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func kinds(objs []map[string]any) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o["kind"].(string)]++
	}
	return out
}

func find(objs []map[string]any, kind string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind {
			return o
		}
	}
	return nil
}

const (
	ciDefault     = chartDir + "/ci/default-values.yaml"
	ciFull        = chartDir + "/ci/full-values.yaml"
	ciAgent       = chartDir + "/ci/agent-values.yaml"
	ciHostNetwork = chartDir + "/ci/hostnetwork-values.yaml"
)

// helm lints the chart clean with each CI values file, renders what each
// asks for, and refuses bad values by the schema, naming the key.
func TestChart(t *testing.T) {
	h := newHelm(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, values := range []string{ciDefault, ciFull, ciAgent, ciHostNetwork} {
		if out, err := h.Lint(ctx, chartDir, "--strict", "-f", values); err != nil {
			t.Errorf("helm lint --strict -f %s: %v\n%s", values, err, out)
		}
	}
	cases := []struct {
		desc    string
		args    []string
		kinds   map[string]int // exact counts of every kind rendered
		wantErr string
	}{
		{desc: "the defaults with a target: the DaemonSet and what it needs, no monitoring objects",
			args: []string{"-f", ciDefault},
			kinds: map[string]int{"ServiceAccount": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
				"Service": 1, "DaemonSet": 1}},
		{desc: "everything on", args: []string{"-f", ciFull},
			kinds: map[string]int{"ServiceAccount": 1, "ConfigMap": 2, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
				"Service": 1, "DaemonSet": 1, "ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1}},
		{desc: "no RBAC, an existing ServiceAccount", args: []string{"-f", ciDefault, "--set", "rbac.create=false,serviceAccount.create=false,serviceAccount.name=mine"},
			kinds: map[string]int{"ConfigMap": 1, "Service": 1, "DaemonSet": 1}},
		{desc: "a remote vantage only: the agent and its Service", args: []string{"-f", ciAgent},
			kinds: map[string]int{"Deployment": 1, "Service": 1}},
		{desc: "node-level vantages, scraped by a PodMonitor", args: []string{"-f", ciHostNetwork},
			kinds: map[string]int{"ServiceAccount": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
				"Service": 1, "DaemonSet": 1, "PodMonitor": 1}},
		{desc: "an agent without its TLS Secret", args: []string{"-f", ciDefault, "--set", "agent.enabled=true"}, wantErr: "at '/agent/tlsSecret': minLength: got 0, want 1"},
		{desc: "no target and no cert-manager watch: the install says what to give", args: []string{"--set", "certManager.watch=false"}, wantErr: "at '/config/targets': minItems: got 0, want 1"},
		{desc: "a misspelt key", args: []string{"-f", ciDefault, "--set", "servicemonitor.enabled=true"}, wantErr: "additional properties 'servicemonitor' not allowed"},
		{desc: "a vantage kind that does not exist", args: []string{"-f", ciDefault, "--set", "vantage.kind=nearby"}, wantErr: "at '/vantage/kind': value must be one of 'cluster', 'external'"},
		{desc: "listen is the chart's", args: []string{"-f", ciDefault, "--set", "config.listen=:80"}, wantErr: "at '/config': 'not' failed"},
		{desc: "a privileged port", args: []string{"-f", ciDefault, "--set", "port=80"}, wantErr: "at '/port': minimum: got 80, want 1,024"},
		{desc: "a re-probe rate of 0", args: []string{"-f", ciDefault, "--set", "api.reprobe.rate=0"}, wantErr: "at '/api/reprobe/rate'"},
		{desc: "a re-probe key misspelt", args: []string{"-f", ciDefault, "--set", "api.reprobe.enable=false"}, wantErr: "additional properties 'enable' not allowed"},
		{desc: "a challenge that does not exist", args: []string{"-f", ciDefault, "--set", "config.targets[0].challenge=http-02"}, wantErr: "at '/config/targets/0/challenge'"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			objs, err := render(t, h, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := kinds(objs)
			if len(got) != len(tc.kinds) {
				t.Errorf("kinds %v, want %v", got, tc.kinds)
			}
			for k, n := range tc.kinds {
				if got[k] != n {
					t.Errorf("%d %s, want %d (all: %v)", got[k], k, n, got)
				}
			}
		})
	}
}

// The DaemonSet runs the daemon as a non-root, read-only, capability-less
// container whose vantage is its node, probed on /healthz and /readyz; the
// rules it is bound to are files/rbac-*.yaml verbatim.
func TestChartPodAndRBAC(t *testing.T) {
	h := newHelm(t)
	objs, err := render(t, h, "-f", ciDefault)
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string `yaml:"serviceAccountName"`
					SecurityContext    struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
					} `yaml:"securityContext"`
					Containers []struct {
						Args            []string `yaml:"args"`
						SecurityContext struct {
							ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
							AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
							Capabilities             struct {
								Drop []string `yaml:"drop"`
							} `yaml:"capabilities"`
						} `yaml:"securityContext"`
						LivenessProbe struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"livenessProbe"`
						ReadinessProbe struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"readinessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	remarshal(t, find(objs, "DaemonSet"), &ds)
	ps := ds.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	args := strings.Join(c.Args, " ")
	switch {
	case !ps.SecurityContext.RunAsNonRoot || !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation ||
		strings.Join(c.SecurityContext.Capabilities.Drop, ",") != "ALL":
		t.Errorf("security context: pod %+v, container %+v", ps.SecurityContext, c.SecurityContext)
	case !strings.Contains(args, "--vantage-name=$(NODE_NAME) --vantage-kind=cluster") || !strings.HasPrefix(args, "daemon --config=/etc/acmediag/config.yaml"):
		t.Errorf("args %q", args)
	case c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz":
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	case ps.ServiceAccountName != "diag-acmediag":
		t.Errorf("service account %q", ps.ServiceAccountName)
	}
	for kind, file := range map[string]string{"ClusterRole": "files/rbac-rules.yaml", "Role": "files/rbac-namespace-rules.yaml"} {
		var want []any
		if err := yaml.Unmarshal(chartFile(t, file), &want); err != nil {
			t.Fatal(err)
		}
		got := find(objs, kind)["rules"]
		if !equalYAML(t, got, want) {
			t.Errorf("%s rules %v, want %s verbatim: %v", kind, got, file, want)
		}
	}
}

// hostNetwork is off unless asked for, and then with the DNS policy that
// keeps cluster names resolvable.
func TestChartHostNetwork(t *testing.T) {
	h := newHelm(t)
	for values, want := range map[string]bool{ciDefault: false, ciHostNetwork: true} {
		objs, err := render(t, h, "-f", values)
		if err != nil {
			t.Fatal(err)
		}
		spec := find(objs, "DaemonSet")["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		got, _ := spec["hostNetwork"].(bool)
		if got != want || want && spec["dnsPolicy"] != "ClusterFirstWithHostNet" {
			t.Errorf("%s: hostNetwork %v, dnsPolicy %v; want %v", values, got, spec["dnsPolicy"], want)
		}
	}
}

// The configuration the chart renders is one the daemon accepts, with the
// vantage flags the DaemonSet gives it.
func TestChartConfigAccepted(t *testing.T) {
	h := newHelm(t)
	bin := buildDaemon(t)
	for _, values := range []string{ciDefault, ciFull} {
		objs, err := render(t, h, "-f", values)
		if err != nil {
			t.Fatal(err)
		}
		data := find(objs, "ConfigMap")["data"].(map[string]any)["config.yaml"].(string)
		// The cluster's resolver is this machine's; the test names one on
		// loopback so that nothing reads /etc/resolv.conf.
		data += "dns:\n  resolvers: [127.0.0.1]\n"
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, "daemon", "--config", file, "--config.check", "--log-level", "error",
			"--vantage-name", "node-1", "--vantage-kind", "cluster")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		cancel()
		if err != nil || !strings.Contains(out.String(), ": valid (") {
			t.Errorf("%s: the daemon refuses the rendered configuration: %v\n%s\n%s", values, err, out.String(), data)
		}
	}
}

// api.reprobe.tokenSecret mounts the Secret's key where the rendered
// configuration's api.reprobe.token_file names it, and the daemon accepts
// that configuration with a token there; enabled: false renders as such.
func TestChartReprobe(t *testing.T) {
	h := newHelm(t)
	bin := buildDaemon(t)
	objs, err := render(t, h, "-f", ciDefault, "--set", "api.reprobe.tokenSecret.name=reprobe,api.reprobe.tokenSecret.key=tok,api.reprobe.burst=3")
	if err != nil {
		t.Fatal(err)
	}
	data := find(objs, "ConfigMap")["data"].(map[string]any)["config.yaml"].(string)
	var cfg struct {
		API struct {
			Reprobe map[string]any `yaml:"reprobe"`
		} `yaml:"api"`
	}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		t.Fatal(err)
	}
	const tokenPath = "/var/run/secrets/acmediag/reprobe/token"
	if r := cfg.API.Reprobe; r["token_file"] != tokenPath || r["burst"] != 3 || r["enabled"] != true {
		t.Errorf("api.reprobe rendered as %v", r)
	}
	ds, _ := yaml.Marshal(find(objs, "DaemonSet"))
	for _, want := range []string{"secretName: reprobe", "key: tok", "path: token", "mountPath: /var/run/secrets/acmediag/reprobe"} {
		if !strings.Contains(string(ds), want) {
			t.Errorf("the DaemonSet lacks %q", want)
		}
	}
	// The kubelet puts the key at tokenPath; here a file of the test's.
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("a-token-of-32-characters-or-so-x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	data = strings.Replace(data, tokenPath, token, 1) + "dns:\n  resolvers: [127.0.0.1]\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "daemon", "--config", file, "--config.check", "--vantage-name", "node-1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": valid (") {
		t.Errorf("the daemon refuses the rendered configuration: %v\n%s\n%s", err, out, data)
	}

	objs, err = render(t, h, "-f", ciDefault, "--set", "api.reprobe.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	data = find(objs, "ConfigMap")["data"].(map[string]any)["config.yaml"].(string)
	if !strings.Contains(data, "enabled: false") || strings.Contains(data, "token_file") {
		t.Errorf("re-probes off rendered as\n%s", data)
	}
}

// buildDaemon builds the acmediag binary once per test binary.
func buildDaemon(t *testing.T) string {
	t.Helper()
	daemonOnce.Do(func() {
		dir, err := os.MkdirTemp("", "acmediag-deploy-")
		if err != nil {
			daemonErr = err
			return
		}
		daemonBin = filepath.Join(dir, "acmediag")
		out, err := exec.Command("go", "build", "-o", daemonBin, "../cmd/acmediag").CombinedOutput()
		if err != nil {
			daemonErr = errors.New(string(out))
		}
	})
	if daemonErr != nil {
		t.Fatalf("building acmediag: %v", daemonErr)
	}
	return daemonBin
}

func remarshal(t *testing.T, in, out any) {
	t.Helper()
	b, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := yaml.Marshal(a)
	y, err2 := yaml.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// The chart turns cluster mode on: the Lease and the headless Service are
// the release's, in its namespace, and the pods get their names, node and
// namespace from the downward API (the identity, the vantage, the Lease's
// namespace).
func TestChartClusterMode(t *testing.T) {
	h := newHelm(t)
	objs, err := render(t, h, "-f", ciDefault)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Cluster map[string]any `yaml:"cluster"`
	}
	if err := yaml.Unmarshal([]byte(find(objs, "ConfigMap")["data"].(map[string]any)["config.yaml"].(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"enabled": true, "namespace": "acmediag", "lease_name": "diag-acmediag", "service": "diag-acmediag"}
	if !equalYAML(t, cfg.Cluster, want) {
		t.Errorf("cluster: %v, want %v", cfg.Cluster, want)
	}
	if svc := find(objs, "Service"); svc["metadata"].(map[string]any)["name"] != "diag-acmediag" ||
		svc["spec"].(map[string]any)["clusterIP"] != "None" {
		t.Errorf("the peers' Service %v is not the headless diag-acmediag", svc["metadata"])
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string `yaml:"name"`
							ValueFrom struct {
								FieldRef struct {
									FieldPath string `yaml:"fieldPath"`
								} `yaml:"fieldRef"`
							} `yaml:"valueFrom"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	remarshal(t, find(objs, "DaemonSet"), &ds)
	got := map[string]string{}
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		got[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	for env, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "NODE_NAME": "spec.nodeName", "POD_IP": "status.podIP"} {
		if got[env] != field {
			t.Errorf("env %s from %q, want the downward API's %s", env, got[env], field)
		}
	}
}
