package engine_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

// The loader edge-case suite: every file under testdata/loader exercises one point of Falco
// 0.44's loader semantics (../shared/spec/falco-rules.md §1, §1.13 in particular). The
// expectations below were written from the spec, not recorded from the engine.
//
// Positions: line and col are 1-based (editor form) and locate the innermost place in the rules
// file (the last location whose name is the file): the item for missing keys and collector
// errors, the value for bad values, the key for override/unknown-key problems. For problems
// inside a condition, exprLine/exprCol are the 1-based parser position within the condition
// text that was parsed (exceptions appended, lists substituted); the "condition expression"
// location itself carries Falco's sum of the YAML mark (0-based) and that parser position.
// yaml.v3 reports no column for syntax errors, so a YAML_PARSE diagnostic is at column 1.

type wantDiag struct {
	sev        engine.Severity
	code       engine.Code
	line, col  int
	kind, name string
	// msg: "" skips the check, "=text" must equal, anything else must be contained.
	msg               string
	exprLine, exprCol int
}

func E(code engine.Code, line, col int, kind, name, msg string) wantDiag {
	return wantDiag{sev: engine.SeverityError, code: code, line: line, col: col, kind: kind, name: name, msg: msg}
}

func W(code engine.Code, line, col int, kind, name, msg string) wantDiag {
	return wantDiag{sev: engine.SeverityWarning, code: code, line: line, col: col, kind: kind, name: name, msg: msg}
}

// at adds the position inside the condition expression.
func (w wantDiag) at(line, col int) wantDiag { w.exprLine, w.exprCol = line, col; return w }

type loaderCase struct {
	file  string
	pre   []string // loaded first, cumulatively, and must be valid
	valid bool
	diags []wantDiag // every error and warning of the file's result: errors first, in order
	check func(t *testing.T, rs *engine.Ruleset)
}

const (
	kRule  = engine.ItemRule
	kMacro = engine.ItemMacro
	kList  = engine.ItemList
	kItem  = engine.ItemRulesContentItem
	kCont  = engine.ItemRulesContent
	kEVer  = engine.ItemEngineVersion
	kPVer  = engine.ItemPluginVersions
	kPEnt  = engine.ItemPluginVersionsEntry

	cParse    = engine.ErrYAMLParse
	cYAML     = engine.ErrYAMLValidate
	cVal      = engine.ErrValidate
	cCond     = engine.ErrCompileCondition
	cOut      = engine.ErrCompileOutput
	wDepr     = engine.WarnDeprecatedItem
	wUnkSrc   = engine.WarnUnknownSource
	wUnkKey   = engine.WarnUnknownKey
	wUnkFilt  = engine.WarnUnknownFilter
	wUnusedM  = engine.WarnUnusedMacro
	wUnusedL  = engine.WarnUnusedList
	msgAppend = "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead."
	msgEnable = "The standalone 'enabled' key usage is deprecated."
	msgNoKey  = "=Item has no mapping for key '"
)

func noKey(k string) string { return msgNoKey + k + "'" }

func ruleNamed(t *testing.T, rs *engine.Ruleset, name string) *engine.Rule {
	t.Helper()
	r := rs.Rule(name)
	if r == nil {
		t.Fatalf("rule %q not loaded", name)
	}
	return r
}

func expanded(name, want string) func(*testing.T, *engine.Ruleset) {
	return func(t *testing.T, rs *engine.Ruleset) {
		if got := ruleNamed(t, rs, name).ExpandedCondition; got != want {
			t.Errorf("expanded condition of %q:\n got %q\nwant %q", name, got, want)
		}
	}
}

