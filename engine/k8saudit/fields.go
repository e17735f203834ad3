package k8saudit

import (
	"bytes"
	"fmt"
	"strconv"
)

// Type is the libsinsp type of a field's values.
type Type uint8

const (
	TypeString Type = iota
	TypeUint64
	TypeBool
	// TypeAbsTime values are nanoseconds since the epoch as decimal text. They compare
	// numerically; the formatter renders them as a time string (see AppendTime).
	TypeAbsTime
)

func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeUint64:
		return "uint64"
	case TypeBool:
		return "bool"
	case TypeAbsTime:
		return "abstime"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ArgMode says whether a field takes an argument in brackets and how it is validated.
type ArgMode uint8

const (
	ArgNone          ArgMode = iota
	ArgIndex                 // optional numeric index
	ArgKey                   // required key
	ArgIndexRequired         // required numeric index
	ArgKeyOptional           // optional key
)

// String is how `falco-k8s rules fields` shows the argument: "-", "[index] optional",
// "[index] required", "[key] required" or "[key] optional".
func (m ArgMode) String() string {
	switch m {
	case ArgIndex:
		return "[index] optional"
	case ArgIndexRequired:
		return "[index] required"
	case ArgKey:
		return "[key] required"
	case ArgKeyOptional:
		return "[key] optional"
	}
	return "-"
}

func (m ArgMode) allowed() bool  { return m != ArgNone }
func (m ArgMode) required() bool { return m == ArgKey || m == ArgIndexRequired }
func (m ArgMode) index() bool    { return m == ArgIndex || m == ArgIndexRequired }

// Field describes one extractable field.
type Field struct {
	Name, Desc string
	Type       Type
	List       bool
	Arg        ArgMode
	Plugin     string // "k8saudit", "json", or "" for evt.*
	Deprecated bool
}

// Extractor appends the field's values for ev to dst and reports ok=false when the field is
// missing for this event (no value, extraction error, empty list — all "missing" in libsinsp).
// Non-list fields append exactly one value. On ok=false dst is returned unchanged. Returned
// byte slices may alias parser memory or ev's scratch arena: valid until ev is reused, and
// never to be written to.
type Extractor func(ev *Event, dst [][]byte) (out [][]byte, ok bool)

// noIndex is the index filter meaning "no index argument": fan out over every array element.
const noIndex = -1

// builder turns a validated argument into an extractor. idx is the parsed index argument
// (noIndex when absent); key fields read arg.
type builder func(arg string, idx int) Extractor

type fieldDef struct {
	Field
	build builder
}

var (
	fieldTable []fieldDef
	fieldIndex map[string]int
)

func init() {
	fieldTable = append(fieldTable, kaFields()...)
	fieldTable = append(fieldTable, jsonFields()...)
	fieldTable = append(fieldTable, evtFields()...)
	fieldIndex = make(map[string]int, len(fieldTable))
	for i, f := range fieldTable {
		if _, dup := fieldIndex[f.Name]; dup {
			panic("k8saudit: duplicate field " + f.Name)
		}
		fieldIndex[f.Name] = i
	}
}

// Fields returns the full field table in the plugins' listing order: the k8saudit base list,
// its initContainers.* and ephemeralContainers.* families, the json plugin's json.* and jevt.*
// fields, then the generic evt.* fields. The slice is a copy.
func Fields() []Field {
	out := make([]Field, len(fieldTable))
	for i := range fieldTable {
		out[i] = fieldTable[i].Field
	}
	return out
}

// LookupField returns the description of the named field (without any argument).
func LookupField(name string) (Field, bool) {
	i, ok := fieldIndex[name]
	if !ok {
		return Field{}, false
	}
	return fieldTable[i].Field, true
}

// Compile validates the argument as libsinsp does for plugin fields and returns an extractor
// with the argument pre-processed. The error texts are libsinsp's, so rule authors see the
// messages Falco prints.
func Compile(name, arg string, hasArg bool) (Extractor, error) {
	i, ok := fieldIndex[name]
	if !ok {
		return nil, fmt.Errorf("filter_check called with nonexistent field %s", name)
	}
	f := &fieldTable[i]
	idx := noIndex
	if hasArg {
		full := name + "[" + arg + "]"
		if !f.Arg.allowed() {
			return nil, fmt.Errorf("filter '%s': %s does not allow nor require an argument but one is provided: %s", full, name, arg)
		}
		if f.Arg.index() {
			n, err := parseIndexArg(full, name, arg)
			if err != nil {
				return nil, err
			}
			idx = n
		}
	} else if f.Arg.required() {
		return nil, fmt.Errorf("filter '%s': %s requires an argument but none provided", name, name)
	}
	x := f.build(arg, idx)
	if f.Type == TypeString && f.Plugin != "" {
		x = cutAtNUL(x)
	}
	return x, nil
}

// cutAtNUL ends each string value at its first NUL byte: libsinsp copies a plugin's string
// field as a C string, so Falco's rules and outputs never see past one (an attacker's
// "admin\u0000x" user name is "admin" to Falco, and so it is here).
func cutAtNUL(x Extractor) Extractor {
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		n := len(dst)
		out, ok := x(ev, dst)
		if ok {
			for i := n; i < len(out); i++ {
				if j := bytes.IndexByte(out[i], 0); j >= 0 {
					out[i] = out[i][:j:j]
				}
			}
		}
		return out, ok
	}
}

// parseIndexArg applies libsinsp's index rules (digits only, no leading zero except "0",
// representable on 64 bits) and converts the value the way the Go plugin SDK hands it to the
// plugin: uint64 then int. That conversion makes 2^64-1 wrap to -1, the plugin's own
// "no index" sentinel, so that one value behaves like no argument at all; we keep that. Other
// values beyond MaxInt would go negative and crash the plugin; they select nothing here.
func parseIndexArg(full, name, arg string) (int, error) {
	msg := ""
	if len(arg) == 0 || (len(arg) > 1 && arg[0] == '0') {
		msg = " has an invalid index argument starting with 0: "
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] < '0' || arg[i] > '9' {
			msg = " has an invalid index argument not composed only by digits: "
			break
		}
	}
	if msg == "" {
		u, err := strconv.ParseUint(arg, 10, 64)
		if err == nil {
			switch {
			case u == ^uint64(0):
				return noIndex, nil
			case u > uint64(maxInt):
				return maxInt, nil
			}
			return int(u), nil
		}
		msg = " has an invalid index argument not representable on 64 bit: "
	}
	return 0, fmt.Errorf("filter %s %s%s%s", full, name, msg, arg)
}

const maxInt = int(^uint(0) >> 1)
