//go:build tools

// Package tools pins helm for testenv/prom's chart checks.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
