package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

const chartDir = "helm/acmediag"

// chartFile is a file of the chart, by its path inside it.
func chartFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ruleFile is the alerts file as Prometheus reads it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alerts(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.Unmarshal(chartFile(t, "files/alerts.yaml"), &rf); err != nil {
		t.Fatalf("files/alerts.yaml: %v", err)
	}
	return rf
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// metricNames are the acmediag_* and process_* metric names an expression
// reads (histogram series by their family name).
func metricNames(expr string) []string {
	var out []string
	for _, m := range metricRE.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if n := len(m) - len(suffix); n > 0 && m[n:] == suffix {
				m = m[:n]
			}
		}
		out = append(out, m)
	}
	return out
}

var metricRE = regexp.MustCompile(`\b(acmediag|process)_[a-z_]+`)

// remarshalJSON turns YAML-decoded values into JSON-shaped ones (what
// unstructured objects hold).
func remarshalJSON(t *testing.T, in any, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}
