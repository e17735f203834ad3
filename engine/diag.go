package engine

import (
	"fmt"
	"strings"
)

// Severity tells whether a diagnostic invalidates the rules content.
type Severity int

const (
	SeverityError Severity = iota
	SeverityWarning
)

// Code is one of Falco's load-result codes (falco_load_result.h), kept verbatim so that tooling
// which matches them on `falco -V -o json_output=true` output works on ours.
type Code string

const (
	ErrFileRead         Code = "LOAD_ERR_FILE_READ"
	ErrYAMLParse        Code = "LOAD_ERR_YAML_PARSE"
	ErrYAMLValidate     Code = "LOAD_ERR_YAML_VALIDATE"
	ErrCompileCondition Code = "LOAD_ERR_COMPILE_CONDITION"
	ErrCompileOutput    Code = "LOAD_ERR_COMPILE_OUTPUT"
	ErrValidate         Code = "LOAD_ERR_VALIDATE"
	ErrExtension        Code = "LOAD_ERR_EXTENSION"

	WarnUnknownSource          Code = "LOAD_UNKNOWN_SOURCE"
	WarnUnsafeNACheck          Code = "LOAD_UNSAFE_NA_CHECK"
	WarnNoEvttype              Code = "LOAD_NO_EVTTYPE"
	WarnUnknownFilter          Code = "LOAD_UNKNOWN_FILTER"
	WarnUnusedMacro            Code = "LOAD_UNUSED_MACRO"
	WarnUnusedList             Code = "LOAD_UNUSED_LIST"
	WarnUnknownItem            Code = "LOAD_UNKNOWN_ITEM"
	WarnDeprecatedItem         Code = "LOAD_DEPRECATED_ITEM"
	WarnExtension              Code = "LOAD_WARNING_EXTENSION"
	WarnAppendNoValues         Code = "LOAD_APPEND_NO_VALUES"
	WarnExceptionNameNotUnique Code = "LOAD_EXCEPTION_NAME_NOT_UNIQUE"
	WarnInvalidMacroName       Code = "LOAD_INVALID_MACRO_NAME"
	WarnInvalidListName        Code = "LOAD_INVALID_LIST_NAME"
	WarnCompileCondition       Code = "LOAD_COMPILE_CONDITION"
	WarnUnknownKey             Code = "LOAD_UNKNOWN_KEY"
)

var codeDescs = map[Code]string{
	ErrFileRead:                "File read error",
	ErrYAMLParse:               "YAML parse error",
	ErrYAMLValidate:            "Error validating internal structure of YAML file",
	ErrCompileCondition:        "Error compiling condition",
	ErrCompileOutput:           "Error compiling output",
	ErrValidate:                "Error validating rule/macro/list/exception objects",
	ErrExtension:               "Error in extension item",
	WarnUnknownSource:          "Unknown event source",
	WarnUnsafeNACheck:          "Unsafe <NA> comparison in condition",
	WarnNoEvttype:              "Condition has no event-type restriction",
	WarnUnknownFilter:          "Unknown field or event-type in condition or output",
	WarnUnusedMacro:            "Unused macro",
	WarnUnusedList:             "Unused list",
	WarnUnknownItem:            "Unknown rules file item",
	WarnDeprecatedItem:         "Used deprecated item",
	WarnExtension:              "Warning in extension item",
	WarnAppendNoValues:         "Overriding/appending with no values",
	WarnExceptionNameNotUnique: "Multiple exceptions defined with the same name",
	WarnInvalidMacroName:       "Invalid macro name",
	WarnInvalidListName:        "Invalid list name",
	WarnCompileCondition:       "Warning in rule condition",
	WarnUnknownKey:             "Unknown key in item definition",
}

// Desc is Falco's short description of the code (the text layout's "CODE (desc)").
func (c Code) Desc() string { return codeDescs[c] }

