package status

// Rules is the body of GET /rules: every rule of the running ruleset, in Falco's order.
type Rules struct {
	// Generation is the ruleset generation the list was taken from (0: none loaded).
	Generation uint64 `json:"generation"`
	Rules      []Rule `json:"rules"`
}

// Rule is one rule as loaded (after appends and overrides): the one rule-list shape, of GET
// /rules, `falco-k8s rules list -o json` and the show-rules action's json and yaml formats.
type Rule struct {
	Name     string   `json:"name" yaml:"name"`
	Priority string   `json:"priority" yaml:"priority"`
	Source   string   `json:"source" yaml:"source"`
	Enabled  bool     `json:"enabled" yaml:"enabled"`
	Active   bool     `json:"active" yaml:"active"`
	Skipped  bool     `json:"skipped,omitempty" yaml:"skipped,omitempty"`
	Tags     []string `json:"tags" yaml:"tags,flow"`
	// File and Line locate the rule's latest definition; Ref and Digest identify the artifact
	// that file came from, when it came from one.
	File   string `json:"file" yaml:"file"`
	Line   int    `json:"line,omitempty" yaml:"line,omitempty"`
	Ref    string `json:"ref,omitempty" yaml:"ref,omitempty"`
	Digest string `json:"digest,omitempty" yaml:"digest,omitempty"`
	// Condition is only filled with GET /rules?condition=true.
	Condition string `json:"condition,omitempty" yaml:"condition,omitempty"`
}
