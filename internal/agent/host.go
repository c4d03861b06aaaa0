package agent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
)

// MachineResources reads this machine's vCPUs and memory (pods: 110, the
// kubelet's default).
func MachineResources() (milliCPU, memoryMiB int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kib, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return int64(goruntime.NumCPU()) * 1000, kib / 1024, nil
		}
	}
	return 0, 0, fmt.Errorf("/proc/meminfo has no MemTotal")
}

// HostIP is the first global unicast IPv4 address of an interface that is
// up: the address the stream server is registered at when none is given.
func HostIP() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("no interface has a global IPv4 address: give --advertise-address")
}
