package deploy

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	daemonOnce sync.Once
	daemonBin  string
	daemonErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if daemonBin != "" {
		os.RemoveAll(filepath.Dir(daemonBin))
	}
	os.Exit(code)
}
