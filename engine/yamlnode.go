package engine

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlFile holds one rules file's text for positions and snippets.
type yamlFile struct {
	name       string
	content    []byte
	lineStarts []int
}

func newYAMLFile(name string, content []byte) *yamlFile {
	f := &yamlFile{name: name, content: content, lineStarts: []int{0}}
	for i, c := range content {
		if c == '\n' {
			f.lineStarts = append(f.lineStarts, i+1)
		}
	}
	return f
}

// pos converts yaml.v3's 1-based node position to Falco's 0-based YAML mark.
func (f *yamlFile) pos(n *yaml.Node) Position {
	if n == nil || n.Line == 0 {
		return Position{Name: f.name, Line: 0, Column: 0, Offset: 0}
	}
	line, col := n.Line-1, n.Column-1
	off := -1
	if line < len(f.lineStarts) {
		off = f.lineStarts[line] + col
	}
	return Position{Name: f.name, Line: line, Column: col, Offset: off}
}

// snippet renders the source line at p with a caret under the column, as Falco does.
func (f *yamlFile) snippet(p Position) string {
	if p.Line < 0 || p.Line >= len(f.lineStarts) {
		return ""
	}
	start := f.lineStarts[p.Line]
	end := len(f.content)
	if p.Line+1 < len(f.lineStarts) {
		end = f.lineStarts[p.Line+1] - 1
	}
	return caretSnippet(string(f.content[start:end]), p.Column)
}

// caretSnippet cuts long lines around the column (Falco keeps about 160 characters).
func caretSnippet(line string, col int) string {
	const max = 160
	line = strings.TrimRight(line, "\r")
	if col > len(line) {
		col = len(line)
	}
	if len(line) > max {
		from := 0
		if col > max/2 {
			from = col - max/2
		}
		to := from + max
		if to > len(line) {
			to = len(line)
		}
		prefix, suffix := "", ""
		if from > 0 {
			prefix = "..."
		}
		if to < len(line) {
			suffix = "..."
		}
		col = col - from + len(prefix)
		line = prefix + line[from:to] + suffix
	}
	return line + "\n" + strings.Repeat(" ", col) + "^\n"
}

// deref follows aliases so that anchors behave as yaml-cpp's resolved nodes.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// lookup returns the value of key in a mapping node, or nil when absent. The first occurrence
// wins, as in yaml-cpp's linear search, so duplicate keys are not errors.
func lookup(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := deref(m.Content[i])
		if k.Kind == yaml.ScalarNode && k.Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// lookupKey returns the key node itself (for positions of key-level diagnostics).
func lookupKey(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return k
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isScalar(n *yaml.Node) bool { n = deref(n); return n != nil && n.Kind == yaml.ScalarNode }
func isSeq(n *yaml.Node) bool    { n = deref(n); return n != nil && n.Kind == yaml.SequenceNode }
func isMap(n *yaml.Node) bool    { n = deref(n); return n != nil && n.Kind == yaml.MappingNode }

// decodeBool accepts what yaml-cpp's convert<bool> accepts, quoted or not.
func decodeBool(s string) (bool, bool) {
	for _, pair := range [...]struct {
		word string
		val  bool
	}{{"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"on", true}, {"off", false}, {"y", true}, {"n", false}} {
		w := pair.word
		if s == w || s == strings.ToUpper(w) || s == strings.ToUpper(w[:1])+w[1:] {
			return pair.val, true
		}
	}
	return false, false
}

// decodeUint32 mirrors yaml-cpp's convert<uint32_t>: the whole text must be a non-negative number.
func decodeUint32(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}