var loaderCases = []loaderCase{
	// Document level (§1.1).
	{file: "yaml_parse_error.yaml", diags: []wantDiag{E(cParse, 2, 1, kCont, "", "mapping values are not allowed")}},
	{file: "doc_scalar.yaml", diags: []wantDiag{E(cYAML, 1, 1, kCont, "", "=Rules content is not yaml")}},
	{file: "doc_mapping.yaml", diags: []wantDiag{E(cYAML, 1, 1, kCont, "", "=Rules content is not yaml array of objects")}},
	{file: "item_not_mapping.yaml", diags: []wantDiag{E(cYAML, 3, 3, kItem, "", "=Unexpected element type. Each element should be a yaml associative array.")}},
	{file: "empty.yaml", valid: true},
	{file: "comments_and_nulls.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		if len(rs.Rules()) != 1 || len(rs.Lists) != 1 {
			t.Errorf("rules %d lists %d, want 1 and 1", len(rs.Rules()), len(rs.Lists))
		}
	}},
	{file: "multi_document.yaml", valid: true, check: expanded("mutation", "is_mutation")}, // no parentheses without exceptions
	{file: "multi_document_stops.yaml", diags: []wantDiag{E(cYAML, 4, 3, kRule, "only enabled", noKey("enabled"))}},
	{file: "multi_document_mapping.yaml", diags: []wantDiag{E(cYAML, 1, 1, kCont, "", "=Rules content is not yaml array of objects")}},
	{file: "duplicate_yaml_keys.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		if p := ruleNamed(t, rs, "dup keys").Priority; p != engine.PriorityError {
			t.Errorf("priority %v, want the first key's Error", p)
		}
	}},

	// Item classification and unknown keys (§1.2).
	{file: "unknown_item.yaml", valid: true, diags: []wantDiag{W(engine.WarnUnknownItem, 1, 3, kItem, "", "=Unknown top level item")}},
	{file: "unknown_key.yaml", valid: true, diags: []wantDiag{W(wUnkKey, 1, 3, kRule, "with extra key", "=Unknown key 'description'. The key will be ignored.")}},
	{file: "list_and_macro_keys.yaml", valid: true, diags: []wantDiag{
		W(wUnkKey, 1, 3, kList, "both", "=Unknown key 'macro'. The key will be ignored."),
		W(wUnusedL, 1, 3, kList, "both", "=List not referred to by any other rule/macro"),
	}},

	// Required keys and value decoding (§1.3, §1.6-1.9).
	{file: "rule_missing_condition.yaml", diags: []wantDiag{E(cYAML, 1, 3, kRule, "no condition", noKey("condition"))}},
	{file: "rule_missing_output.yaml", diags: []wantDiag{E(cYAML, 1, 3, kRule, "no output", noKey("output"))}},
	{file: "rule_missing_desc.yaml", diags: []wantDiag{E(cYAML, 1, 3, kRule, "no desc", noKey("desc"))}},
	{file: "rule_missing_priority.yaml", diags: []wantDiag{E(cYAML, 1, 3, kRule, "no priority", noKey("priority"))}},
	{file: "macro_missing_condition.yaml", diags: []wantDiag{E(cYAML, 1, 3, kMacro, "no_condition", noKey("condition"))}},
	{file: "list_missing_items.yaml", diags: []wantDiag{E(cYAML, 1, 3, kList, "no_items", noKey("items"))}},
	{file: "rule_empty_desc.yaml", diags: []wantDiag{E(cYAML, 2, 9, kRule, "empty desc", "=Value must be non-empty")}},
	{file: "rule_null_output.yaml", diags: []wantDiag{E(cYAML, 1, 3, kRule, "null output", "=Mapping for key 'output' is empty")}},
	{file: "rule_condition_not_scalar.yaml", diags: []wantDiag{E(cYAML, 3, 14, kRule, "sequence condition", "=Value is not a scalar value")}},
	{file: "list_items_not_sequence.yaml", diags: []wantDiag{E(cYAML, 2, 10, kList, "scalar_items", "=Value is not a sequence")}},
	{file: "list_item_not_scalar.yaml", diags: []wantDiag{E(cYAML, 4, 7, kList, "nested_items", "=sequence value is not scalar")}},
	// yaml-cpp reads a plain scalar ending in ':' in a flow sequence as a one-pair mapping.
	{file: "list_item_flow_implicit_key.yaml", diags: []wantDiag{E(cYAML, 2, 11, kList, "l", "=sequence value is not scalar")}},
	{file: "tags_null.yaml", diags: []wantDiag{E(cYAML, 7, 9, kRule, "null tags", "=Value is not a sequence")}},
	{file: "bool_invalid.yaml", diags: []wantDiag{E(cYAML, 7, 12, kRule, "bad bool", "=Can't decode YAML scalar value")}},
	{file: "bool_yaml_cpp_forms.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		if r := ruleNamed(t, rs, "yaml-cpp booleans"); r.Enabled || r.Active {
			t.Errorf(`enabled: "no" left the rule enabled`)
		}
	}},
	{file: "capture_duration_invalid.yaml", diags: []wantDiag{E(cYAML, 7, 21, kRule, "bad duration", "=Can't decode YAML scalar value")}},
	{file: "priority_invalid.yaml", diags: []wantDiag{E(cYAML, 5, 13, kRule, "warn is not a priority", "=Invalid priority")}},
	{file: "priority_aliases.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		for name, want := range map[string]engine.Priority{"p info": engine.PriorityInformational, "p upper": engine.PriorityCritical, "p mixed": engine.PriorityEmergency} {
			if got := ruleNamed(t, rs, name).Priority; got != want {
				t.Errorf("%s: priority %v, want %v", name, got, want)
			}
		}
	}},

	// required_engine_version (§1.4).
	{file: "engine_version_too_high.yaml", diags: []wantDiag{E(cVal, 1, 3, kEVer, "", "=Rules require engine version 0.99.0, but engine version is 0.62.0")}},
	{file: "engine_version_major.yaml", diags: []wantDiag{E(cVal, 1, 3, kEVer, "", "=Rules require engine version 1.0.0, but engine version is 0.62.0")}},
	{file: "engine_version_semver_forms.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		if rs.RequiredEngineVersion != "0.57.0" {
			t.Errorf("required engine version %q, want the maximum 0.57.0", rs.RequiredEngineVersion)
		}
	}},
	{file: "engine_version_unparsable.yaml", diags: []wantDiag{E(cYAML, 1, 3, kEVer, "", `=Unable to parse engine version '1.2' as a semver string. Expected "x.y.z" semver format.`)}},

	// required_plugin_versions (§1.5).
	{file: "plugin_versions_ok.yaml", valid: true},
	{file: "plugin_versions_alternatives.yaml", valid: true},
	{file: "plugin_version_too_high.yaml", diags: []wantDiag{E(cVal, 4, 7, kPEnt, "k8saudit", "=Plugin 'k8saudit' version '0.18.0' is not compatible with required plugin version '0.19.0'")}},
	{file: "plugin_version_invalid.yaml", diags: []wantDiag{E(cVal, 2, 7, kPEnt, "k8saudit", "=Invalid required version 'latest' for plugin 'k8saudit'")}},
	{file: "plugin_versions_not_sequence.yaml", diags: []wantDiag{E(cYAML, 1, 29, kPVer, "", "=Value of required_plugin_versions must be a sequence")}},
	{file: "plugin_versions_duplicate_alternative.yaml", diags: []wantDiag{E(cVal, 2, 7, kPEnt, "k8saudit", "=Defined multiple alternative version requirements for plugin 'k8saudit'")}},
	// Deliberate difference (engine/collector.go): a plugin we cannot have is a warning, not fatal.
	{file: "plugin_versions_unknown_plugin.yaml", valid: true, diags: []wantDiag{W(wUnkSrc, 2, 7, kPEnt, "container", "Plugin requirement not satisfied, must load one of: container (>= 0.4.0)")}},

	// Lists and macros: names, append, override (§1.6, §1.7, §1.10).
	{file: "list_invalid_name.yaml", valid: true, diags: []wantDiag{
		W(engine.WarnInvalidListName, 1, 3, kList, "bad(name)", "List has an invalid name"),
		W(wUnusedL, 1, 3, kList, "bad(name)", ""),
	}},
	{file: "macro_invalid_name.yaml", valid: true, diags: []wantDiag{
		W(engine.WarnInvalidMacroName, 1, 3, kMacro, "bad-name", "Macro has an invalid name"),
		W(wUnusedM, 1, 3, kMacro, "bad-name", "=Macro not referred to by any other rule/macro"),
	}},
	{file: "list_append_undefined.yaml", diags: []wantDiag{
		E(cVal, 1, 3, kList, "never_defined", "=List uses 'append' or 'override.items: append' but no list by that name already exists"),
		W(wDepr, 1, 3, kList, "never_defined", "="+msgAppend),
	}},
	{file: "list_override_append_undefined.yaml", diags: []wantDiag{E(cVal, 1, 3, kList, "never_defined", "=List uses 'append' or 'override.items: append' but no list by that name already exists")}},
	{file: "list_override_replace_undefined.yaml", valid: true},
	{file: "list_override_append.yaml", valid: true, diags: []wantDiag{W(wDepr, 7, 3, kList, "verbs", "="+msgAppend)},
		check: func(t *testing.T, rs *engine.Ruleset) {
			if got := ruleNamed(t, rs, "mutation").ExpandedCondition; !strings.Contains(got, "( create, update, patch )") {
				t.Errorf("appended list not expanded in order: %q", got)
			}
		}},
	{file: "macro_append_undefined.yaml", diags: []wantDiag{E(cVal, 1, 3, kMacro, "never_defined", "=Macro uses 'append' or 'override.condition: append' but no macro by that name already exists")}},
	{file: "override_key_not_appendable.yaml", diags: []wantDiag{E(cYAML, 6, 5, kList, "l", "=Key 'condition' cannot be appended to, use 'replace' instead")}},
	{file: "override_invalid_operation.yaml", diags: []wantDiag{E(cYAML, 6, 16, kMacro, "m", "=Invalid override operation for key 'condition': 'prepend'. Allowed values are: append replace ")}},

	// Rules: override, legacy append, enabled-only, redefinition (§1.8, §1.10).
	{file: "override_with_append_true.yaml", diags: []wantDiag{
		E(cYAML, 7, 3, kRule, "r", "Keys 'override' and 'append: true' cannot be used together."),
		W(wDepr, 7, 3, kRule, "r", "="+msgAppend),
	}},
	{file: "override_missing_key.yaml", diags: []wantDiag{E(cYAML, 7, 3, kRule, "r", "=An append override for 'output' was specified but 'output' is not defined")}},
	{file: "override_unlisted_key.yaml", diags: []wantDiag{E(cYAML, 9, 9, kRule, "r", "=Unexpected key 'desc': no corresponding entry under 'override' is defined.")}},
	{file: "override_priority_append.yaml", diags: []wantDiag{E(cYAML, 10, 5, kRule, "r", "=Key 'priority' cannot be appended to, use 'replace' instead")}},
	{file: "override_append_undefined_rule.yaml", diags: []wantDiag{E(cVal, 1, 3, kRule, "ghost", "=Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists")}},
	{file: "override_replace_undefined_rule.yaml", diags: []wantDiag{E(cVal, 1, 3, kRule, "ghost", "=An 'override.<key>: replace' to a rule was requested but no rule by that name already exists")}},
	{file: "override_mixed.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		r := ruleNamed(t, rs, "r")
		if r.Condition != "ka.verb = get and ka.user.name = bob" || r.Output != "user=%ka.user.name" ||
			r.Priority != engine.PriorityError || !reflect.DeepEqual(r.Tags, []string{"audit", "k8s"}) || r.Enabled {
			t.Errorf("override not applied: %+v", r)
		}
	}},
	{file: "override_source_mismatch.yaml", diags: []wantDiag{E(cVal, 7, 3, kRule, "r", "=Rule has been re-defined with a different source")}},
	{file: "legacy_append.yaml", valid: true, diags: []wantDiag{W(wDepr, 7, 3, kRule, "r", "="+msgAppend)},
		check: func(t *testing.T, rs *engine.Ruleset) {
			r := ruleNamed(t, rs, "r")
			if r.Condition != "ka.verb = get and ka.user.name = bob" || r.Output != "verb=%ka.verb" {
				t.Errorf("legacy append: condition %q output %q (output must be ignored)", r.Condition, r.Output)
			}
		}},
	{file: "legacy_append_nothing.yaml", diags: []wantDiag{
		E(cVal, 7, 3, kRule, "r", "=Appended rule must have exceptions or condition property"),
		W(wDepr, 7, 3, kRule, "r", "="+msgAppend),
	}},
	{file: "enabled_only.yaml", valid: true, diags: []wantDiag{W(wDepr, 7, 3, kRule, "r", msgEnable)},
		check: func(t *testing.T, rs *engine.Ruleset) {
			if r := ruleNamed(t, rs, "r"); r.Enabled || r.Active {
				t.Error("enabled: false not applied")
			}
		}},
	{file: "enabled_only_undefined.yaml", diags: []wantDiag{
		E(cVal, 1, 3, kRule, "ghost", "=Rule has 'enabled' key but no rule by that name already exists"),
		W(wDepr, 1, 3, kRule, "ghost", msgEnable),
	}},
	{file: "enabled_only_missing.yaml", diags: []wantDiag{E(cYAML, 7, 3, kRule, "r", noKey("enabled"))}},
	{file: "rule_redefinition.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		rules := rs.Rules()
		if len(rules) != 2 || rules[0].Name != "first" || rules[1].Name != "second" {
			t.Fatalf("rules %s, want first, second (redefinition keeps its position)", engine.RuleNames(rules))
		}
		if rules[0].Desc != "redefined" || rules[0].Priority != engine.PriorityCritical || rules[0].Condition != "ka.verb = delete" {
			t.Errorf("redefinition not applied: %+v", rules[0])
		}
	}},
	{file: "rule_redefinition_source.yaml", diags: []wantDiag{E(cVal, 7, 3, kRule, "r", "=Rule has been re-defined with a different source")}},

	// Order dependence, macros and lists (§1.11, §2.1).
	// Falco locates macro resolution errors from the item (rule or macro), not from its condition.
	{file: "macro_used_before_defined.yaml", diags: []wantDiag{E(cVal, 1, 3, kMacro, "outer", "=Undefined macro 'inner' used in filter.").at(1, 19)}},
	{file: "rule_uses_later_macro.yaml", valid: true},
	{file: "undefined_macro_in_rule.yaml", diags: []wantDiag{E(cVal, 1, 3, kRule, "r", "=Undefined macro 'no_such_macro' used in filter.").at(1, 19)}},
	{file: "macro_self_reference.yaml", diags: []wantDiag{E(cVal, 1, 3, kMacro, "selfish", "=Undefined macro 'selfish' used in filter.").at(1, 1)}},
	{file: "macro_loop.yaml", diags: []wantDiag{E(cVal, 5, 3, kMacro, "ma", "=reference loop in macro 'mb'").at(1, 1)}},
	{file: "undefined_list_is_literal.yaml", valid: true},
	{file: "list_in_list.yaml", valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		if got := ruleNamed(t, rs, "r").ExpandedCondition; !strings.Contains(got, "get, list, watch") {
			t.Errorf("list-in-list not expanded: %q", got)
		}
	}},
	{file: "unused_macro_and_list.yaml", valid: true, diags: []wantDiag{
		W(wUnusedM, 1, 3, kMacro, "unused_macro", "=Macro not referred to by any other rule/macro"),
		W(wUnusedL, 3, 3, kList, "unused_list", "=List not referred to by any other rule/macro"),
	}},
	{file: "multi_file_override.yaml", pre: []string{"multi_file_base.yaml"}, valid: true, check: func(t *testing.T, rs *engine.Ruleset) {
		r := ruleNamed(t, rs, "team write")
		if r.Condition != "is_write and ka.target.namespace in (team_namespaces) and ka.user.name != admin" ||
			!strings.Contains(r.ExpandedCondition, "team-a, team-b") {
			t.Errorf("cross-file append: %q / %q", r.Condition, r.ExpandedCondition)
		}
	}},

	// Conditions and outputs (§1.13 compile errors, §2, §4.1, §6.3).
	{file: "condition_syntax_error.yaml", diags: []wantDiag{E(cCond, 3, 14, kRule, "r", "=unexpected token after 'create', expecting 'or', 'and'").at(1, 18)}},
	{file: "condition_uppercase_and.yaml", diags: []wantDiag{E(cCond, 3, 14, kRule, "r", "=unexpected token after 'get', expecting 'or', 'and'").at(1, 15)}},
	{file: "unused_macro_syntax_error.yaml", diags: []wantDiag{E(cCond, 2, 14, kMacro, "broken", "").at(1, 15)}},
	{file: "unknown_field.yaml", diags: []wantDiag{E(cCond, 3, 14, kRule, "r", "nonexistent field ka.nope").at(1, 19)}},
	{file: "unknown_field_skip.yaml", valid: true, diags: []wantDiag{W(wUnkFilt, 3, 14, kRule, "r", "nonexistent field ka.nope").at(1, 19)},
		check: func(t *testing.T, rs *engine.Ruleset) {
			if r := ruleNamed(t, rs, "r"); !r.Skipped || r.Active {
				t.Error("rule with an unknown field not skipped")
			}
		}},
	{file: "unknown_field_unused_macro.yaml", valid: true, diags: []wantDiag{W(wUnusedM, 1, 3, kMacro, "never_used", "")}},
	{file: "list_field_operator.yaml", diags: []wantDiag{E(cCond, 3, 14, kRule, "r", "'contains' operator not supported list filters").at(1, 22)}},
	{file: "output_unknown_field.yaml", diags: []wantDiag{E(cOut, 4, 11, kRule, "r", "unknown filter")}},
	{file: "output_unknown_field_skip.yaml", valid: true, diags: []wantDiag{W(wUnkFilt, 4, 11, kRule, "r", "unknown filter")}},
	{file: "output_trailing_percent.yaml", diags: []wantDiag{E(cOut, 4, 11, kRule, "r", "formatting cannot end with a %")}},
	{file: "unsafe_na_check.yaml", valid: true, diags: []wantDiag{W(engine.WarnUnsafeNACheck, 3, 14, kRule, "r", "")}},
	{file: "field_as_value.yaml", valid: true, diags: []wantDiag{W(engine.WarnCompileCondition, 3, 14, kRule, "r", "'ka.user.name' may be a valid field misused as a const string value")}},

	// Sources (§1.13 LOAD_UNKNOWN_SOURCE; docs/engine.md: such rules are still syntax-checked).
	{file: "unknown_source.yaml", valid: true, diags: []wantDiag{
		W(wUnkSrc, 1, 3, kRule, "syscall rule", "=Unknown source syscall, skipping"),
		W(wUnkSrc, 6, 3, kRule, "cloud rule", "=Unknown source aws_cloudtrail, skipping"),
	}, check: func(t *testing.T, rs *engine.Ruleset) {
		if len(rs.ActiveRules()) != 0 || !ruleNamed(t, rs, "syscall rule").Skipped {
			t.Error("unknown-source rules not skipped")
		}
	}},
	{file: "unknown_source_syntax_error.yaml", diags: []wantDiag{
		E(cCond, 3, 14, kRule, "syscall rule", "=unexpected token after 'open', expecting 'or', 'and'").at(1, 16),
		W(wUnkSrc, 1, 3, kRule, "syscall rule", "=Unknown source syscall, skipping"),
	}},

	// Exceptions (§3).
	{file: "exception_single_field.yaml", valid: true, check: expanded("r", `(ka.verb = create) and not (ka.target.namespace in (kube-system, "my ns"))`)},
	{file: "exception_fields_list.yaml", valid: true, check: expanded("r", `(ka.verb = create) and not (( ka.target.namespace = team-a and  ka.user.name = alice) or ( ka.target.namespace = team-b and  ka.user.name = "carol x"))`)},
	{file: "exception_comps.yaml", valid: true, check: expanded("r", `(ka.verb = create) and not (( ka.target.name startswith tmp- and  ka.user.name in (alice)))`)},
	// A full definition reads fields as a required key (§1.3), before the collector's own check.
	{file: "exception_missing_fields.yaml", diags: []wantDiag{E(cYAML, 8, 7, kRule, "r", noKey("fields"))}},
	{file: "exception_missing_name.yaml", diags: []wantDiag{E(cYAML, 8, 7, kRule, "r", noKey("name"))}},
	{file: "exception_comps_length.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "=Fields and comps lists must have equal length")}},
	{file: "exception_bad_comp.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "='like' is not a supported comparison operator")}},
	{file: "exception_single_field_bad_comp.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "When fields is a single value, comps must be one of (in, pmatch, intersects)")}},
	{file: "exception_values_length.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "=Fields and values lists must have equal length")}},
	{file: "exception_not_sequence.yaml", diags: []wantDiag{E(cYAML, 8, 5, kRule, "r", "=Rule exceptions must be a sequence")}},
	{file: "exception_values_not_sequence.yaml", diags: []wantDiag{E(cYAML, 10, 15, kRule, "r", "=Rule exception values must be a sequence")}},
	{file: "exception_bad_field.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "='ka.nope' is not a supported filter field")}},
	{file: "exception_nested_single.yaml", diags: []wantDiag{E(cVal, 8, 7, kRule, "r", "=Expected values array to contain a list of strings")}},
	{file: "exception_duplicate_name.yaml", valid: true, diags: []wantDiag{W(engine.WarnExceptionNameNotUnique, 11, 7, kRule, "r", "twice")}},
	{file: "exception_append_values.yaml", valid: true, check: expanded("r", `(ka.verb = create) and not (( ka.target.namespace = kube-system) or ( ka.target.namespace = team-a))`)},
	{file: "exception_append_new_without_fields.yaml", diags: []wantDiag{E(cVal, 13, 7, kRule, "r", "=Rule exception must have fields property with a list of fields")}},
	{file: "exception_append_fields_to_existing.yaml", diags: []wantDiag{E(cVal, 13, 7, kRule, "r", "=Can not append exception fields to existing exception, only values")}},
	{file: "exception_append_no_values.yaml", valid: true, diags: []wantDiag{W(engine.WarnAppendNoValues, 13, 7, kRule, "r", "=Overriding/appending exception with no values")}},
	{file: "exception_legacy_append_new.yaml", valid: true, diags: []wantDiag{W(wDepr, 11, 3, kRule, "r", "="+msgAppend)},
		check: expanded("r", `(ka.verb = create) and not (( ka.target.namespace = kube-system)) and not (ka.user.name in (alice))`)},
}

// filePos returns the innermost location in the rules file itself (not in a condition).
func filePos(d engine.Diagnostic, file string) (engine.Location, int) {
	for i := len(d.Locations) - 1; i >= 0; i-- {
		if d.Locations[i].Position.Name == file {
			return d.Locations[i], i
		}
	}
	return engine.Location{}, -1
}

func TestLoaderCases(t *testing.T) {
	dir := filepath.Join("testdata", "loader")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range loaderCases {
		covered[c.file] = true
		for _, p := range c.pre {
			covered[p] = true
		}
	}
	for _, e := range entries {
		if !covered[e.Name()] {
			t.Errorf("testdata/loader/%s has no case", e.Name())
		}
	}
	if len(loaderCases) < 45 {
		t.Errorf("only %d loader cases", len(loaderCases))
	}
	read := func(t *testing.T, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range loaderCases {
		t.Run(strings.TrimSuffix(c.file, ".yaml"), func(t *testing.T) {
			l := engine.NewLoader(engine.DefaultOptions())
			for _, p := range c.pre {
				if res := l.Load(p, read(t, p)); !res.Successful {
					t.Fatalf("%s: %v", p, res.Errors)
				}
			}
			res := l.Load(c.file, read(t, c.file))
			got := append(append([]engine.Diagnostic{}, res.Errors...), res.Warnings...)
			if res.Successful != c.valid || len(res.Errors) > 0 == c.valid {
				t.Errorf("successful=%v with %d errors, want valid=%v", res.Successful, len(res.Errors), c.valid)
			}
			if len(got) != len(c.diags) {
				t.Errorf("got %d diagnostics, want %d:", len(got), len(c.diags))
				for _, d := range got {
					t.Logf("  %s", d)
				}
			}
			for i := 0; i < len(got) && i < len(c.diags); i++ {
				checkDiag(t, c.file, got[i], c.diags[i])
			}
			rs, err := l.Ruleset()
			if c.valid != (err == nil) {
				t.Fatalf("Ruleset error %v, want valid=%v", err, c.valid)
			}
			if c.check != nil && rs != nil {
				c.check(t, rs)
			}
		})
	}
}

func checkDiag(t *testing.T, file string, d engine.Diagnostic, w wantDiag) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s\n  "+format, append([]any{d.String()}, args...)...)
	}
	if d.Severity != w.sev || d.Code != w.code {
		fail("severity/code %v %s, want %v %s", d.Severity, d.Code, w.sev, w.code)
	}
	if kind, name := d.Item(); kind != w.kind || name != w.name {
		fail("item %s %q, want %s %q", kind, name, w.kind, w.name)
	}
	switch {
	case w.msg == "":
	case strings.HasPrefix(w.msg, "="):
		if d.Message != w.msg[1:] {
			fail("message %q, want %q", d.Message, w.msg[1:])
		}
	case !strings.Contains(d.Message, w.msg):
		fail("message %q lacks %q", d.Message, w.msg)
	}
	loc, i := filePos(d, file)
	if i < 0 {
		fail("no location in %s", file)
		return
	}
	if loc.Position.Line+1 != w.line || loc.Position.Column+1 != w.col {
		fail("position %d:%d, want %d:%d", loc.Position.Line+1, loc.Position.Column+1, w.line, w.col)
	}
	var expr *engine.Location
	if i+1 < len(d.Locations) && d.Locations[i+1].ItemType == engine.ItemConditionExpression {
		expr = &d.Locations[i+1]
	}
	if w.exprLine == 0 {
		if expr != nil && d.Severity == engine.SeverityError {
			fail("unexpected condition expression location %+v", *expr)
		}
		return
	}
	if expr == nil {
		fail("no condition expression location, want %d:%d", w.exprLine, w.exprCol)
		return
	}
	// Falco adds the 1-based parser position to the 0-based YAML mark of the condition.
	if expr.Position.Line != loc.Position.Line+w.exprLine || expr.Position.Column != loc.Position.Column+w.exprCol {
		fail("condition expression at %d:%d, want mark %d:%d + parser %d:%d", expr.Position.Line, expr.Position.Column,
			loc.Position.Line, loc.Position.Column, w.exprLine, w.exprCol)
	}
}
