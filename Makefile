# Thin targets over hack/ scripts; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: up
up: ## install, build and start eci on a local Kubernetes control plane with no real nodes
	@hack/up.sh

.PHONY: down
down: ## stop what `make up` started
	@hack/down.sh

.PHONY: test
test: ## install what is missing, build, and run every test (unit, integration, e2e) on the real test bed
	@hack/test.sh

.PHONY: bench
bench: ## run the benchmarks on the real test bed and print their figures
	@hack/bench.sh

.PHONY: lint
lint: ## no tracked file over 1 MiB, gofmt, go vet and golangci-lint
	@hack/lint.sh

.PHONY: build
build: ## build the eci binary into _output/bin/eci
	@hack/build.sh

.PHONY: deps
deps: ## install the Debian packages and containerd the project needs (root)
	@hack/install-deps.sh

.PHONY: kube
kube: ## build the Kubernetes control plane, kubelet, kubectl, kube-proxy and etcd into _output/kube/bin
	@hack/build-kube.sh

.PHONY: cluster
cluster: ## start the test bed alone (control plane, containerd, registry) in the background
	@hack/local-cluster.sh up

.PHONY: clean
clean: ## stop the local cluster and remove _output (the Go build cache stays)
	@hack/down.sh || true
	rm -rf _output
