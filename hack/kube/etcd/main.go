// Command etcd is the etcd server the test bed's Kubernetes control plane stores
// its objects in. It is upstream's own main, built from the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
