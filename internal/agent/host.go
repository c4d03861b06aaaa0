package agent

import (
	"bufio"
	"fmt"
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
