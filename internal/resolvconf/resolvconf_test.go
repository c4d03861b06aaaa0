package resolvconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

const testResolvConf = "# a comment\nnameserver 198.18.0.53\nsearch old.test\nsearch bed.test\noptions ndots:2 timeout:1\n"

// options prints d's options as resolv.conf has them.
func options(d *apiv1.DNSConfig) string {
	var out []string
	for _, o := range d.Options {
		if o.Value != "" {
			out = append(out, o.Name+":"+o.Value)
		} else {
			out = append(out, o.Name)
		}
	}
	return strings.Join(out, " ")
}

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	long := "# " + strings.Repeat("x", 100<<10) + "\n"
	body := long + testResolvConf + "nameserver 127.0.0.53\nnameserver\t198.18.0.54 ; trailing comment\r\nnameserver ::1\nnameserver 198.18.0.55\nnameserver 198.18.0.56\ndomain ignored.test\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Nameservers, " ") != "198.18.0.53 198.18.0.54 198.18.0.55" || strings.Join(got.Searches, " ") != "bed.test" ||
		options(got) != "ndots:2 timeout:1" {
		t.Fatalf("read %+v: want three nameservers (no loopback: systemd-resolved's stub is the instance's own), the last search line, the options", got)
	}
	if err := os.WriteFile(p, []byte("options ndots:2 rotate\noptions ndots:3\nnameserver 198.18.0.1\nnameserver 198.18.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(p); options(got) != "ndots:3 rotate" || strings.Join(got.Nameservers, " ") != "198.18.0.1" {
		t.Fatalf("repeated options and nameservers: %+v, want one of each, the last option of a name", got)
	}
	if err := os.WriteFile(p, []byte("search a.test. .\nsearch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(p); len(got.Searches) != 0 {
		t.Fatalf("a bare search line after others: %v, want it to clear them", got.Searches)
	}
	if err := os.WriteFile(p, []byte("search a.test. . b.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(p); strings.Join(got.Searches, " ") != "a.test b.test" {
		t.Fatalf("searches %v, want trailing dots and '.' dropped", got.Searches)
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file: no error")
	}
}

// Merge is the kubelet's appendDNSConfig, and changes neither side.
func TestMerge(t *testing.T) {
	base := &apiv1.DNSConfig{Nameservers: []string{"198.18.0.53"}, Searches: []string{"bed.test"},
		Options: []apiv1.DNSOption{{Name: "ndots", Value: "2"}, {Name: "timeout", Value: "1"}}}
	add := &apiv1.DNSConfig{Nameservers: []string{"198.18.0.53", "198.18.0.10"}, Searches: []string{"ns.svc.cluster.local", "bed.test"},
		Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}, {Name: "edns0"}}}
	got := Merge(base, add)
	if s := fmt.Sprint(got.Nameservers, " ", got.Searches, " ", options(got)); s != "[198.18.0.53 198.18.0.10] [bed.test ns.svc.cluster.local] ndots:5 timeout:1 edns0" {
		t.Fatalf("Merge = %s", s)
	}
	if options(base) != "ndots:2 timeout:1" || len(base.Nameservers) != 1 {
		t.Fatalf("Merge changed its base: %+v", base)
	}
	if got := Merge(nil, nil); len(got.Nameservers)+len(got.Searches)+len(got.Options) != 0 {
		t.Fatalf("Merge(nil, nil) = %+v", got)
	}
}
