package engine

import (
	"fmt"
	"strings"
)

// Priority is a rule's severity; lower values are more severe, as in Falco.
type Priority int

const (
	PriorityEmergency Priority = iota
	PriorityAlert
	PriorityCritical
	PriorityError
	PriorityWarning
	PriorityNotice
	PriorityInformational
	PriorityDebug
)

var priorityNames = [...]string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

// String is the long spelling Falco prints in alerts.
func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("Priority(%d)", int(p))
	}
	return priorityNames[p]
}

// ParsePriority accepts Falco's names case-insensitively plus the alias "info".
func ParsePriority(s string) (Priority, bool) {
	for i, n := range priorityNames {
		if strings.EqualFold(s, n) {
			return Priority(i), true
		}
	}
	if strings.EqualFold(s, "info") {
		return PriorityInformational, true
	}
	return 0, false
}

// MarshalText implements encoding.TextMarshaler with the long spelling.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Falco's parsing rules.
func (p *Priority) UnmarshalText(b []byte) error {
	v, ok := ParsePriority(string(b))
	if !ok {
		return fmt.Errorf("invalid priority %q: use one of emergency, alert, critical, error, warning, notice, informational (info), debug", b)
	}
	*p = v
	return nil
}
