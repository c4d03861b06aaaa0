#!/usr/bin/env bash
# make up: the main job on one machine. A local Kubernetes control plane with
# NO real nodes (the test bed's: apiserver, controller-manager, scheduler, etcd),
# a project-owned containerd and a registry holding busybox, then `eci up`:
# the eci server, an agent on that containerd and a virtual node joined to the
# cluster. Every pod of the cluster runs as an elastic container instance.
# It deploys a sample (a Deployment of 3 busybox httpd replicas and a Job) and
# prints the kubeconfig and what to try. `make down` stops everything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
eci::need_root "make up" up
state=$ECI_OUT/local-cluster
info=$state/info
pidfile=$state/eci-up.pid

# Each step says what it does and, the first time, how long it takes (the
# Kubernetes build: 5-11 minutes on 2 cores); later runs find them built.
echo "up: preparing this machine: Debian packages and containerd, Kubernetes, CoreDNS, metrics-server and eci built from source"
QUIET_INFO=1 "$ECI_ROOT/hack/local-cluster.sh" up
get() { sed -n "s/^$1=//p" "$info"; }
kubeconfig=$(get kubeconfig)
kubectl=$(get kubectl)
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

# The cluster DNS: CoreDNS behind the tenth address of the service range (as
# kubeadm gives kube-dns), which ClusterFirst pods' resolv.conf names.
IFS=. read -r o1 o2 o3 o4 <<< "$(get service_cidr | cut -d/ -f1)"
cluster_dns=$o1.$o2.$o3.$((o4 + 10))

# HOSTS=N: this machine's containerd is one host; N-1 more are network
# namespaces of the bed, each with its containerd and an eci agent; the API
# listens on the underlay, where they reach it, and the agents' tunnels join
# their instances.
hosts=$(get hosts); hosts=${hosts:-0}
listen=127.0.0.1:8443; tunnel=()
if [ "$hosts" -gt 0 ]; then
  listen=$(get underlay_gateway):8443; tunnel=(--tunnel-ip "$(get underlay_gateway)" --eip-range "$(get eip_range)")
fi
ready=$(get dir)/eci/ready
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "up: eci up already runs (pid $(cat "$pidfile"))"
else
  echo "up: starting eci up: the eci server, an agent on containerd and the virtual node eci-vnode (about 10 s)"
  rm -f "$ready"
  nohup "$ECI_BIN" up --data-dir "$(get dir)/eci" --listen "$listen" "${tunnel[@]}" \
    --cri-endpoint "$(get cri)" --cni-conf-dir "$(get cni_conf_dir)" --cni-bin-dir "$(get cni_bin_dir)" \
    --registry-config-dir "$(get certs_dir)" --allowed-local-registry "$(get busybox | cut -d/ -f1)" --cgroup-parent "$(get cgroup_parent)/eci" \
    --log-dir "$(get dir)/eci/logs" --pod-cidr "$(get pod_cidr)" --network-name "$(get network)" --resolv-conf "" \
    --kubeconfig "$kubeconfig" --node-ip "$(get node_ip)" --client-ca-file "$(get ca_file)" \
    --cluster-dns "$cluster_dns" \
    > "$state/eci-up.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
fi
# eci up writes $ready once its server, agent and virtual node all serve.
# The node's Ready condition and the pods' status may be stale (left by an
# eci up that was killed): they prove nothing until then.
for i in $(seq 601); do
  [ -f "$ready" ] && break
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "up: eci up stopped:" >&2; tail -20 "$state/eci-up.log" >&2; exit 1; }
  [ "$i" = 601 ] && { echo "up: eci up did not come up in 120 s:" >&2; tail -20 "$state/eci-up.log" >&2; exit 1; }
  sleep 0.2
done
k wait --for=condition=Ready node/eci-vnode --timeout=120s > /dev/null

