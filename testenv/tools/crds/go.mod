// Module crds pins Go modules that testenv reads data from rather than code:
// the prometheus-operator CRD manifests (example/prometheus-operator-crd/).
// It holds no Go package, so never run `go mod tidy` here: it would drop the
// requirement. v0.85.0 is the newest release of the repository's root module
// that the module proxy serves here (its pkg/apis/monitoring submodule is
// served up to v0.95.x, but carries no manifests).
module github.com/acmediag/acmediag/testenv/tools/crds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
