// Package status defines the JSON documents of the agent's HTTP API (/status, /rules, /sync),
// its route table and its one error body format. It is a leaf package
// (standard library only) so that the charm can decode the agent's status without importing the
// agent, the engine or the webhook code.
package status

import "time"

// Status is the body of GET /status.
type Status struct {
	// Version is the agent's build version.
	Version string `json:"version"`
	// Engine is what evaluates the events (falco-k8s or falco) and its version.
	Engine    Engine    `json:"engine"`
	StartedAt time.Time `json:"started_at"`
	// Ready mirrors /readyz: a ruleset is loaded and the agent is not shutting down.
	Ready    bool    `json:"ready"`
	Draining bool    `json:"draining"`
	Ruleset  Ruleset `json:"ruleset"`
	// LastReload is the latest attempt to rebuild the ruleset from any cause (start-up, SIGHUP,
	// Reload, a follower candidate), successful or not.
	LastReload *Change `json:"last_reload,omitempty"`
	// LastAccepted and LastIgnored are the latest accepted and rejected candidate rulesets
	// ("artifacts accepted" / "artifacts ignored").
	LastAccepted *Change  `json:"last_accepted,omitempty"`
	LastIgnored  *Change  `json:"last_ignored,omitempty"`
	Sources      []Source `json:"sources,omitempty"`
	Events       Events   `json:"events"`
	Queue        Queue    `json:"queue"`
	Outputs      []Output `json:"outputs"`
	// Journal is the alert journal's health (absent when journal.enabled is false).
	Journal *Journal `json:"journal,omitempty"`
}

// Journal is the alert journal's state: what it holds and what it had to skip or set aside.
type Journal struct {
	// Available is false when the journal could not be opened (GET /alerts answers 503).
	Available bool  `json:"available"`
	Segments  int   `json:"segments"`
	Bytes     int64 `json:"bytes"`
	// CorruptRecords counts unreadable records (or runs of garbage) skipped by queries.
	CorruptRecords uint64 `json:"corrupt_records"`
	// Quarantined counts segment paths that were not regular files and were set aside.
	Quarantined uint64 `json:"quarantined"`
	// LastError is the latest write, sync or quarantine problem, or why it is unavailable.
	LastError string `json:"last_error,omitempty"`
}

// Ruleset describes the running ruleset.
type Ruleset struct {
	// Generation increases by one on every swap; 0 means no ruleset is loaded.
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	Files      []File    `json:"files"`
	Rules      Counts    `json:"rules"`
	// MinPriority and RuleMatching are the evaluation settings in force.
	MinPriority  string `json:"min_priority"`
	RuleMatching string `json:"rule_matching"`
	// Warnings counts loader warnings (they never prevent loading).
	Warnings int `json:"warnings"`
}

// File is one loaded rules file.
type File struct {
	// Name is the name used in diagnostics: a path, builtin:..., or a path inside an artifact.
	Name string `json:"name"`
	// Origin is "builtin", "file" (rules.files / -r) or the name of the rule source that
	// provided it (e.g. "follower").
	Origin string `json:"origin"`
	// Ref and Digest identify the artifact the file came from, when known.
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
	// SHA256 is the hex digest of the file content as loaded.
	SHA256 string `json:"sha256"`
}

// Counts are rule counts.
type Counts struct {
	Total   int `json:"total"`
	Active  int `json:"active"`
	Skipped int `json:"skipped"`
}

