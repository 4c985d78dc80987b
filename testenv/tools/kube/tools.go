//go:build tools

// Package tools pins kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver)
// for testenv/kube. The builder runs `go build` on that package here.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
