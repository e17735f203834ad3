// Package agent is the `falco-k8s agent` workload: kube-apiserver posts audit events to its
// webhook, a bounded queue feeds evaluation workers that run the current compiled ruleset, and
// matching events become Falco alerts on the configured outputs. /healthz, /readyz, /metrics and
// /status report on it. observability.metrics_listen adds a listener with only /metrics and the
// probes (for a Prometheus on the pod network, the charm's metrics-endpoint relation);
// outputs.output_fields adds fixed fields (the Juju topology) to every alert's output_fields, and
// outputs.http.extra_urls more HTTP outputs (falcosidekick through the http-endpoint relation).
//
// # Layout
//
//   - agent/config: the YAML configuration (types, commented defaults, -o overrides, validation).
//   - agent/webhook: the HTTP endpoint (auth, limits, gzip, 405/413/400/429 answers).
//   - agent/queue: the bounded batch queue between the webhook and the workers.
//   - agent/output: stdout, file and HTTP alert outputs.
//   - agent/journal: the bounded, durable alert journal behind GET /alerts (one more output).
//   - agent/metrics: Prometheus metrics and the counters behind /status.
//   - agent/status: the /status JSON type (standard library only, for the charm).
//   - agent/follower: the OCI rules follower, a RuleSource (see below).
//   - agent (this package): wiring, rulesets, evaluation workers, servers, signals.
//
// # Rulesets and hot swap
//
// The running ruleset sits behind an atomic pointer. Workers load it before every event, so a
// new ruleset takes effect between two events: no event is lost or evaluated twice, and a batch
// may be evaluated partly by the old and partly by the new ruleset. A ruleset is always built
// whole, off to the side, from every file that makes it up, in this order:
//
//  1. the built-in ruleset (rules.builtin),
//  2. the files each RuleSource last had accepted, in the order sources were given,
//  3. rules.files and -r files (directories expand to their *.yaml/*.yml files, sorted), so
//     local files can append to and override followed rules.
//  4. the tuning file (rules.tuning_file, default <state_dir>/tuning.yaml) when it exists: the
//     exceptions `falco-k8s alerts tune` wrote. A tuning file that no longer loads is set aside
//     at start-up (recorded as ignored) rather than keeping the agent down.
//
// A candidate that fails to load changes nothing: the previous ruleset keeps running, the first
// error ("file:line:col: error: item: message (CODE)") is recorded in /status as last_ignored,
// ruleset_load_errors_total is incremented and an internal alert "Falco internal: hot restart
// failure" is sent at Critical, as Falco does when a hot reload fails.
//
// SIGHUP re-reads rules.files, the bearer token and the TLS certificate and reopens the file
// output (so logrotate's postrotate can send it); SIGUSR1 only reopens the file output, as in
// Falco. SIGTERM and SIGINT shut down gracefully: /readyz turns 503, the listeners stop
// accepting, in-flight requests finish, the queue is evaluated and the outputs are flushed.
//
// # The follower seam
//
// A RuleSource (the OCI follower) contributes rule files. The agent calls Initial once at
// start-up for the files the source last had accepted (its persisted state), then runs Run in a
// goroutine until shutdown. Run offers candidates through the RuleSink the agent passes it:
//
//	cand, err := sink.Compile(src.Name(), files) // whole candidate ruleset, nothing changes
//	if err != nil {
//		sink.Ignore(src.Name(), files, err)       // "artifacts ignored", reason recorded
//		return                                    // discard staging; keep the old files
//	}
//	promoteOnDisk()                               // e.g. atomic rename of the staged set
//	gen, err := sink.Accept(cand)                 // swap between two events: "artifacts accepted"
//
// Accept recompiles when the other inputs (local files, other sources) changed since Compile and
// returns an error, recording the candidate as ignored, if the recompiled set is invalid.
// SourceFile carries each file's artifact reference and digest so /status can show them, and
// ReportSource publishes the source's own health (last check, last error) in /status.
//
// # The OCI follower (agent/follower)
//
// follower.Follower is the RuleSource built when follow.refs is set (cmd/falco-k8s wires it). Per
// reference it sends one HEAD every follow.interval x (1 ± follow.jitter); the shared registry
// client keeps its token cache across checks. Only a new digest is pulled, by digest (manifest,
// config and layer verified against it), extracted safely (no traversal, links, devices or
// content over follow.max_artifact_size) into state_dir/follower/staging, and reduced to the
// files listed in follow.rule_files; every listed file must be provided by one of the followed
// artifacts, otherwise the candidate is ignored with the missing name. The whole candidate (every
// reference's files, in follow.refs then follow.rule_files order) goes through Compile; valid, it
// is committed on disk and then Accepted; invalid, it is Ignored with the engine's file:line
// reason, and the same inputs are not pulled again until something else changes. References
// that have nothing accepted yet join every check, so artifacts that complete each other are
// first accepted together.
//
// On disk (state_dir/follower) each accepted file set is an immutable content-addressed
// directory (sets/<sha256>) renamed in whole, and state.json, naming the set and digest of each
// reference, is replaced by temp file + fsync + rename + directory fsync: that rename is the
// single commit point, so a kill -9 at any moment leaves exactly the old or the new set.
// Initial returns the committed set, so a restart serves it even with the registry down.
//
// Registry errors are logged (warn when transient, error when the configuration must change)
// with the registry named and no secrets ("registry ghcr.io refused the credentials (401):
// check ..."), retried with exponential backoff from 10s up to the interval, waiting at least
// what a 429/503 Retry-After asked, and reported through ReportSource (last check, last
// success, last error). The last accepted ruleset keeps running throughout.
//
// The accepted files are written to state_dir/rules/<reference>/<path> and watched with
// fsnotify (debounced): a deleted file is restored; an edited file makes a candidate validated
// the same way, accepted as a local edit (its reference shows "(local edit)" in /status; a new
// upstream digest replaces it) or ignored and restored. POST /sync[?dry_run=true] (the charm's
// sync-rules action) runs Follower.Sync: every reference is checked at once and the results
// ("unchanged", "accepted", "ignored", "error", with digest and reason) are returned; a dry run
// compiles the candidate and changes and records nothing.
package agent