admin=$(get dir)/eci/server/admin.conf
for i in $(seq "$hosts"); do
  h=h$i; hpid=$state/agent-$h.pid
  if [ -f "$hpid" ] && kill -0 "$(cat "$hpid")" 2>/dev/null; then continue; fi
  hdir=$(get "${h}_dir")
  [ -s "$hdir/host.token" ] || ECI_CONFIG=$admin "$ECI_BIN" token create --host "$h" > "$hdir/host.token"
  chmod 600 "$hdir/host.token"
  cp "$ECI_OUT/bin/eci-cni" "$(get "${h}_cni_bin_dir")/eci-cni"
  nohup nsenter --net="/var/run/netns/$(get "${h}_netns")" -- "$ECI_BIN" agent --server "https://$listen" \
    --ca-file "$(get dir)/eci/server/tls/ca.crt" --token-file "$hdir/host.token" --host-name "$h" --zone local \
    --cri-endpoint "$(get "${h}_cri")" --cni-conf-dir "$(get "${h}_cni_conf_dir")" --network-name "$(get network)" \
    --cni-socket "$hdir/cni.sock" --registry-config-dir "$(get "${h}_certs_dir")" --cgroup-parent "$(get cgroup_parent)/$h" \
    --log-dir "$hdir/logs" --state-dir "$hdir/agent" --resolv-conf "" \
    --stream-address "$(get "${h}_tunnel_ip"):0" --tunnel-ip "$(get "${h}_tunnel_ip")" \
    > "$state/agent-$h.log" 2>&1 < /dev/null &
  echo $! > "$hpid"
  echo "up: host $h (network namespace $(get "${h}_netns"), tunnel IP $(get "${h}_tunnel_ip")) joins the pool"
done

# eci-profile sends every pod of the namespace to the virtual node: the
# samples below are plain manifests. Wait until the webhook sees the label.
k label namespace default alibabacloud.com/eci=true --overwrite > /dev/null
for _ in $(seq 100); do
  k run probe --image=probe --dry-run=server -o jsonpath='{.spec.nodeSelector.type}' 2>/dev/null | grep -q virtual-kubelet && break
  sleep 0.1
done

echo "up: starting the cluster DNS (CoreDNS at $cluster_dns, an instance on the virtual node)"
sed -e "s|\${COREDNS_IMAGE}|$(get coredns)|" -e "s|\${CLUSTER_DNS}|$cluster_dns|" -e "s|\${CLUSTER_DOMAIN}|cluster.local|" \
  "$ECI_ROOT/deploy/addons/coredns.yaml" | k apply -f - > /dev/null
k -n kube-system rollout status deployment/coredns --timeout=180s > /dev/null

echo "up: starting metrics-server (kubectl top, HorizontalPodAutoscalers; an instance on the virtual node)"
sed -e "s|\${METRICS_SERVER_IMAGE}|$(get metrics_server)|" "$ECI_ROOT/deploy/addons/metrics-server.yaml" | k apply -f - > /dev/null

echo "up: deploying the sample: a Deployment of 3 httpd replicas, its Service and a Job (about 30 s)"
busybox=$(get busybox)
k apply -f - > /dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: $busybox
        command: [sh, -c, 'mkdir -p /srv && hostname > /srv/index.html && exec httpd -f -p 8080 -h /srv']
        ports: [{name: http, containerPort: 8080}]
        resources: {limits: {cpu: 250m, memory: 512Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: $busybox
        command: [sh, -c, 'echo hello from an elastic container instance']
        resources: {limits: {cpu: 250m, memory: 512Mi}}
YAML
k rollout status deployment/web --timeout=180s > /dev/null
k wait --for=condition=complete job/hello --timeout=180s > /dev/null
k -n kube-system rollout status deployment/metrics-server --timeout=180s > /dev/null

cat <<EOF2

eci is up: a serverless Kubernetes cluster whose every pod runs as an elastic
container instance (no real nodes; one virtual node, eci-vnode). The namespace
default is labelled alibabacloud.com/eci=true, so eci-profile sends its pods to
the virtual node unchanged (docs/profile.md).

  export KUBECONFIG=$kubeconfig
  alias kubectl=$kubectl

  kubectl get nodes -o wide
  kubectl get pods -o wide                  # each pod: its own IP, its own instance
  kubectl get pod -l app=web -o jsonpath='{.items[*].metadata.annotations}'
  curl http://\$(kubectl get pod -l app=web -o jsonpath='{.items[0].status.podIP}'):8080/
  kubectl logs job/hello
  kubectl exec deploy/web -- cat /srv/index.html
  kubectl exec deploy/web -- wget -qO- http://web/   # the Service by name: cluster DNS, ClusterIP
  kubectl scale deployment/web --replicas=5
  kubectl top pods; kubectl top node eci-vnode   # metrics-server (a minute after start)
  kubectl autoscale deployment/web --cpu=50% --min=1 --max=5
  kubectl run hi --image=$busybox --restart=Never -- echo hi   # any pod: an instance

The instance service itself: $ECI_BIN --config $(get dir)/eci/server/admin.conf ps
  (hosts of the pool: ... hosts; make up HOSTS=3 runs this machine and two more
  hosts in network namespaces, joined by tunnels: docs/networking.md)
Logs: $state/eci-up.log, $state/bed.log. Stop everything: make down
EOF2
