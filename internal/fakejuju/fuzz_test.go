package fakejuju

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// FuzzParseFlags runs the hook-tool flag parser on newline-separated arguments, with the flag
// sets the tools use plus one fuzzed boolean and one fuzzed string flag. Properties: no panic;
// errors are usage errors (exit 2); set holds only declared names (canonical for string flags,
// "true"/"false" for booleans); positional arguments are arguments of the input, in order; and
// writing set back as --name=value flags followed by "--" and the positional arguments parses
// to the same result.
func FuzzParseFlags(f *testing.F) {
	for _, s := range [][3]string{
		{"--format=json", "", ""},
		{"--format\njson\n--all", "", ""},
		{"--format=json\nnope", "", ""},
		{"--bogus", "", ""},
		{"blocked\n--\nfix it", "", ""},
		{"--application=true\nactive\nok", "", ""},
		{"--application=maybe", "", ""},
		{"-l\nDEBUG\n--debug\nmsg", "", ""},
		{"--log-level", "", ""},
		{"-\n--\n--format=x", "", ""},
		{"---format=x", "", ""},
		{"--peek\n--refresh=false\n--label=a=b\nsecret:x", "", ""},
		{"--x=1\n--y", "x", "y"},
		{"--=v", "", ""},
		{"--format=\n--", "format", "all"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, argv, extraBool, extraStr string) {
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\n")
		}
		bools := []string{"all", "a", "application", "include-data", "debug", "endpoints", "peek", "refresh", extraBool}
		strs := map[string]string{"format": "format", "label": "label", "endpoints": "endpoints", "log-level": "log-level", "l": "log-level"}
		if extraStr != "" {
			strs[extraStr] = extraStr
		}
		fl, err := parse(args, bools, strs)
		if err != nil {
			var ue *usageError
			if fl != nil || !errors.As(err, &ue) {
				t.Fatalf("parse(%q) = %v, %v: want a usage error alone", args, fl, err)
			}
			return
		}
		isBool := map[string]bool{}
		for _, b := range bools {
			isBool[b] = true
		}
		canonical := map[string]bool{}
		for _, c := range strs {
			canonical[c] = true
		}
		for name, v := range fl.set {
			switch {
			case isBool[name]:
				if v != "true" && v != "false" {
					t.Fatalf("boolean %s = %q", name, v)
				}
			case canonical[name]:
			default:
				t.Fatalf("undeclared flag %q set", name)
			}
			if fl.on(name) != (v == "true") {
				t.Fatalf("on(%s) disagrees with %q", name, v)
			}
		}
		// Positional arguments are a subsequence of args.
		j := 0
		for _, p := range fl.posArgs {
			for j < len(args) && args[j] != p {
				j++
			}
			if j == len(args) {
				t.Fatalf("positional %q not in args %q (in order)", p, args)
			}
			j++
		}
		if len(fl.posArgs)+len(fl.set) > len(args) {
			t.Fatalf("%d positional + %d flags from %d args", len(fl.posArgs), len(fl.set), len(args))
		}
		// Round trip through the canonical spelling. A string flag's canonical name is
		// written as itself only when it is also an accepted name.
		names := make([]string, 0, len(fl.set))
		for name := range fl.set {
			names = append(names, name)
		}
		sort.Strings(names)
		var again []string
		for _, name := range names {
			if !isBool[name] && strs[name] != name {
				return
			}
			again = append(again, "--"+name+"="+fl.set[name])
		}
		again = append(append(again, "--"), fl.posArgs...)
		fl2, err := parse(again, bools, strs)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", again, err)
		}
		if !reflect.DeepEqual(fl2.set, fl.set) || !reflect.DeepEqual(fl2.posArgs, fl.posArgs) {
			t.Fatalf("round trip of %q via %q: %v %q -> %v %q", args, again, fl.set, fl.posArgs, fl2.set, fl2.posArgs)
		}
	})
}
