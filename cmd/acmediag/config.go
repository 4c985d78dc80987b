package main

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/acmediag/acmediag/probes"
)

// The daemon's configuration is one YAML file, read into probes.Settings
// on top of probes.DefaultSettings: the file's nodes are walked against
// the settings' own types, so an unknown key, a duplicate key or a value of
// the wrong shape is refused with the line of its node, and every key the
// file sets is remembered with its line. probes.Build then judges the
// values; its issues name keys, which get their lines here. Every problem
// is reported as "FILE:LINE: KEY.PATH: what is wrong", all of them at once.

// Bounds on what a configuration file may make the daemon hold.
const (
	maxConfigBytes  = 16 << 20
	maxConfigNodes  = 4_000_000 // YAML nodes walked, aliases expanded
	maxConfigIssues = 20
)

// configIssue is one problem in the file.
type configIssue struct {
	line int // 0: not tied to a line
	msg  string
}

// configError lists every problem found in a configuration file, one per
// line, sorted by line.
type configError struct {
	file   string
	issues []configIssue
}

func (e *configError) Error() string {
	var b strings.Builder
	for i, is := range e.issues {
		if i == maxConfigIssues {
			fmt.Fprintf(&b, "\n%s: %d more problems not shown", e.file, len(e.issues)-maxConfigIssues)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		if is.line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.file, is.line, is.msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.file, is.msg)
		}
	}
	return b.String()
}

// configFile is one read of a configuration file: the settings and the
// line of every key the file sets.
type configFile struct {
	path     string
	settings probes.Settings
	lines    map[string]int
}

// loadConfig reads the configuration file at path. Its error, when a
// problem is in the file, is a *configError naming the line and key of
// every problem.
func loadConfig(path string) (*configFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return parseConfig(path, data)
}

// parseConfig is loadConfig on the file's contents; path names the file in
// messages and anchors relative paths.
func parseConfig(path string, data []byte) (*configFile, error) {
	l := &loader{file: path, lines: map[string]int{}}
	if len(data) > maxConfigBytes {
		l.issue(0, fmt.Sprintf("the file is larger than %d MiB", maxConfigBytes>>20))
		return nil, l.err()
	}
	s := probes.DefaultSettings()
	if !l.decode(data, &s) {
		return nil, l.err()
	}
	anchorPaths(&s, filepath.Dir(path))
	return &configFile{path: path, settings: s, lines: l.lines}, nil
}

// explain turns a settings error into the file's: each issue on the line
// of its key, or of the nearest enclosing key the file has.
func (c *configFile) explain(err error) error {
	var se *probes.SettingsError
	if !errors.As(err, &se) {
		return err
	}
	l := &loader{file: c.path, lines: c.lines}
	for _, is := range se.Issues {
		l.issue(l.lineOf(is.Key), is.Key+": "+is.Msg)
	}
	return l.err()
}

// anchorPaths makes the file's relative paths relative to its directory.
func anchorPaths(s *probes.Settings, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&s.DNS.TrustAnchor)
	abs(&s.TLS.Roots)
	abs(&s.TLS.ARICACert)
	abs(&s.API.Reprobe.TokenFile)
	abs(&s.Kube.Kubeconfig)
	if s.Canary != nil {
		abs(&s.Canary.CACert)
		abs(&s.Canary.AccountKey)
	}
	for i := range s.Agents {
		abs(&s.Agents[i].ClientCert)
		abs(&s.Agents[i].ClientKey)
		abs(&s.Agents[i].CAFile)
	}
}

// loader carries one read's state: which keys the file set (and on which
// line) and the problems found so far.
type loader struct {
	file   string
	lines  map[string]int
	issues []configIssue
	nodes  int
}

func (l *loader) err() error {
	sort.SliceStable(l.issues, func(i, j int) bool {
		a, b := l.issues[i].line, l.issues[j].line
		if a == 0 || b == 0 {
			return a != 0 && b == 0 // issues without a line go last
		}
		return a < b
	})
	return &configError{file: l.file, issues: l.issues}
}

// issue records a problem. Its message is kept to one line: a key or value
// of the file may hold line breaks (a quoted YAML key can), and each line
// of the error must name the file.
func (l *loader) issue(line int, msg string) {
	msg = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(msg)
	l.issues = append(l.issues, configIssue{line, msg})
}

func (l *loader) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// decode parses data as one YAML document and walks it into s. It returns
// false when the file has problems.
func (l *loader) decode(data []byte, s *probes.Settings) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.issue(0, "the file is empty: want at least a list of targets")
			return false
		}
		l.syntaxError(err)
		return false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.issue(extra.Line, "only one YAML document is allowed (found a second one)")
		return false
	} else if !errors.Is(err, io.EOF) {
		l.syntaxError(err)
		return false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Tag == "!!null" {
		l.issue(0, "the file is empty: want at least a list of targets")
		return false
	}
	l.walk(root, reflect.ValueOf(s).Elem(), "")
	return len(l.issues) == 0
}

// syntaxError reports the parser's error. yaml.v3 gives a syntax error's
// position only in its text ("yaml: line 3: found character that cannot
// start any token"): the one place a message is read for its line.
func (l *loader) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				l.issue(n, text)
				return
			}
		}
	}
	l.issue(0, msg)
}

