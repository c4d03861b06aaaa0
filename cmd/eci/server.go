package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/server"
)

func newServerCommand() *cobra.Command {
	var cfg server.Config
	var policy, eipRange string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: container group API, placement, IPAM, metering",
		Long: `eci server is the instance service's control plane. It serves the HTTP/JSON API
(v1, docs/api.md) that virtual nodes, host agents and the eci client use, over TLS
with bearer tokens (admin, tenant and host tokens).

It stores container groups, hosts, vSwitches, events and tenants in etcd: an
embedded single-member etcd in --data-dir by default, or an external etcd cluster
given with --etcd-endpoints. Several servers can share one etcd; they elect a
leader for placement.

For every new container group it normalizes the size to the supported spec table,
places the group on a host with capacity in an allowed zone and vSwitch (spread or
binpack, committed in an etcd transaction so no host is over-committed), allocates
its IP from the vSwitch (IPAM), and records the billing timestamps. Groups on a
host whose lease expires become Failed with reason HostLost.

On first start it generates a CA and serving certificate (<data-dir>/tls), an
admin token (<data-dir>/admin.token) and the key that seals stored values
(<data-dir>/encryption.key: registry passwords, secret files and every other
value are encrypted at rest with AES-GCM), and writes a client config for the
admin to <data-dir>/admin.conf:  eci --config <data-dir>/admin.conf ps
The embedded etcd serves only this server (TLS with a client certificate).

Serves /metrics (Prometheus), /healthz and /readyz.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Policy = scheduler.Policy(policy)
			if eipRange != "" {
				r, _ := netip.ParsePrefix(eipRange)
				if err := control.CheckEIPRange(r, cfg.Addr); err != nil {
					return err
				}
				cfg.Control.EIPRange = r.Masked()
			}
			if cfg.AdminToken == "" {
				cfg.AdminToken = os.Getenv("ECI_ADMIN_TOKEN")
			}
			srv, err := server.New(cfg)
			if err != nil {
				return err
			}
			go func() {
				select {
				case <-srv.Ready():
				case <-srv.Done():
					return
				}
				conf := filepath.Join(cfg.DataDir, "admin.conf")
				if err := client.WriteConfigFile(conf, client.ConfigFile{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()}); err != nil {
					log.G(ctx).Warn("write the admin client config", "err", err)
					return
				}
				log.G(ctx).Info("admin client config written", "path", conf, "try", fmt.Sprintf("eci --config %s ps", conf))
			}()
			return srv.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Addr, "listen", "127.0.0.1:8443", "address of the API (host:port)")
	fl.StringVar(&cfg.DataDir, "data-dir", "/var/lib/eci/server", "embedded etcd data, generated TLS files, the admin token")
	fl.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "an external etcd cluster (comma-separated URLs) instead of the embedded one")
	fl.StringVar(&cfg.EtcdCAFile, "etcd-cafile", "", "CA of the external etcd's serving certificate")
	fl.StringVar(&cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	fl.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", "", "key of --etcd-certfile")
	fl.StringVar(&cfg.EncryptionKeyFile, "encryption-key-file", "", "keys that seal stored values, one \"name: base64 of 32 bytes\" a line, the first sealing (default: generated into <data-dir>/encryption.key; required with --etcd-endpoints)")
	fl.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "serving certificate (default: generated into <data-dir>/tls)")
	fl.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "key of --tls-cert-file")
	fl.StringSliceVar(&cfg.TLSNames, "tls-san", nil, "extra DNS names or IPs of the generated certificate")
	fl.StringVar(&cfg.AdminToken, "admin-token", "", "the admin's bearer token (default $ECI_ADMIN_TOKEN, or generated into <data-dir>/admin.token)")
	fl.StringVar(&policy, "placement-policy", "spread", "how hosts are chosen: "+strings.Join([]string{string(scheduler.Spread), string(scheduler.Binpack)}, ", "))
	fl.DurationVar(&cfg.HostLeaseTTL, "host-lease-ttl", 0, "a host without a heartbeat for this long is lost (default 40s)")
	fl.Func("instance-type", "NAME=VCPU,GIB[,GPUS]: a named instance type groups may ask for (spec.instanceType, eci-instance-type, eci-use-specs); repeat for several", func(v string) error {
		name, t, err := control.ParseInstanceType(v)
		if err != nil {
			return err
		}
		if cfg.Control.InstanceTypes == nil {
			cfg.Control.InstanceTypes = map[string]control.InstanceType{}
		}
		if _, twice := cfg.Control.InstanceTypes[name]; twice {
			return fmt.Errorf("--instance-type %q: %s is named twice", v, name)
		}
		cfg.Control.InstanceTypes[name] = t
		return nil
	})
	fl.StringSliceVar(&cfg.Control.TenantRuntimeHandlers, "tenant-runtime-handlers", nil, "the only runtime handlers tenants' groups may ask for (a pod's RuntimeClass), comma-separated; empty: any a host offers")
	fl.DurationVar(&cfg.Control.SpotNotice, "spot-notice", control.DefaultSpotNotice, "how long before it ends a spot instance whose capacity a pay-as-you-go one takes is told (SpotToBeReleased)")
	fl.Float64Var(&cfg.TenantRateLimit.QPS, "tenant-qps", server.DefaultTenantRateLimit.QPS, "requests a second one tenant token may make to this server (past it: 429 with Retry-After; -1: no limit)")
	fl.IntVar(&cfg.TenantRateLimit.Burst, "tenant-burst", server.DefaultTenantRateLimit.Burst, "requests one tenant token may make at once")
	fl.Float64Var(&cfg.HostRateLimit.QPS, "host-qps", server.DefaultHostRateLimit.QPS, "requests a second one host (agent) token may make to this server (-1: no limit)")
	fl.IntVar(&cfg.HostRateLimit.Burst, "host-burst", server.DefaultHostRateLimit.Burst, "requests one host token may make at once")
	fl.StringVar(&cfg.PriceBookFile, "price-book", "", "the price book bills are rated with (YAML, docs/billing.md), read again every 10 s when it changes (an invalid change is logged, naming the line, and the book in use stays); default: the spec's list prices")
	fl.StringVar(&cfg.CostMetricsTag, "cost-metrics-tag", "team", "the tag whose value labels the cost metrics (GET /metrics/billing, admin only), besides the tenant; a tenant's first 50 values each, the others as \"other\"")
	fl.DurationVar(&cfg.Control.UsageRetention, "usage-retention", control.DefaultUsageRetention, "how long a group's usage record is kept after the group is gone")
	fl.DurationVar(&cfg.Control.UsageDetail, "usage-detail", control.DefaultUsageDetail, "how long the usage records of short groups (within one hour, or across one hour's end) are kept one by one; after it they are summed by tenant, hour, price period, size, tags and virtual node (docs/billing.md; at least 1h)")
	fl.StringVar(&eipRange, "eip-range", "", "addresses of the hosts' network that EIPs are given from (none: no EIPs)")
	fl.IntVar(&cfg.Control.MaxStoredGroups, "max-stored-groups-per-tenant", control.DefaultMaxStoredGroups, "groups one tenant may store, every state (ended ones count until they are deleted or retention removes them)")
	fl.IntVar(&cfg.Control.MaxLargeGroups, "max-large-groups-per-tenant", control.DefaultMaxLargeGroups, fmt.Sprintf("groups over %d KiB (files volumes) one tenant may store while they run", control.LargeGroupBytes>>10))
	return cmd
}
