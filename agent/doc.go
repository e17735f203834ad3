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
//   - agent/webhook: the HTTP endpoint (auth, limits, gzip, 405/408/413/400/429 answers).
//   - agent/queue: the bounded batch queue between the webhook and the workers, and the memory
//     budget they share.
//   - agent/output: stdout, file and HTTP alert outputs.
//   - agent/journal: the bounded, durable alert journal behind GET /alerts (one more output).
//   - agent/metrics: Prometheus metrics and the counters behind /status.
//   - agent/status: the API's JSON types, its route table and its one error body format,
//     {"error": "..."} with a 4xx/5xx status (standard library only, for the charm).
//   - agent/apiclient: the one client of that API, used by the charm's hooks and actions and
//     by `falco-k8s alerts review|tune --url` (CA file, bearer token).
//   - agent/follower: the OCI rules follower, a RuleSource (see below).
//   - agent/admission: the validating admission webhook (POST admission.path, default
//     /k8s-admission, on the webhook listener behind its credentials): an AdmissionRequest
//     becomes the audit event kube-apiserver would log, evaluated in the request's goroutine
//     with the running ruleset (tuning exceptions included; never through the audit queue); the
//     rules selected by admission.enforce warn or deny (admission.mode). The mapping and the
//     rules that cannot be decided at admission are documented there.
//   - agent (this package): wiring, rulesets, evaluation workers, servers, signals.
//
// # Memory
//
// Peak memory follows from the configuration: config.MemoryBound is webhook.memory_budget +
// webhook.queue.max_bytes + 128 MiB + 2 x workers x 32 MiB (kept parsers, below), and `falco-k8s agent` sets the Go memory limit 64 MiB below
// it (unless GOMEMLIMIT is set) so garbage is collected before it can double the heap. The parts:
//
//   - webhook.memory_budget (queue.Budget) is shared by everything that holds a request's bytes
//     or a parsed batch. A request reserves its body size before reading (its Content-Length,
//     or max_body_size when unknown or gzipped), then its parse cost before parsing:
//     webhook.CostPerToken (320 bytes) per JSON structural token, counted by a scan that
//     allocates nothing (the parser's memory measured at 101-292 bytes per token, 6-30x the
//     body). A reservation waits up to queue.wait and then gets 429; one that could never fit,
//     or a batch over webhook.max_events, gets 413 before it is parsed. Once queued, the body
//     is accounted by the queue instead, and the worker reserves the parse cost again (waiting,
//     never refusing) while it decodes the batch. Decoders that parsed more than
//     config.KeptParserCost (32 MiB of charged cost; kube-apiserver's default 400-event batch
//     costs about 30 MiB) are not reused, so their memory goes back with the reservation.
//   - webhook.queue.max_bytes bounds the bodies admitted and not yet evaluated.
//   - webhook.max_inflight bounds parsing (CPU) only. A body being received takes no slot: it
//     must arrive within webhook.body_timeout and, after webhook.body_grace, at
//     webhook.min_body_rate bytes/s on average, enforced with read deadlines (a client that
//     stops sending is cut off too) and answered 408, so slow uploads cannot make real batches
//     wait.
//   - Kept parsers: each evaluation worker, and the webhook (as many as there are workers), keep
//     the decoder of a batch whose parse cost was at most config.KeptParserCost for the next
//     batch, outside the budget: a fresh parser per batch cost a third of the CPU (the webhook
//     ran at a quarter of its throughput). Each retains at most that cost (about 10 MiB real for
//     a default kube-apiserver batch).
//   - The rest (rules, evaluators, output and journal buffers, the runtime) is about 40 MiB.
//
// Rules are bounded too: the engine refuses conditions that expand past its limits (a macro
// bomb is refused in about a millisecond, naming the macro); the follower refuses candidates
// whose rule files exceed follower.MaxCandidateRulesBytes (1 MiB) before compiling them; and
// compiling any ruleset is charged to the memory budget (192 bytes per byte of YAML, the worst
// case measured), so no artifact can take the agent down. TestPeakRSSFollowsConfiguration
// (cmd/falco-k8s) measures the peak RSS of an agent process under 8 concurrent 12 MiB batches.
//
// # The alert journal
//
// A segment path that is not a regular file (a directory created in its place) is renamed
// quarantine-<name>-<time> and journaling goes on in the next segment; garbage in a segment
// (a torn write, zeroed blocks, however long) is skipped up to the next record whose checksum
// holds. Both are counted (falco_k8s_journal_quarantined_total,
// falco_k8s_journal_corrupt_records_total) and shown in /status under "journal", with the last
// error.
//
// # engine: falco
//
// With engine: falco a real Falco (falco.binary, run beside the agent, e.g. as another Pebble
// service with falco.config_file) evaluates the audit events: its k8saudit plugin serves the
// webhook port, so the agent does not open webhook.listen (its API is on observability.listen,
// which is then required), runs no evaluation of its own and serves no admission webhook
// (admission enforcement is a falco-k8s-engine feature; /status engine.admission says so when
// admission.mode asks for it). Everything else stays: the follower, rules.files, the tuning file,
// /status, /rules, /sync, the journal and the outputs.
//
//   - Falco's rules: the agent owns falco.rules_dir, which Falco's rules_files lists (and
//     nothing else of the agent's). It holds every file of the running ruleset (built-in,
//     followed, rules.files, tuning) named NNN-<name>.yaml in the one load order, since Falco
//     loads a directory's files sorted by name.
//   - Validation: every ruleset the agent would run (start-up, follower candidates and dry runs,
//     reloads, the tuning file) is compiled by the agent's engine and then validated by Falco,
//     `falco -c falco.config_file -o json_output=true -V <the whole set in load order>`, staged
//     beside rules_dir (so plugins load exactly as in the running Falco). A refusal is decoded
//     from falco_load_results (internal/falcobin) and the candidate ignored with Falco's
//     diagnostics ("refused by Falco: file:line:col: rule "x": message (CODE)"), named as the
//     agent names the files. Falco never sees a ruleset it refuses.
//   - The switch: the changed files are written into a staging directory beside rules_dir and
//     renamed in one burst (the files the set no longer has removed), which Falco's
//     watch_config_files (inotify, 100 ms debounce, then a dry run, then a restart) takes as one
//     change. A crash mid-switch leaves only whole files of either set there, and the start-up
//     publishes the committed set again (TestFalcoSwitchCrashAtEveryStep). Falco's version is
//     taken once at start (`falco --version`) for /status engine.
//   - Refused reloads: after the switch the agent runs `falco -c falco.config_file --dry-run`,
//     the check Falco's restart handler runs before restarting, on exactly what is on disk.
//     Its exit status is the signal (1: refused, with Falco's message; anything else: could not
//     tell, logged). Refused, rules_dir is switched back to the previous set, the change is
//     recorded as ignored (last_ignored, the ArtifactsIgnored Kubernetes Event, Falco's internal
//     alert) and shown in /status engine.last_refusal; the follower undoes its commit and, as
//     the same files would be refused again, does not retry them until something changes
//     (sync-rules forces it; Accept wraps the *falcobin.RefusedError). This
//     catches what -V of the set alone cannot: other rules files Falco's configuration lists, a
//     configuration Falco no longer accepts. Falco's own "Falco internal: hot restart failure"
//     alert (rule and source "internal", structured fields) arriving on the alerts route is
//     recorded there too (from_falco) and the agent's check runs again on rules_dir: refused,
//     the reason is reported (engine.last_refusal.recheck); accepted, Falco refused something
//     that has passed (its watcher checked mid-switch, a transient failure) and runs older rules
//     than rules_dir, so one file is renamed in again and Falco checks once more (once per set,
//     so a refusal the agent cannot reproduce never loops).
//   - Alerts: Falco posts its JSON alerts to POST <observability.listen>/falco/alerts/<token>
//     (http_output, or program_output through `falco-k8s falco-forward` where Falco is built
//     without it), the token read from falco.alerts_token_file (created 0600 when missing;
//     compared in constant time, never logged; wrong or missing: 401). One alert per request, or
//     several one per line, at most falco.max_alert_size (413 beyond). They are counted in the
//     metrics by rule and priority and sent to the journal and every output except stdout
//     (Falco prints there itself), with outputs.output_fields added, so review-alerts and
//     tune-rules work as with the agent's own engine.
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
//  3. rules.files and -r files (engine/rulesfile, as in the CLI: directories expand to their
//     *.yaml/*.yml files, sorted; an explicit file with another extension is skipped with a
//     warning, as Falco does), so local files can append to and override followed rules.
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
// Every change, from the registry or a local edit, goes through one transaction: validate
// (Compile), commit on disk, swap (Accept), then derive the active files. On disk
// (state_dir/follower) each accepted file set is an immutable content-addressed directory
// (sets/<sha256>; a download's extracted files are moved in, not rewritten) renamed in whole,
// and state.json, naming the set and digest of each reference, is replaced by temp file + fsync
// + rename + directory fsync: that rename is the single commit point, so a kill -9 at any
// moment leaves exactly the old or the new set. Initial returns the committed set, so a restart
// serves it even with the registry down.
//
// Registry errors are classified by artifact/oci.Classify (the classification the CLI's hints
// use too) and logged (warn when transient, error when the configuration must change) with the
// registry named and no secrets ("registry ghcr.io refused the credentials (401): check ...").
// Connection failures, 429 and 5xx are retried with exponential backoff from 10s up to the
// interval, waiting at least what a 429/503 Retry-After asked. Bad content (a digest or size
// mismatch, an undecodable manifest, a layer that matches its digest but is a truncated or
// corrupt archive) is reported as "bad content from REGISTRY: ..." and that digest is not
// downloaded again for 2, 4, 8... intervals (at most a day; /sync retries at once), while the
// checks keep their interval so a new push is picked up. All of it is reported through
// ReportSource (last check, last success, last error). The last accepted ruleset keeps running
// throughout.
//
// The active files are derived from the committed set and written to
// state_dir/rules/<reference>/<path>; state_dir/follower/active.json records the hash of each
// file the follower wrote. At start-up a file that is missing or still holds the follower's
// previous write (an interrupted promotion) is rewritten from the committed set, temp files of
// interrupted writes are removed, and any other difference is an operator's edit. They are
// watched with fsnotify (debounced; events of the follower's own writes are ignored): a deleted
// file is restored; an edited file makes a candidate validated the same way, accepted as a local
// edit (its reference shows "(local edit)" in /status; a new upstream digest replaces it) or
// ignored and restored. POST /sync[?dry_run=true] (the charm's
// sync-rules action) runs Follower.Sync: every reference is checked at once and the results
// ("unchanged", "accepted", "ignored", "error", with digest and reason) are returned; a dry run
// compiles the candidate and changes and records nothing.
//
// # Ruleset diff and the detection-regression guard (agent/rulediff)
//
// Compile compares every candidate with the ruleset running at that moment (Candidate.Diff):
// rules added, removed, enabled, disabled or changed (condition, exceptions, output, priority),
// lists and macros added, removed or changed, and the rules evaluated now that the candidate
// would no longer evaluate (switched_off). The diff is recorded with the accepted or ignored
// change (/status last_accepted.diff, last_ignored.diff; the Kubernetes Event's "changes"), and
// the follower returns it in each sync result, dry run included. The follower refuses a
// candidate that switches an active rule off (*rulediff.RegressionError, naming the rules)
// unless every reference with a new digest in it is listed in follow.allow_rule_removal; the
// refusal is an ignored candidate like an invalid one (not retried until something changes or
// sync-rules forces it). Local edits of the active files are not guarded: they are deliberate.
//
// Before a new digest's layer is downloaded, its config blob's requirements and dependencies
// are checked (artifact/requirements): engine_version (legacy integer, the engine's minor) and
// engine_version_semver against engine.EngineVersion, plugin dependencies against the plugins
// the engine implements (engine.BuiltinPlugins; a dependency on a plugin it does not implement
// is left to the engine, which skips that source's rules). An unmet one ignores the candidate
// with "needs engine version 0.63.0, this agent implements 0.62.0" after three requests (HEAD,
// manifest, config).
//
// An artifact's tests/ files (engine/ruletest: cases of audit events and rules expected to fire
// or not) are kept with the pulled files and replayed against the whole candidate, after the
// guard; the first failing case ignores the candidate, naming the case and the rule.
//
// With follow.signature (artifact/signature), each new digest's cosign signature is checked
// first, before the artifact's manifest is even fetched: with key_file, the "sha256-<hex>.sig"
// tag and its payloads (two requests; registry credentials apply), verified with the key and
// required to name that very digest; with trusted_root_file and a certificate identity and
// issuer, the Sigstore bundles referring to the digest (OCI 1.1 referrers, cosign v3), verified
// offline with sigstore-go (certificate chain, identity, transparency-log proof) and required
// to name the digest as their statement's subject. Per reference policy required (default with a key), if-present or off.
// A refused signature ignores the candidate with its kind (unsigned, bad signature, made for
// another digest, malformed); an unsigned digest is examined again at the next check, since
// publishers push first and sign next. The verified signer is in each sync result and in the
// reference's /status source (signer). An idle check stays one HEAD.
package agent
