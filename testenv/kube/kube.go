// Package kube runs a real Kubernetes API server for tests: etcd and
// kube-apiserver, built from their Go modules (testenv/toolbuild), as child
// processes on 127.0.0.1 with free ports, a self-signed serving certificate,
// a static token file with an admin token, RBAC authorization and a
// service-account issuer, so the TokenRequest API hands out ServiceAccount
// tokens that RBAC really checks. It installs cert-manager's CRDs from the
// cert-manager Go module the repository requires (the same version as the
// Go types and typed clients), and prometheus-operator's on request.
//
// It owns the processes, their flags, files and ports, and the admin
// credentials. It must not run controllers: there is no controller-manager,
// scheduler or kubelet, so nothing creates "default" ServiceAccounts, deletes
// namespaces to completion, garbage-collects owned objects or runs Pods, and
// there is no cert-manager controller either: tests write cert-manager's
// objects and their status the way its controller writes them.
package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/acmediag/acmediag/testenv/internal/proc"
	"github.com/acmediag/acmediag/testenv/measure"
	"github.com/acmediag/acmediag/testenv/pki"
	"github.com/acmediag/acmediag/testenv/toolbuild"
	"go.uber.org/zap"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminUser is the user name of the admin token (group system:masters).
const AdminUser = "acmediag-admin"

// ServiceAccountIssuer is the issuer of the service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Options says how to start a cluster. The zero value starts one with
// cert-manager's CRDs installed, in a temporary directory.
type Options struct {
	// Dir holds etcd's data, certificates, keys and the token file; "" is a
	// new temporary directory, removed by Close.
	Dir string
	// EtcdBin and APIServerBin are the binaries; "" builds (or finds in the
	// tools cache) the pinned ones.
	EtcdBin, APIServerBin string
	// SkipCertManagerCRDs leaves cert-manager's CRDs out.
	SkipCertManagerCRDs bool
	// PrometheusOperatorCRDs also installs prometheus-operator's
	// ServiceMonitor, PodMonitor and PrometheusRule CRDs.
	PrometheusOperatorCRDs bool
	// APIServerArgs are added to kube-apiserver's flags (later flags win).
	APIServerArgs []string
	// Logger gets the processes' output at debug level; nil discards it.
	Logger *zap.Logger
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	log     *zap.Logger
	dir     string
	ownDir  bool
	apiBin  string
	apiArgs []string
	caFile  string
	host    string // https://127.0.0.1:PORT
	etcdURL string
	admin   string // the admin bearer token
	etcd    *proc.Process
	mu      sync.Mutex // guards api
	api     *proc.Process
	closed  sync.Once
	timings StartTimes
}

// Timings says how long Start took, step by step.
func (c *Cluster) Timings() StartTimes { return c.timings }

// StartTimes says how long the start-up took, for benchmarks and reports.
type StartTimes struct {
	Build     time.Duration // building or finding the binaries
	Etcd      time.Duration // etcd start to healthy
	APIServer time.Duration // kube-apiserver start to /readyz
	CRDs      time.Duration // installing CRDs until Established
}

// Start starts etcd and kube-apiserver, waits until /readyz answers ok and
// installs the CRDs Options asks for. The processes die with the test binary
// and on Close.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := &Cluster{log: log.Named("kube"), dir: opts.Dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "acmediag-kube-"); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		c.ownDir = true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}

	t0 := time.Now()
	etcdBin, apiBin := opts.EtcdBin, opts.APIServerBin
	if etcdBin == "" {
		if etcdBin, err = toolbuild.Build(ctx, toolbuild.Etcd); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	if apiBin == "" {
		if apiBin, err = toolbuild.Build(ctx, toolbuild.KubeAPIServer); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	c.apiBin = apiBin
	c.timings.Build = time.Since(t0)

	t0 = time.Now()
	if err := c.startEtcd(ctx, etcdBin); err != nil {
		return nil, err
	}
	c.timings.Etcd = time.Since(t0)

	if c.apiArgs, err = c.prepareAPIServer(opts.APIServerArgs); err != nil {
		return nil, err
	}
	t0 = time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		return nil, err
	}
	c.timings.APIServer = time.Since(t0)

	t0 = time.Now()
	var crds []CRDSet
	if !opts.SkipCertManagerCRDs {
		crds = append(crds, CertManagerCRDs)
	}
	if opts.PrometheusOperatorCRDs {
		crds = append(crds, PrometheusOperatorCRDs)
	}
	for _, set := range crds {
		if err := c.InstallCRDs(ctx, set); err != nil {
			return nil, err
		}
	}
	c.timings.CRDs = time.Since(t0)
	c.log.Info("cluster ready", zap.String("host", c.host), zap.String("etcd", c.etcdURL),
		zap.Duration("etcd_start", c.timings.Etcd), zap.Duration("apiserver_start", c.timings.APIServer),
		zap.Duration("crds", c.timings.CRDs))
	return c, nil
}

