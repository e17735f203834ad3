package engine

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

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
		// yaml.v3 counts columns in characters, yaml-cpp in bytes.
		start := f.lineStarts[line]
		b := start
		for r := 0; r < col && b < len(f.content) && f.content[b] != '\n'; r++ {
			_, size := utf8.DecodeRune(f.content[b:])
			b += size
		}
		col, off = b-start, b
	}
	if n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0 && n.Tag == "!!null" && off >= 0 {
		// An empty (implicit null) value has no text of its own: yaml-cpp marks it at the next
		// token, where yaml.v3 stops right after the key.
		return f.nextToken(off)
	}
	return Position{Name: f.name, Line: line, Column: col, Offset: off}
}

// nextToken is the position of the first character at or after off that is not blank, a line
// break or part of a comment.
func (f *yamlFile) nextToken(off int) Position {
	c := f.content
	for off < len(c) {
		switch c[off] {
		case ' ', '\t', '\r', '\n':
			off++
			continue
		case '#':
			for off < len(c) && c[off] != '\n' {
				off++
			}
			continue
		}
		break
	}
	line := sort.SearchInts(f.lineStarts, off+1) - 1
	return Position{Name: f.name, Line: line, Column: off - f.lineStarts[line], Offset: off}
}

// snippet renders the source line at p with a caret under it, as Falco does.
func (f *yamlFile) snippet(p Position) string { return falcoSnippet(string(f.content), p.Offset) }

// snippetWidth is Falco's default snippet width: at most half of it on each side of the position.
const snippetWidth = 160

// falcoSnippet is rule_loader::context::snippet's algorithm, quirks included: pos is a byte offset
// into content (for a condition expression Falco passes the YAML mark's offset plus the parser's,
// which usually lands past the end and so marks the last character); walks stop at newlines or
// half the width; cut ends become "...". Unsigned arithmetic is kept where Falco's size_t wraps.
func falcoSnippet(content string, offset int) string {
	if content == "" {
		return "<No context available>\n"
	}
	size := uint64(len(content))
	pos := uint64(offset) // -1 (unknown) wraps to the end, as Falco's size_t would
	if pos >= size {
		pos = size - 1 // where Falco's backward walk gets to
	}
	for pos > 0 && (pos >= size || content[pos] == '\n') {
		pos--
	}
	half := uint64(snippetWidth / 2)
	from := pos
	for from > 0 && content[from] != '\n' && pos-from < half {
		from--
	}
	to := pos
	for to < size-1 && content[to] != '\n' && to-pos < half {
		to++
	}
	if from < size && content[from] == '\n' {
		from++
	}
	if to < size && content[to] == '\n' {
		to-- // may wrap below zero, as in Falco
	}
	n := to - from + 1
	var ret string
	if from < size {
		// std::string::substr clamps the count to the end, also when it wrapped around.
		ret = content[from:]
		if n < size-from {
			ret = content[from : from+n]
		}
	}
	if ret == "" {
		return "<No context available>\n"
	}
	if pos-from >= half {
		ret = "..." + ret[min(3, len(ret)):]
	}
	if to-pos >= half {
		ret = ret[:max(0, len(ret)-3)] + "..."
	}
	ret += "\n"
	if pos-from <= uint64(len(ret)-1) {
		ret += strings.Repeat(" ", int(pos-from)) + "^\n"
	}
	return ret
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
