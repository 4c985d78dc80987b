// Command toolbuild builds the universe's tools (all of them, or those named
// as arguments) into the tools cache, the way tests build them on demand,
// and prints one "name version path" line per tool. `make tools` runs it.
//
//	go run ./testenv/toolbuild/cmd/toolbuild [-list] [NAME...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/acmediag/acmediag/testenv/toolbuild"
)

func main() { os.Exit(run()) }

func run() int {
	list := flag.Bool("list", false, "print the tools and their cache paths without building")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tools := toolbuild.All()
	if flag.NArg() > 0 {
		tools = tools[:0]
		for _, name := range flag.Args() {
			t, ok := toolbuild.ByName(name)
			if !ok {
				fmt.Fprintf(os.Stderr, "toolbuild: unknown tool %q (known: pebble etcd kube-apiserver helm promtool prometheus)\n", name)
				return 2
			}
			tools = append(tools, t)
		}
	}
	var b toolbuild.Builder
	for _, t := range tools {
		v, err := b.Version(t)
		if err != nil {
			fmt.Fprintln(os.Stderr, "toolbuild:", err)
			return 1
		}
		path, err := b.Path(t)
		if !*list && err == nil {
			path, err = b.Build(ctx, t)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "toolbuild:", err)
			return 1
		}
		fmt.Printf("%s %s %s\n", t.Name, v, path)
	}
	return 0
}
