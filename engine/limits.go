package engine

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/engine/condition"
)

// Loader work is bounded so that no rules file, however small, can make a load take gigabytes
// or minutes: a macro used twice by the next macro, repeated 40 times, is 1.3 KB of YAML that
// expands to 2^40 condition nodes (Falco itself runs out of memory on it). The limits below are
// far above real rulesets (Falco's stock k8s_audit and syscall rules expand to at most 40 nodes
// per condition and under 1,000 in all) and far below what would hurt the agent (a compiled
// node costs a few hundred bytes).
const (
	// DefaultMaxConditionNodes bounds one condition's size once macros are substituted.
	DefaultMaxConditionNodes = 5_000
	// DefaultMaxRulesetNodes bounds the sum of every rule's expanded condition.
	DefaultMaxRulesetNodes = 100_000
	// DefaultMaxConditionBytes bounds a condition's text once lists are substituted.
	DefaultMaxConditionBytes = 1 << 20
	// DefaultMaxYAMLNodes bounds a file's YAML nodes with anchors expanded (each alias counts as
	// the nodes it stands for), so an alias bomb is refused before it is read.
	DefaultMaxYAMLNodes = 1_000_000
)

func (o Options) maxConditionNodes() int {
	return orDefault(o.MaxConditionNodes, DefaultMaxConditionNodes)
}
func (o Options) maxRulesetNodes() int { return orDefault(o.MaxRulesetNodes, DefaultMaxRulesetNodes) }
func (o Options) maxConditionBytes() int {
	return orDefault(o.MaxConditionBytes, DefaultMaxConditionBytes)
}
func (o Options) maxYAMLNodes() int { return orDefault(o.MaxYAMLNodes, DefaultMaxYAMLNodes) }

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// expansion counts the nodes a condition expands to while macros are substituted, so that
// substitution stops as soon as the limit is passed rather than after building the whole tree.
type expansion struct {
	nodes, limit int
}

// add counts n nodes and reports whether the limit still holds.
func (x *expansion) add(n int) bool {
	if x == nil {
		return true
	}
	x.nodes += n
	return x.nodes <= x.limit
}

func (x *expansion) tooBig(pos condition.Pos, via string) *macroErr {
	where := ""
	if via != "" {
		where = fmt.Sprintf(" (at macro '%s')", via)
	}
	return &macroErr{tooBig: true, pos: pos, msg: fmt.Sprintf(
		"condition expands to more than %d nodes once macros are substituted%s: every use of a macro copies its whole condition, so macros that use other macros several times grow exponentially; rewrite them to use each macro once (e.g. factor the repeated macro out)",
		x.limit, where)}
}

// conditionTooLongError is returned when list substitution makes a condition longer than the
// limit.
type conditionTooLongError struct{ limit int }

func (e *conditionTooLongError) Error() string {
	return fmt.Sprintf("condition is longer than %d bytes once lists are substituted: split it or use fewer or shorter lists", e.limit)
}

// yamlNodes returns the number of nodes of n with every alias expanded, counting each distinct
// node's expansion once (so the count itself is linear in the document), capped just above limit.
func yamlNodes(n *yaml.Node, limit int, memo map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = limit + 1 // a cycle (yaml.v3 refuses them) counts as too many
	total := 1
	if n.Kind == yaml.AliasNode {
		total = yamlNodes(n.Alias, limit, memo)
	} else {
		for _, c := range n.Content {
			total += yamlNodes(c, limit, memo)
			if total > limit {
				total = limit + 1
				break
			}
		}
	}
	memo[n] = total
	return total
}