// warningJSONDescs are the longer descriptions Falco puts in a warning's "codedesc" in JSON
// load results (falco_load_result.cpp's warning_descs). For errors Falco's JSON carries the short
// description (its error_desc returns the error string), so Desc serves there.
var warningJSONDescs = map[Code]string{
	WarnUnknownSource:          "A rule has a unknown event source. This can occur when reading rules content without having a corresponding plugin loaded, etc. The rule will be silently ignored.",
	WarnUnsafeNACheck:          "Comparing a field value with <NA> is unsafe and can lead to unpredictable behavior of the rule condition. If you need to check for the existence of a field, consider using the 'exists' operator instead.",
	WarnNoEvttype:              "A rule condition matches too many evt.type values. This has a significant performance penalty. Make the condition more specific by adding an evt.type field or further restricting the number of evt.type values in the condition.",
	WarnUnknownFilter:          "A rule condition or output refers to a field or evt.type that does not exist. This is normally an error, but if a rule has a skip-if-unknown-filter property, the error is downgraded to a warning.",
	WarnUnusedMacro:            "A macro is defined in the rules content but is not used by any other macro or rule.",
	WarnUnusedList:             "A list is defined in the rules content but is not used by any other list, macro, or rule.",
	WarnUnknownItem:            "An unknown top-level object is in the rules content. It will be ignored.",
	WarnDeprecatedItem:         "A deprecated item is employed by lists, macros, or rules.",
	WarnExtension:              "An extension item has a warning",
	WarnAppendNoValues:         "A rule exception is overriding/appending with no values",
	WarnExceptionNameNotUnique: "A rule is defining multiple exceptions with the same name",
	WarnInvalidMacroName:       "A macro is defined with an invalid name",
	WarnInvalidListName:        "A list is defined with an invalid name",
	WarnCompileCondition:       "A rule condition or output have been parsed with a warning",
	WarnUnknownKey:             "An item in the rules content contains an unrecognized key. The key will be ignored. This may indicate a typo or a property placed on the wrong item type.",
}

// JSONDesc is the "codedesc" Falco writes for the code in `-o json_output=true` load results.
func (c Code) JSONDesc() string {
	if d, ok := warningJSONDescs[c]; ok {
		return d
	}
	return codeDescs[c]
}

// Item types of a location, spelled as Falco prints them.
const (
	ItemRulesContent        = "rules content"
	ItemRulesContentItem    = "rules content item"
	ItemEngineVersion       = "required_engine_version"
	ItemPluginVersions      = "required plugin versions"
	ItemPluginVersionsEntry = "required plugin versions entry"
	ItemPluginVersionsAlt   = "required plugin versions alternative"
	ItemList                = "list"
	ItemListItem            = "list item"
	ItemMacro               = "macro"
	ItemMacroCondition      = "macro condition"
	ItemRule                = "rule"
	ItemRuleCondition       = "rule condition"
	ItemConditionExpression = "condition expression"
	ItemRuleOutput          = "rule output"
	ItemOutputExpression    = "rule output expression"
	ItemRulePriority        = "rule priority"
	ItemOverrides           = "overrides"
	ItemExceptions          = "exceptions"
	ItemException           = "exception"
	ItemExceptionValues     = "exception values"
	ItemExceptionValue      = "exception value"
	ItemValueFor            = "value for"
)