// Change is one reload outcome.
type Change struct {
	Time   time.Time `json:"time"`
	Origin string    `json:"origin"`
	// Trigger says what caused it: "startup", "reload", "sighup", "candidate".
	Trigger string `json:"trigger"`
	Ref     string `json:"ref,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// Accepted is false when the candidate was invalid and the previous ruleset kept running.
	Accepted bool `json:"accepted"`
	// Reason is the first error, "file:line:col: error: item: message (CODE)", when rejected.
	Reason string `json:"reason,omitempty"`
	// Generation is the ruleset generation after the change.
	Generation uint64 `json:"generation"`
	// Diff is how the candidate differed from the ruleset running when it was examined
	// (followed artifacts; see RulesetDiff).
	Diff *RulesetDiff `json:"diff,omitempty"`
}

// Source is what a rule source (the follower) reports about itself.
type Source struct {
	Name        string    `json:"name"`
	Ref         string    `json:"ref,omitempty"`
	LastCheck   time.Time `json:"last_check,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Digest      string    `json:"digest,omitempty"`
	// Signer is who signed the accepted digest, when its signature was verified since start.
	Signer string `json:"signer,omitempty"`
}

// SyncResult is one reference's outcome of POST /sync (the charm's sync-rules action).
type SyncResult struct {
	Ref string `json:"ref"`
	// Result is "unchanged" (the digest is the accepted one), "accepted" (a new digest was
	// validated and is running; with dry_run, would be), "ignored" (the candidate is invalid:
	// Reason says why, file:line; the previous rules keep running) or "error" (the registry
	// could not be asked; Reason names it).
	Result string `json:"result"`
	// Digest is the digest the reference points at, when the registry answered.
	Digest string `json:"digest,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Diff compares the candidate with the running ruleset, when one was compiled (dry run
	// included).
	Diff *RulesetDiff `json:"diff,omitempty"`
	// Signer is who signed the candidate's artifact, when its signature was verified.
	Signer string `json:"signer,omitempty"`
}

// SyncResponse is the body of POST /sync.
type SyncResponse struct {
	Results []SyncResult `json:"results"`
	// Error is set, with no results, when the request could not be served (e.g. no follower).
	Error string `json:"error,omitempty"`
}

// Events are the cumulative event counters since start.
type Events struct {
	Received  uint64            `json:"received"`
	Dropped   map[string]uint64 `json:"dropped"`
	Evaluated uint64            `json:"evaluated"`
	Alerts    uint64            `json:"alerts"`
	// RejectedRequests counts webhook requests answered with an error, by HTTP status.
	RejectedRequests map[string]uint64 `json:"rejected_requests"`
}

// Queue is the evaluation queue's state.
type Queue struct {
	Events    int    `json:"events"`
	Bytes     int64  `json:"bytes"`
	Capacity  int    `json:"capacity"`
	MaxBytes  int64  `json:"max_bytes"`
	Throttled uint64 `json:"throttled"`
	// MemoryReserved is what requests and workers hold of MemoryBudget (webhook.memory_budget).
	MemoryReserved int64 `json:"memory_reserved"`
	MemoryBudget   int64 `json:"memory_budget"`
}

// Output is one alert output's counters.
type Output struct {
	Name    string `json:"name"`
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
}

// Engine names what evaluates the audit events and its version: falco-k8s (the agent itself)
// or falco (a real Falco beside the agent, engine: falco).
type Engine struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Admission explains why admission.mode has no effect (engine: falco has no admission
	// webhook); empty otherwise.
	Admission string `json:"admission,omitempty"`
	// RulesDir is the directory Falco loads (engine: falco).
	RulesDir string `json:"rules_dir,omitempty"`
	// LastRefusal is the latest ruleset Falco refused to reload (engine: falco).
	LastRefusal *FalcoRefusal `json:"last_refusal,omitempty"`
}

// FalcoRefusal is a reload Falco refused: the agent's check after a switch (rolled back), or
// Falco's own "Falco internal: hot restart failure" alert.
type FalcoRefusal struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	// RolledBack is true when the agent switched Falco's rules back to the previous set.
	RolledBack bool `json:"rolled_back,omitempty"`
	// FromFalco is true when Falco reported it (its internal alert).
	FromFalco bool `json:"from_falco,omitempty"`
	// Recheck is what the agent's own check found on the rules directory after Falco's report.
	Recheck string `json:"recheck,omitempty"`
}
