package engine

import "strings"

// hints map the start of a diagnostic message to advice on what to change. Falco's messages say
// what is wrong; these say what to do about it.
var hints = []struct{ prefix, hint string }{
	{"Item has no mapping for key", "add the missing key to this item (a full rule needs condition, output, desc and priority)"},
	{"Mapping for key", "give the key a value, or remove it"},
	{"Value must be non-empty", "give the key a non-empty value"},
	{"Value is not a scalar value", "write the value as a single string, not a list or map"},
	{"Value is not a sequence", "write the value as a YAML list, e.g. [a, b] (use [] for none)"},
	{"sequence value is not scalar", "list elements must be plain strings"},
	{"Can't decode YAML scalar value", "use true/false for booleans and a whole number for durations"},
	{"Invalid priority", "use one of emergency, alert, critical, error, warning, notice, informational (or info), debug"},
	{"Rules content is not yaml", "a rules file is a YAML list of items (- rule: ..., - macro: ..., - list: ...)"},
	{"Unexpected element type", "each list element must be a mapping such as '- rule: name'"},
	{"Undefined macro", "define the macro (before any macro that uses it), load the file that defines it first, or fix the name"},
	{"reference loop in macro", "break the cycle: a macro cannot refer to itself, directly or through others"},
	{"filter_check called with nonexistent field", "run 'falco-k8s rules fields' for the supported fields, or set skip-if-unknown-filter: true"},
	{"unknown filter", "check each %field and its [argument] against 'falco-k8s rules fields'; there is no escape for a literal %"},
	{"invalid formatting syntax", "a literal % cannot end the output"},
	{"Rule has been re-defined with a different source", "add the original rule's source (e.g. source: k8s_audit) to this item"},
	{"Rule uses 'append'", "define the rule before appending to it, or load the file that defines it first"},
	{"An 'override.<key>: replace'", "define the rule before overriding it, or load the file that defines it first"},
	{"List uses 'append'", "define the list before appending to it"},
	{"Macro uses 'append'", "define the macro before appending to it"},
	{"Rule has 'enabled' key but no rule", "define the rule before enabling or disabling it"},
	{"Keys 'override' and 'append: true'", "remove 'append: true' and list the keys under 'override:' instead"},
	{"Unexpected key", "list the key under 'override:' with append or replace, or remove it"},
	{"An append override", "add the key named under 'override:' to this item, or remove it from 'override:'"},
	{"An replace override", "add the key named under 'override:' to this item, or remove it from 'override:'"},
	{"Rules require engine version", "upgrade falco-k8s, or use rules built for engine " + EngineVersion},
	{"Plugin requirement not satisfied", "falco-k8s implements the k8saudit and json plugins only; these rules need another plugin"},
	{"Fields and comps", "give exception 'fields' and 'comps' the same shape and length"},
	{"Fields and values lists", "each exception value must be a list with one entry per field"},
	{"is not a supported filter field", "exception fields must be fields from 'falco-k8s rules fields'"},
	{"is not a supported comparison operator", "use an operator such as =, !=, in, intersects, pmatch, startswith"},
	{"Unknown source", "falco-k8s evaluates k8s_audit rules only; this rule is skipped"},
	{"Macro not referred to", "remove the macro or use it"},
	{"List not referred to", "remove the list or use it"},
	{"Unknown key", "check the key's spelling and that it belongs to this kind of item"},
	{"'append' key is deprecated", "replace 'append: true' with an 'override:' entry such as 'condition: append'"},
	{"The standalone 'enabled' key", "add 'override: {enabled: replace}' to this item"},
	{"condition expands to more than", "use each macro once per condition (a macro using another several times doubles at every level)"},
	{"the rules' conditions expand to more than", "use fewer or smaller macros, or split the rules across fewer rules files"},
	{"condition is longer than", "use fewer or shorter lists in this condition"},
	{"rules file expands to more than", "use fewer YAML anchors/aliases: each alias counts as the nodes it stands for"},
	{"operator not supported list filters", "list fields support only in, intersects and exists"},
}

// Hint returns advice for fixing d, or "" when there is none beyond the message.
func Hint(d Diagnostic) string {
	if d.Code == ErrCompileCondition || d.Code == ErrYAMLParse {
		for _, h := range hints {
			if strings.HasPrefix(d.Message, h.prefix) {
				return h.hint
			}
		}
		if d.Code == ErrYAMLParse {
			return "fix the YAML syntax at the reported line"
		}
		return "fix the condition's syntax at the caret"
	}
	for _, h := range hints {
		if strings.HasPrefix(d.Message, h.prefix) {
			return h.hint
		}
	}
	return ""
}
