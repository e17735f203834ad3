// Package agent is the `falco-k8s agent` workload: kube-apiserver posts audit events to its
// webhook, a bounded queue feeds evaluation workers that run the current compiled ruleset, and
// matching events become Falco alerts on the configured outputs. /healthz, /readyz, /metrics and
// /status report on it.
//
// # Layout
//
//   - agent/config: the YAML configuration (types, commented defaults, -o overrides, validation).
//   - agent/webhook: the HTTP endpoint (auth, limits, gzip, 405/413/400/429 answers).
//   - agent/queue: the bounded batch queue between the webhook and the workers.
//   - agent/output: stdout, file and HTTP alert outputs.
//   - agent/metrics: Prometheus metrics and the counters behind /status.
//   - agent/status: the /status JSON type (standard library only, for the charm).
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
package agent
