//go:build tools

// Package tools pins the servers and utilities that testenv builds from Go
// modules (Pebble now; kube-apiserver, etcd, promtool and helm later), so one
// go.sum fixes their versions and the build cache can be keyed on it.
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
)