// startEtcd starts a single-member etcd on two free loopback ports.
func (c *Cluster) startEtcd(ctx context.Context, bin string) error {
	clientPort, err := measure.FreePort()
	if err != nil {
		return fmt.Errorf("kube: etcd port: %w", err)
	}
	peerPort, err := measure.FreePort()
	if err != nil {
		return fmt.Errorf("kube: etcd peer port: %w", err)
	}
	c.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command(bin,
		"--name=acmediag",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+c.etcdURL,
		"--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=acmediag="+peerURL,
		// A test cluster: durability across a machine crash is worth
		// nothing, and fsync is what makes thousands of writes slow.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	cmd.Dir = c.dir
	cmd.Env = os.Environ()
	c.etcd, err = proc.Start("etcd", cmd, c.log.Named("etcd"))
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	hc := &http.Client{Timeout: time.Second}
	err = c.etcd.Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		body, status, err := get(ctx, hc, c.etcdURL+"/health", "")
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET %s/health: %d %s", c.etcdURL, status, body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kube: etcd on %s: %w", c.etcdURL, err)
	}
	return nil
}

// prepareAPIServer writes the serving certificate, the service-account key
// and the token file, picks a port and returns kube-apiserver's flags.
func (c *Cluster) prepareAPIServer(extra []string) ([]string, error) {
	pkiDir := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	ca, err := pki.NewCA(pkiDir, "kube-ca")
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	c.caFile = ca.CertFile
	certFile, keyFile, err := ca.Server("kube-apiserver", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	saKey, saPub, err := writeSigningKeys(pkiDir)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	if c.admin, err = randomToken(); err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	tokens := filepath.Join(pkiDir, "tokens.csv")
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", c.admin, AdminUser, AdminUser)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	port, err := measure.FreePort()
	if err != nil {
		return nil, fmt.Errorf("kube: apiserver port: %w", err)
	}
	c.host = fmt.Sprintf("https://127.0.0.1:%d", port)
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + pkiDir,
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/24", // allocated to Services, never bound
		// The "kubernetes" Service's endpoints would be 127.0.0.1, which
		// Endpoints validation refuses: do not reconcile them.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=0",
	}
	return append(args, extra...), nil
}

// StartAPIServer starts kube-apiserver (after StopAPIServer) on the same
// port, etcd and keys, and waits until /readyz answers ok.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		select {
		case <-c.api.Exited():
		default:
			return fmt.Errorf("kube: kube-apiserver (pid %d) on %s is running", c.api.Pid(), c.host)
		}
	}
	cmd := exec.Command(c.apiBin, c.apiArgs...)
	cmd.Dir = c.dir
	cmd.Env = os.Environ()
	api, err := proc.Start("kube-apiserver", cmd, c.log.Named("kube-apiserver"))
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	c.api = api
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	err = api.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		body, status, err := get(ctx, hc, c.host+"/readyz", c.admin)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d %s", status, body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kube: kube-apiserver on %s: %w", c.host, err)
	}
	return nil
}

// StopAPIServer stops kube-apiserver gracefully (SIGTERM, then SIGKILL
// after grace) and leaves etcd running; StartAPIServer brings it back.
// Watches end, as they do when a real control-plane node restarts.
func (c *Cluster) StopAPIServer(grace time.Duration) {
	c.mu.Lock()
	api := c.api
	c.mu.Unlock()
	if api != nil {
		api.Stop(grace)
	}
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port and etcd: every stored object survives, every watch ends. It sends
// SIGTERM and kills after 3 s: kube-apiserver stops listening at once but,
// with watches open, lingers past any useful grace in its shutdown.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.StopAPIServer(3 * time.Second)
	return c.StartAPIServer(ctx)
}

