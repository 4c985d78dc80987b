// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 (the
// etcd repository's own main module carries replace directives, so it cannot
// be built from the module proxy; this is its main function, unchanged).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
