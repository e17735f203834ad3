package engine

import (
	"errors"
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

// ErrInvalidPriority is what ParsePriority returns (wrapped, naming the value and the valid
// names) for a string that is not a priority.
var ErrInvalidPriority = errors.New("invalid priority")

// ParsePriority accepts Falco's names case-insensitively plus the alias "info": the one parser
// of priority names for rules files, configuration, flags, actions and queries.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if strings.EqualFold(s, n) {
			return Priority(i), nil
		}
	}
	if strings.EqualFold(s, "info") {
		return PriorityInformational, nil
	}
	return 0, fmt.Errorf("%w %q: use emergency, alert, critical, error, warning, notice, informational (info) or debug", ErrInvalidPriority, s)
}

// MarshalText implements encoding.TextMarshaler with the long spelling.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Falco's parsing rules.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