// APIServerPid is the process ID of the running kube-apiserver.
func (c *Cluster) APIServerPid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.api.Pid()
}

// Host is the API server's URL, https://127.0.0.1:PORT.
func (c *Cluster) Host() string { return c.host }

// CAFile is the PEM file of the CA that signed the serving certificate.
func (c *Cluster) CAFile() string { return c.caFile }

// EtcdURL is etcd's client URL.
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// AdminToken is the bearer token of AdminUser (system:masters).
func (c *Cluster) AdminToken() string { return c.admin }

// RESTConfig is an admin client configuration. Client-side rate limiting is
// raised (QPS 500, burst 1000) so that tests writing thousands of objects
// are bounded by the server, not by client-go's default of 5 per second.
func (c *Cluster) RESTConfig() *rest.Config { return c.ConfigForToken(c.admin) }

// ConfigForToken is a client configuration acting with a bearer token, e.g.
// a ServiceAccount's from TokenFor.
func (c *Cluster) ConfigForToken(token string) *rest.Config {
	return &rest.Config{
		Host:            c.host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.caFile},
		QPS:             500,
		Burst:           1000,
		UserAgent:       "acmediag-testenv",
	}
}

// Kubeconfig writes a kubeconfig file for the admin to path.
func (c *Cluster) Kubeconfig(path string) error { return c.KubeconfigForToken(path, c.admin) }

// KubeconfigForToken writes a kubeconfig file acting with token to path.
func (c *Cluster) KubeconfigForToken(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["acmediag"] = &clientcmdapi.Cluster{Server: c.host, CertificateAuthority: c.caFile}
	cfg.AuthInfos["acmediag"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["acmediag"] = &clientcmdapi.Context{Cluster: "acmediag", AuthInfo: "acmediag", Namespace: "default"}
	cfg.CurrentContext = "acmediag"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kube: write kubeconfig %s: %w", path, err)
	}
	return nil
}

// TokenFor returns a token of ServiceAccount namespace/name from the
// TokenRequest API (valid for a day), creating the namespace and the
// ServiceAccount first if they do not exist. The token has exactly the
// rights RBAC grants the ServiceAccount (none at first).
func (c *Cluster) TokenFor(ctx context.Context, namespace, name string) (string, error) {
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return "", fmt.Errorf("kube: token for %s/%s: %w", namespace, name, err)
	}
	if err := EnsureNamespace(ctx, cs, namespace); err != nil {
		return "", fmt.Errorf("kube: token for %s/%s: %w", namespace, name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("kube: create serviceaccount %s/%s: %w", namespace, name, err)
	}
	day := int64(24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &day}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: token request for %s/%s: %w", namespace, name, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("kube: token request for %s/%s: empty token", namespace, name)
	}
	return tr.Status.Token, nil
}

// EnsureNamespace creates namespace name unless it exists.
func EnsureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Close stops kube-apiserver and etcd and removes the directory Start made.
// It is safe to call twice.
func (c *Cluster) Close() {
	c.closed.Do(func() {
		c.mu.Lock()
		api := c.api
		c.mu.Unlock()
		if api != nil {
			api.Stop(0)
		}
		if c.etcd != nil {
			c.etcd.Stop(0)
		}
		if c.ownDir && c.dir != "" {
			if err := os.RemoveAll(c.dir); err != nil {
				c.log.Warn("remove work dir", zap.String("dir", c.dir), zap.Error(err))
			}
		}
	})
}

// httpClient trusts only the cluster's CA.
func (c *Cluster) httpClient() (*http.Client, error) {
	pemCA, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("kube: no certificate in %s", c.caFile)
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}, nil
}

// get fetches url (with a bearer token unless ""), returning at most 4 KiB
// of the body and the status.
func get(ctx context.Context, hc *http.Client, url, token string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return string(b), resp.StatusCode, err
}

// writeSigningKeys writes a new P-256 key pair for service-account tokens
// (ES256): the private key (SEC 1 PEM) that signs them and the public key
// (PKIX PEM) that verifies them.
func writeSigningKeys(dir string) (private, public string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	priv, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	private, public = filepath.Join(dir, "service-account-key.pem"), filepath.Join(dir, "service-account-pub.pem")
	if err := os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	if err := os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	return private, public, nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