// Element defaults of the settings' lists: what an entry holds before its
// keys are read.
var elementDefaults = map[reflect.Type]func() reflect.Value{
	reflect.TypeFor[probes.VantageSettings](): func() reflect.Value { return reflect.ValueOf(probes.DefaultVantage()) },
	reflect.TypeFor[probes.AgentSettings]():   func() reflect.Value { return reflect.ValueOf(probes.DefaultAgent()) },
	reflect.TypeFor[probes.CanarySettings]():  func() reflect.Value { return reflect.ValueOf(probes.DefaultCanary()) },
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// walk reads node n into v at key path p, recording the line of every key
// the file sets.
func (l *loader) walk(n *yaml.Node, v reflect.Value, p string) {
	l.nodes++
	if l.nodes > maxConfigNodes {
		if l.nodes == maxConfigNodes+1 {
			l.issue(n.Line, fmt.Sprintf("%s: the document has more than %d nodes (aliases expanded)", orRoot(p), maxConfigNodes))
		}
		return
	}
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil; depth++ {
		if depth > 100 {
			l.issue(n.Line, orRoot(p)+": alias chain too long")
			return
		}
		n = n.Alias
	}
	if n.Tag == "!!null" {
		delete(l.lines, p) // an empty value leaves the key unset: its default applies
		return
	}
	if _, ok := l.lines[p]; !ok && p != "" {
		l.lines[p] = n.Line // a list item; a mapping's keys are recorded with their own line
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			e := reflect.New(v.Type().Elem())
			if def, ok := elementDefaults[v.Type().Elem()]; ok {
				e.Elem().Set(def())
			}
			v.Set(e)
		}
		v = v.Elem()
	}
	switch {
	case reflect.PointerTo(v.Type()).Implements(textUnmarshaler):
		if !l.want(n, yaml.ScalarNode, p) {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			l.issue(n.Line, p+": "+err.Error())
		}
	case v.Kind() == reflect.Struct:
		l.structure(n, v, p)
	case v.Kind() == reflect.Map:
		if !l.want(n, yaml.MappingNode, p) {
			return
		}
		m := reflect.MakeMap(v.Type())
		l.mapping(n, p, func(key string, kn, vn *yaml.Node) {
			l.lines[join(p, key)] = kn.Line
			e := reflect.New(v.Type().Elem()).Elem()
			l.walk(vn, e, join(p, key))
			m.SetMapIndex(reflect.ValueOf(key), e)
		})
		v.Set(m)
	case v.Kind() == reflect.Slice:
		if !l.want(n, yaml.SequenceNode, p) {
			return
		}
		limit := probes.MaxListLen
		if p == "targets" {
			limit = probes.MaxTargets
		}
		if len(n.Content) > limit {
			l.issue(n.Line, fmt.Sprintf("%s: %d entries; at most %d are allowed", p, len(n.Content), limit))
			return
		}
		list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if def, ok := elementDefaults[v.Type().Elem()]; ok {
				list.Index(i).Set(def())
			}
			l.walk(c, list.Index(i), fmt.Sprintf("%s[%d]", p, i))
		}
		v.Set(list)
	default:
		l.scalar(n, v, p)
	}
}

// structure reads a mapping into a struct by its fields' yaml tags.
func (l *loader) structure(n *yaml.Node, v reflect.Value, p string) {
	if !l.want(n, yaml.MappingNode, p) {
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	l.mapping(n, p, func(key string, kn, vn *yaml.Node) {
		i, ok := fields[key]
		if !ok {
			l.issue(kn.Line, fmt.Sprintf("%s: unknown key%s", join(p, key), suggest(key, names)))
			return
		}
		l.lines[join(p, key)] = kn.Line
		l.walk(vn, v.Field(i), join(p, key))
	})
}

// mapping walks the pairs of a mapping node, refusing non-string and
// duplicate keys.
func (l *loader) mapping(n *yaml.Node, p string, each func(key string, kn, vn *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			l.issue(kn.Line, orRoot(p)+": a key must be a plain string")
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			l.issue(kn.Line, fmt.Sprintf("%s: duplicate key (first set on line %d)", join(p, kn.Value), first))
			continue
		}
		seen[kn.Value] = kn.Line
		each(kn.Value, kn, vn)
	}
}

var kindNames = map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}

func (l *loader) want(n *yaml.Node, k yaml.Kind, p string) bool {
	if n.Kind == k {
		return true
	}
	got := kindNames[n.Kind]
	if n.Kind == yaml.ScalarNode {
		got = fmt.Sprintf("%q", truncate(n.Value, 40))
	}
	l.issue(n.Line, fmt.Sprintf("%s: want %s, got %s", orRoot(p), kindNames[k], got))
	return false
}

// scalar reads a single value into v (a string, number or bool): the
// node's own decoding, with a message of ours when it does not fit.
func (l *loader) scalar(n *yaml.Node, v reflect.Value, p string) {
	if !l.want(n, yaml.ScalarNode, p) {
		return
	}
	if err := n.Decode(v.Addr().Interface()); err == nil {
		return
	}
	var what string
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		what = "an integer"
	case reflect.Float64:
		what = "a number"
	case reflect.Bool:
		what = "true or false"
	default:
		what = "a " + v.Kind().String()
	}
	l.issue(n.Line, fmt.Sprintf("%s: %q is not %s", p, truncate(n.Value, 40), what))
}

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "the document"
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// suggest names the known key closest to a misspelt one, or lists them.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, for short keys only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