// Position is a place in a rules file. Line and Column are 0-based as in Falco's output (they come
// from the YAML mark); Offset is a byte offset when known, else -1.
type Position struct {
	Name   string `json:"name"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Offset int    `json:"offset"`
}

// Location is one step of a diagnostic's context chain, outermost first.
type Location struct {
	ItemType string   `json:"item_type"`
	ItemName string   `json:"item_name"`
	Position Position `json:"position"`
}

// Diagnostic is an error or warning produced while loading rules. Locations run from the rules
// content down to the innermost place (e.g. rules content → rule 'x' → value for 'priority').
type Diagnostic struct {
	Severity  Severity
	Code      Code
	Message   string
	Locations []Location
	// Snippet is the source line at the innermost position with a caret under the column.
	Snippet string
}

// Innermost returns the most precise location.
func (d Diagnostic) Innermost() Location {
	if len(d.Locations) == 0 {
		return Location{}
	}
	return d.Locations[len(d.Locations)-1]
}

// Item returns the kind and name of the item (rule, macro, list, ...) the diagnostic is about:
// the innermost location that names a top-level item, else the innermost location.
func (d Diagnostic) Item() (kind, name string) {
	for i := len(d.Locations) - 1; i >= 0; i-- {
		switch d.Locations[i].ItemType {
		case ItemRule, ItemMacro, ItemList, ItemEngineVersion, ItemPluginVersions, ItemPluginVersionsEntry, ItemRulesContentItem:
			return d.Locations[i].ItemType, d.Locations[i].ItemName
		}
	}
	l := d.Innermost()
	return l.ItemType, l.ItemName
}

// String renders the diagnostic on one line for editors and logs: the innermost position in the
// rules file (1-based line:column), the item, the message and the code. When the problem is
// inside a condition expression, its position within the expanded condition follows.
func (d Diagnostic) String() string {
	var file, expr *Location
	exprLine, exprCol := 0, 0
	for i := len(d.Locations) - 1; i >= 0; i-- {
		l := &d.Locations[i]
		if l.ItemType == ItemConditionExpression {
			if expr == nil && file == nil {
				expr = l
				// Falco adds the 1-based parser position to the parent's YAML mark.
				exprLine, exprCol = l.Position.Line, l.Position.Column
				if i > 0 {
					exprLine -= d.Locations[i-1].Position.Line
					exprCol -= d.Locations[i-1].Position.Column
				}
			}
			continue
		}
		if file == nil && l.Position.Name != "" {
			file = l
		}
	}
	kind, name := d.Item()
	sev := "error"
	if d.Severity == SeverityWarning {
		sev = "warning"
	}
	item := kind
	if name != "" {
		item = fmt.Sprintf("%s '%s'", kind, name)
	}
	pos := "<rules>"
	if file != nil {
		pos = fmt.Sprintf("%s:%d:%d", file.Position.Name, file.Position.Line+1, file.Position.Column+1)
	}
	s := fmt.Sprintf("%s: %s: %s: %s (%s)", pos, sev, item, d.Message, d.Code)
	if expr != nil {
		// Parser positions are already 1-based.
		s += fmt.Sprintf(" [condition line %d, column %d]", exprLine, exprCol)
	}
	return s
}

// FalcoVerbose renders the diagnostic in the layout `falco -V` uses for its verbose details.
func (d Diagnostic) FalcoVerbose() string {
	var b strings.Builder
	for i, l := range d.Locations {
		if i == 0 {
			b.WriteString("In ")
		} else {
			b.WriteString("    ")
		}
		if l.ItemName != "" {
			fmt.Fprintf(&b, "%s '%s': (%s:%d:%d)\n", l.ItemType, l.ItemName, l.Position.Name, l.Position.Line, l.Position.Column)
		} else {
			fmt.Fprintf(&b, "%s: (%s:%d:%d)\n", l.ItemType, l.Position.Name, l.Position.Line, l.Position.Column)
		}
	}
	if d.Snippet != "" {
		b.WriteString("------\n")
		b.WriteString(d.Snippet)
		b.WriteString("------\n")
	}
	fmt.Fprintf(&b, "%s (%s): %s\n", d.Code, d.Code.Desc(), d.Message)
	return b.String()
}

// FileResult is the outcome of loading one rules file, like one entry of Falco's
// falco_load_results.
type FileResult struct {
	Name       string
	Successful bool
	Errors     []Diagnostic
	Warnings   []Diagnostic
}

// LoadError is returned by Load when some file is invalid; it carries every file's result.
type LoadError struct {
	Results []FileResult
}

func (e *LoadError) Error() string {
	var parts []string
	for _, r := range e.Results {
		for _, d := range r.Errors {
			parts = append(parts, d.String())
		}
	}
	if len(parts) == 0 {
		return "rules failed to load"
	}
	return strings.Join(parts, "; ")
}
