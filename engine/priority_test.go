package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePriority(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Priority
		wantErr bool
	}{
		{in: "Emergency", want: PriorityEmergency},
		{in: "warning", want: PriorityWarning},
		{in: "INFORMATIONAL", want: PriorityInformational},
		{in: "info", want: PriorityInformational},
		{in: "Debug", want: PriorityDebug},
		{in: "loud", wantErr: true},
		{in: "", wantErr: true},
		{in: "warn", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePriority(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidPriority) || !strings.Contains(err.Error(), `"`+tc.in+`"`) || !strings.Contains(err.Error(), "informational (info)") {
					t.Fatalf("err = %v, want ErrInvalidPriority naming the value and the valid names", err)
				}
				var p Priority
				if err := p.UnmarshalText([]byte(tc.in)); !errors.Is(err, ErrInvalidPriority) {
					t.Fatalf("UnmarshalText err = %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
