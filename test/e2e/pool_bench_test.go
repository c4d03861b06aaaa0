package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/datapath"
)

// BenchmarkSecurityGroupUpdate: a security group whose members run on both
// hosts of a pool (eci agents as processes); 20 rule changes, each timed
// from the API's answer to the new rule in the table of every host (read
// with nft every 5 ms): the median and the slowest.
func BenchmarkSecurityGroupUpdate(b *testing.B) {
	p := startPool(b)
	c := p.srv.TenantClient(b, "bench")
	sg := &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{Name: "web"}}
	if _, err := c.PutSecurityGroup(p.ctx, sg); err != nil {
		b.Fatal(err)
	}
	for _, h := range p.bed.Hosts {
		g := poolGroup(p.bed, "member-"+h.Name, "exec sleep 3600")
		g.Spec.SecurityGroupIDs = []string{"web"}
		p.pin(c, h.Name, g)
	}
	table := datapath.FirewallTable(p.bed.Network.AgentNetwork)
	for i := 0; i < b.N; i++ {
		var took []time.Duration
		for n := range 20 {
			marker := fmt.Sprintf("198.19.%d.0/24", 200+n%50)
			sg.Spec.Ingress = []apiv1.SecurityRule{{Protocol: "TCP", PortRange: fmt.Sprintf("%d/%d", 1000+n, 1000+n), CIDR: marker}}
			if _, err := c.PutSecurityGroup(p.ctx, sg); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			want := fmt.Sprintf("dport %d-%d", 1000+n, 1000+n)
			for _, h := range p.bed.Hosts {
				for {
					out, _ := exec.Command("ip", "netns", "exec", h.NetNS, "nft", "list", "table", "inet", table).Output()
					if strings.Contains(string(out), want) {
						break
					}
					if time.Since(start) > 10*time.Second {
						b.Fatalf("host %s: no rule %q after 10 s:\n%s", h.Name, want, out)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			took = append(took, time.Since(start))
		}
		b.ReportMetric(ms(quantile(took, 0.5)), "enforced-p50-ms")
		b.ReportMetric(ms(quantile(took, 1)), "enforced-max-ms") // of 20: no p99 to speak of
	}
}
