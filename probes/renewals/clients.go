package renewals

import (
	"fmt"

	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig is the API server's address and credentials: from the
// kubeconfig file, or, when it is "", the pod's own ServiceAccount
// (in-cluster).
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kube: no kube.kubeconfig and not in a pod (%w)", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, fmt.Errorf("kube: kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "acmediag"
	// The informers list once and then watch; the rest are a few Event
	// writes and access reviews. The defaults (5/s, bursts of 10) slow the
	// first list of many namespaces for nothing.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, nil
}

// Clients are cert-manager's typed clientset and Kubernetes' for cfg.
func Clients(cfg *rest.Config) (cmclient.Interface, kubernetes.Interface, error) {
	cm, err := cmclient.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: %w", err)
	}
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: %w", err)
	}
	return cm, k, nil
}
