//go:build tools

// Package tools pins Pebble, which testenv/toolbuild builds from this module.
// The heavier tools have modules of their own beside it (kube/, etcd/,
// prom/, helm/; crds/ pins data), so building Pebble never resolves
// Kubernetes or Prometheus; go.mod and go.sum fix the versions and key the
// tools cache.
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
)
