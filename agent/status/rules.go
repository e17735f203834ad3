package status

// Rules is the body of GET /rules: every rule of the running ruleset, in Falco's order.
type Rules struct {
	// Generation is the ruleset generation the list was taken from (0: none loaded).
	Generation uint64 `json:"generation"`
	Rules      []Rule `json:"rules"`
}

// Rule is one rule as loaded (after appends and overrides).
type Rule struct {
	Name     string   `json:"name"`
	Priority string   `json:"priority"`
	Source   string   `json:"source"`
	Enabled  bool     `json:"enabled"`
	Active   bool     `json:"active"`
	Skipped  bool     `json:"skipped,omitempty"`
	Tags     []string `json:"tags"`
	// File and Line locate the rule's latest definition; Ref and Digest identify the artifact
	// that file came from, when it came from one.
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Condition is only filled with GET /rules?condition=true.
	Condition string `json:"condition,omitempty"`
}
