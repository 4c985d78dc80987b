package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzConfig feeds configuration files, as an operator (or a template
// gone wrong) writes them, to the loader and probes.Build: never a panic;
// a refusal is a *configError whose every line names the file.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"dns:\n  resolvers: [127.0.0.1]\ntargets:\n  - name: www.example.com\n",
		"dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com, challenge: dns-01, expect_txt: v}]\nschedule: {intervals: {dns: 5s}, jitter: 0.2}\n",
		"dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com}]\nstore: {max_bytes: 9999999999999999}\n",
		"dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com}]\napi:\n  reprobe: {enabled: false, rate: 0.5, burst: 3}\n",
		"dns:\n  resolvers: [127.0.0.1]\ntargets: [{name: a.com}]\nvantages:\n  - {name: x, source: 127.0.0.1, rir: ripe}\n",
		"a: &a [*a, *a]\n",
		"targets: [{name: a.com}]\n---\nlisten: x\n",
		"targets:\n\t- name: a.com\n",
		"listen: :80\nlisten: :81\n",
		"{{ .Values }}",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(string(data), "/") {
			// Paths: a fuzzer must not read (or block on) the machine's files.
			return
		}
		_, err := buildConfig("config.yaml", data)
		if err == nil {
			return
		}
		var ce *configError
		if !errors.As(err, &ce) {
			t.Fatalf("not a configError: %T %v", err, err)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "config.yaml") {
				t.Fatalf("a line that does not name the file: %q", line)
			}
		}
	})
}
