# edp — event-driven pipelines on AWS. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS      := .tools/cdk
TOOLS_BIN  := $(CURDIR)/$(TOOLS)/node_modules/.bin
# The pinned Node 22 and CDK CLI come first on PATH, for the CLI and for the
# jsii runtime that the Go CDK app starts.
export PATH := $(TOOLS_BIN):$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

CDK        := $(TOOLS_BIN)/cdk
APP        := bin/cdk-app
CONFIG     ?= examples/random-forest.yaml
OUT        ?= out
ARCH       ?= oneoff
# Empty CONFIGS: examples/, or the job's configs/ with JOB.
CONFIGS    ?=
# JOB: a command job's directory (docs/jobs.md), e.g. examples/jobs/shell-report.
JOB        ?=
STACK      ?= EdpOneOff
FUZZTIME   ?= 60s
# Packages whose code is concurrent and not jsii-bound: tested under -race.
RACE_PKGS  := ./consumer/... ./lambdas/... ./internal/... ./cmd/... ./examples/...
CDK_PKGS   := . ./stacks/...
CFN_LINT_IGNORE := W3005

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

# --- setup -----------------------------------------------------------------

.PHONY: tools
tools: $(TOOLS)/node_modules/.installed ## install the pinned CDK CLI and Node 22 (idempotent); check moto_server and cfn-lint
	@command -v moto_server >/dev/null || pip install 'moto[server]' || { echo "moto_server is needed by the tests: pip install 'moto[server]'"; exit 1; }
	@command -v cfn-lint >/dev/null || pip install cfn-lint || { echo "cfn-lint is needed by 'make lint': pip install cfn-lint"; exit 1; }

# The example job examples/jobs/sklearn-iris is tested with Debian's Python
# (its e2e test and examples/jobs): install scikit-learn and PyYAML for it
# from Debian's packages unless they are there already.
.PHONY: python-deps
python-deps: ## install Debian's python3-sklearn and python3-yaml for the Python example job's tests (idempotent)
	@if /usr/bin/python3 -c 'import sklearn, yaml' >/dev/null 2>&1; then \
	  echo "python-deps: /usr/bin/python3 has scikit-learn and PyYAML"; \
	else \
	  echo "python-deps: /usr/bin/python3 lacks scikit-learn or PyYAML: apt-get install python3-sklearn python3-yaml"; \
	  command -v apt-get >/dev/null || { echo "python-deps: no apt-get: install scikit-learn and PyYAML for /usr/bin/python3 (pip install -r examples/jobs/sklearn-iris/requirements.txt)"; exit 1; }; \
	  as_root=""; if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then as_root=sudo; fi; \
	  $$as_root apt-get update -qq && \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-sklearn python3-yaml && \
	  /usr/bin/python3 -c 'import sklearn, yaml; print("python-deps: installed scikit-learn", sklearn.__version__, "and PyYAML", yaml.__version__)'; \
	fi

$(TOOLS)/node_modules/.installed: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to install the CDK CLI (Debian: apt-get install npm)"; exit 1; }
	npm ci --prefix $(TOOLS) --no-audit --no-fund --loglevel=error
	@touch $@

# --- build -----------------------------------------------------------------

.PHONY: app
app: ## build the CDK app binary that cdk.json runs
	go build -o $(APP) .

.PHONY: build
build: app ## build everything: CDK app, consumer, alarm-dispatch Lambda
	go build -o bin/consumer ./consumer
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -tags lambda.norpc -o bin/alarm-dispatch/bootstrap ./lambdas/alarm-dispatch

.PHONY: image
image: ## build the consumer image for linux/arm64 and linux/amd64 (needs Docker with buildx; cdk deploy does this itself)
	docker buildx build --platform linux/arm64,linux/amd64 -f consumer/Dockerfile -t edp-consumer:dev .

# --- run -------------------------------------------------------------------

.PHONY: local
local: tools edp ## deploy a stack into a local cloud (moto + local ECS), upload configs, show the runs (ARCH=oneoff|alarm-service|alarm-dispatch|cron, JOB=examples/jobs/<name>, CONFIGS=dir)
	bin/edp local -arch $(ARCH) $(if $(JOB),-job $(JOB)) $(if $(CONFIGS),-configs $(CONFIGS))

.PHONY: local-up
local-up: tools edp ## keep a local cloud of ARCH running in the background and print how to use it
	bin/edp local up -detach -arch $(ARCH) $(if $(JOB),-job $(JOB))

.PHONY: local-down
local-down: edp ## stop the local cloud (tasks, Lambda, moto_server), even one that was killed
	bin/edp local down

# An empty STACK would pass the next word (-local) as the stack's name:
# refuse it before building anything.
ifneq ($(filter smoke,$(MAKECMDGOALS)),)
ifeq ($(strip $(STACK)),)
$(error make smoke: STACK is empty; set STACK to a stack (EdpOneOff, EdpAlarmService, EdpAlarmDispatch, EdpCron) or an architecture (oneoff, alarm-service, alarm-dispatch, cron))
endif
endif

.PHONY: smoke
smoke: edp ## check a deployed stack end to end: STACK=EdpOneOff (AWS credentials), or LOCAL=1 for the local cloud
	bin/edp smoke -stack='$(STACK)' $(if $(LOCAL),-local,)

