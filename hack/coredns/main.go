// Command coredns is CoreDNS with the plugins a cluster's DNS needs
// (kubernetes, cache, health, ready, errors, log, loadbalance, reload),
// built from CoreDNS's Go module by hack/build-coredns.sh for the test bed
// and make up. It forwards nothing: names outside the cluster's zone are
// answered by no upstream (no instance of a test reaches the machine's
// resolver).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives in the order of CoreDNS's plugin.cfg (the order a query passes
// them).
var directives = []string{"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
