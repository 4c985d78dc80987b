package kube

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acmediag/acmediag/testenv/toolbuild"
	"go.uber.org/zap"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// CRDSet is a set of CRD manifests read from a Go module pinned in this
// repository.
type CRDSet struct {
	// Name is for messages.
	Name string
	// ModDir is the module (relative to the repository root, "" for the
	// repository's own) whose go.mod pins Module's version.
	ModDir string
	// Module is the Go module holding the manifests.
	Module string
	// Dir is the manifests' directory inside Module.
	Dir string
	// Files are the manifests to read; nil reads every *.yaml in Dir.
	Files []string
}

var (
	// CertManagerCRDs are cert-manager's CRDs (Certificate,
	// CertificateRequest, Issuer, ClusterIssuer, Order, Challenge) from the
	// cert-manager module go.mod requires: the same version as its Go types.
	CertManagerCRDs = CRDSet{Name: "cert-manager", Module: "github.com/cert-manager/cert-manager", Dir: "deploy/crds"}
	// PrometheusOperatorCRDs are prometheus-operator's ServiceMonitor,
	// PodMonitor and PrometheusRule, pinned in testenv/tools/crds.
	PrometheusOperatorCRDs = CRDSet{Name: "prometheus-operator", ModDir: "testenv/tools/crds",
		Module: "github.com/prometheus-operator/prometheus-operator", Dir: "example/prometheus-operator-crd",
		Files: []string{"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_podmonitors.yaml",
			"monitoring.coreos.com_prometheusrules.yaml"}}
)

// Load reads the set's CRDs from the module cache (downloading the module
// if needed) and returns them with the module version they came from.
func (s CRDSet) Load(ctx context.Context) ([]*apiextensionsv1.CustomResourceDefinition, string, error) {
	modDir, version, err := moduleDir(ctx, s.ModDir, s.Module)
	if err != nil {
		return nil, "", fmt.Errorf("kube: %s CRDs: %w", s.Name, err)
	}
	dir := filepath.Join(modDir, filepath.FromSlash(s.Dir))
	files := slices.Clone(s.Files)
	if files == nil {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, "", fmt.Errorf("kube: %s CRDs: %w", s.Name, err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") {
				files = append(files, e.Name())
			}
		}
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		path := filepath.Join(dir, f)
		got, err := ReadCRDs(path)
		if err != nil {
			return nil, "", fmt.Errorf("kube: %s CRDs %s: %w", s.Name, version, err)
		}
		crds = append(crds, got...)
	}
	if len(crds) == 0 {
		return nil, "", fmt.Errorf("kube: %s CRDs: none in %s", s.Name, dir)
	}
	return crds, version, nil
}

// moduleDirs remembers where `go mod download` found each pinned module:
// asking costs a go command per cluster otherwise.
var moduleDirs sync.Map // [2]string{modDir, path} -> [2]string{dir, version}

func moduleDir(ctx context.Context, modDir, path string) (dir, version string, err error) {
	key := [2]string{modDir, path}
	if v, ok := moduleDirs.Load(key); ok {
		r := v.([2]string)
		return r[0], r[1], nil
	}
	var b toolbuild.Builder
	if dir, version, err = b.ModuleDir(ctx, modDir, path); err != nil {
		return "", "", err
	}
	moduleDirs.Store(key, [2]string{dir, version})
	return dir, version, nil
}

// ReadCRDs reads the CustomResourceDefinitions of a multi-document YAML
// file, strictly: an unknown field is an error naming the file.
func ReadCRDs(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(bytes.TrimSpace(doc)) == "---" {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s: document %d is a %s, not a CustomResourceDefinition", path, i, crd.Kind)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}

// InstallCRDs creates (or updates) the set's CRDs and waits until each is
// Established, so its resources can be used at once.
func (c *Cluster) InstallCRDs(ctx context.Context, set CRDSet) error {
	crds, version, err := set.Load(ctx)
	if err != nil {
		return err
	}
	if err := c.ApplyCRDs(ctx, crds...); err != nil {
		return fmt.Errorf("kube: %s %s CRDs: %w", set.Name, version, err)
	}
	c.log.Info("CRDs installed", zap.String("set", set.Name), zap.String("version", version))
	return nil
}

// ApplyCRDs creates the CRDs, or replaces the spec of those that exist, and
// waits until every one is Established.
func (c *Cluster) ApplyCRDs(ctx context.Context, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	cs, err := apiextensionsclient.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	start := time.Now()
	for _, crd := range crds {
		_, err := api.Create(ctx, crd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var cur *apiextensionsv1.CustomResourceDefinition
			if cur, err = api.Get(ctx, crd.Name, metav1.GetOptions{}); err == nil {
				upd := crd.DeepCopy()
				upd.ResourceVersion = cur.ResourceVersion
				_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("apply CRD %s: %w", crd.Name, err)
		}
	}
	c.log.Debug("CRDs written", zap.Int("crds", len(crds)), zap.Duration("took", time.Since(start)))
	start = time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, crd := range crds {
		for {
			cur, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
			if err == nil && established(cur) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established (last error: %v): %w", crd.Name, err, ctx.Err())
			case <-tick.C:
			}
		}
	}
	c.log.Debug("CRDs established", zap.Int("crds", len(crds)), zap.Duration("took", time.Since(start)))
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range crd.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