.PHONY: run
run: ## run one pipeline job from a file, no AWS at all (CONFIG=..., OUT=...)
	go run ./consumer run --config $(CONFIG) --out $(OUT)

.PHONY: edp
edp: ## build the operator command bin/edp
	go build -o bin/edp ./cmd/edp

# --- test ------------------------------------------------------------------

.PHONY: test
test: tools python-deps ## everything CI runs: vet, the docs check, all Go tests, synth of every stack, template lint
	$(MAKE) --no-print-directory vet docs-check
	go test -race -count=1 $(RACE_PKGS)
	go test -count=1 $(CDK_PKGS)
	$(MAKE) --no-print-directory synth lint

.PHONY: vet
vet: ## gofmt check and go vet
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	  if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	go vet ./...

.PHONY: docs-check
docs-check: ## check that the docs name only existing make targets, edp/consumer commands and flags, context keys, links
	go test -count=1 ./internal/docscheck/

.PHONY: synth
synth: tools app ## synthesize every stack into cdk.out (no AWS credentials, no Docker)
	rm -rf cdk.out
	$(CDK) synth --quiet

.PHONY: lint
lint: ## cfn-lint every synthesized template (run after synth)
	@ls cdk.out/*.template.json >/dev/null 2>&1 || { echo "no templates: run 'make synth' first"; exit 1; }
	cfn-lint --ignore-checks $(CFN_LINT_IGNORE) -- cdk.out/*.template.json

# make bench: runs per benchmark (the median and min–max are reported);
# BENCH_LOCAL=0 skips the local cloud (its architectures and its ceiling),
# BENCH_MAKE_TEST=1 times make test, BENCH_NOTE is a sentence for the
# report's header.
BENCH_COUNT ?= 5
BENCH_LOCAL ?= 1

.PHONY: bench
bench: tools ## run the benchmarks and write docs/benchmarks.md, ~8-10 min (BENCH_COUNT=5; BENCH_LOCAL=0 skips the local cloud, BENCH_MAKE_TEST=1 times make test)
	go run ./cmd/benchreport -out docs/benchmarks.md -count $(BENCH_COUNT) $(if $(filter 1,$(BENCH_LOCAL)),-local -ceiling) $(if $(filter 1,$(BENCH_MAKE_TEST)),-make-test) $(if $(BENCH_NOTE),-note "$$BENCH_NOTE")

.PHONY: bench-ceiling
bench-ceiling: tools ## measure only the local cloud's ceiling (alarm-service, 200 configs at 1 and 10 tasks, ~4 min) and print its section of docs/benchmarks.md
	go run ./cmd/benchreport -ceiling-only

.PHONY: bench-consumer
bench-consumer: ## consumer start-up, idle RSS, CPU per job, drain throughput vs moto's own ceiling
	go test -run '^$$' -bench ServeStartup -benchtime 10x ./consumer/e2e/
	go test -run '^$$' -bench Drain200 -benchtime 3x ./consumer/e2e/

.PHONY: choosing
choosing: ## regenerate docs/choosing.md's result tables and docs/img's plots (edp simulate, every architecture and scenario, seed 1)
	go run ./cmd/edp simulate -seed 1 -svg docs/img -markdown docs/choosing.md

.PHONY: fuzz
fuzz: ## fuzz the config parser for FUZZTIME (default 60s)
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./consumer/config/

# --- deploy ----------------------------------------------------------------

.PHONY: bootstrap
bootstrap: tools app ## cdk bootstrap the current account/region (once per account and region)
	$(CDK) bootstrap

deploy-oneoff: STACK := EdpOneOff
deploy-alarm-service: STACK := EdpAlarmService
deploy-alarm-dispatch: STACK := EdpAlarmDispatch
deploy-cron: STACK := EdpCron
destroy-oneoff: STACK := EdpOneOff
destroy-alarm-service: STACK := EdpAlarmService
destroy-alarm-dispatch: STACK := EdpAlarmDispatch
destroy-cron: STACK := EdpCron

.PHONY: deploy-oneoff deploy-alarm-service deploy-alarm-dispatch deploy-cron
deploy-oneoff: ## deploy EdpOneOff (every upload starts a drain task); JOB=dir deploys your job (docs/jobs.md)
deploy-alarm-service: ## deploy EdpAlarmService (ECS service scaled 0..N by queue alarms)
deploy-alarm-dispatch: ## deploy EdpAlarmDispatch (alarm -> SNS -> Lambda -> RunTask)
deploy-cron: ## deploy EdpCron (scheduled drain task)
deploy-oneoff deploy-alarm-service deploy-alarm-dispatch deploy-cron: tools app
	$(CDK) deploy $(STACK) --require-approval broadening $(if $(JOB),-c edp:jobDir=$(JOB))

.PHONY: destroy-oneoff destroy-alarm-service destroy-alarm-dispatch destroy-cron
destroy-oneoff: ## destroy EdpOneOff (bucket and queues are retained unless edp:removalPolicy=destroy)
destroy-alarm-service: ## destroy EdpAlarmService
destroy-alarm-dispatch: ## destroy EdpAlarmDispatch
destroy-cron: ## destroy EdpCron
destroy-oneoff destroy-alarm-service destroy-alarm-dispatch destroy-cron: tools app
	$(CDK) destroy $(STACK)

.PHONY: clean
clean: ## remove build outputs (keeps installed tools)
	rm -rf bin cdk.out out .edp-local
