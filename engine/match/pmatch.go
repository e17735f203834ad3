package match

import "strings"

// PathPrefixSet implements Falco's pmatch operator: a value matches when some
// path of the set is a component-wise prefix of it. Paths are split on '/'
// with empty components dropped, so "/var//run/" is var, run and "/" matches
// everything. A set component containing any of "?*[" is an fnmatch pattern
// (flags 0) matched against the value component in the same position.
//
// The structure mirrors libsinsp's path_prefix_map: a trie whose nodes keep
// exact components in a map and pattern components in a list, where adding
// a path that is a prefix of existing ones prunes them. One upstream defect
// is not reproduced: libsinsp advances its component iterator inside the
// loop over pattern entries, so after a pattern entry matches but its subtree
// does not, the next pattern entries are tried against the wrong component
// (in unordered_map order). Here every pattern entry sees the same component.
type PathPrefixSet struct {
	root *prefixEntry // the synthetic "root" component every path starts with
}

type prefixNode struct {
	dirs  map[string]*prefixEntry
	globs []globEntry
}

type globEntry struct {
	pattern string
	glob    *Glob
	entry   *prefixEntry
}

// prefixEntry is one component's continuation: a subtree, or the end of a
// set path (sub == nil), after which any remaining value components match.
type prefixEntry struct {
	sub *prefixNode
}

// NewPathPrefixSet builds the set from pmatch's RHS values.
func NewPathPrefixSet(paths []string) *PathPrefixSet {
	top := &prefixNode{}
	for _, p := range paths {
		comps := append([]string{"root"}, splitPath(p)...)
		top.add(comps)
	}
	return &PathPrefixSet{root: top.dirs["root"]}
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func (n *prefixNode) add(comps []string) {
	comp := comps[0]
	last := len(comps) == 1
	var e *prefixEntry
	isGlob := strings.ContainsAny(comp, "?*[")
	if isGlob {
		for _, ge := range n.globs {
			if ge.pattern == comp {
				e = ge.entry
				break
			}
		}
	} else {
		e = n.dirs[comp]
	}
	switch {
	case e == nil:
		e = &prefixEntry{}
		if !last {
			e.sub = &prefixNode{}
			e.sub.add(comps[1:])
		}
		if isGlob {
			n.globs = append(n.globs, globEntry{comp, CompileGlob(comp, false), e})
		} else {
			if n.dirs == nil {
				n.dirs = map[string]*prefixEntry{}
			}
			n.dirs[comp] = e
		}
	case last:
		e.sub = nil // a shorter path subsumes the longer ones below it
	case e.sub == nil:
		// An existing shorter path already covers this one.
	default:
		e.sub.add(comps[1:])
	}
}

// nextComponent returns the bounds of the first non-empty component of s at
// or after i, with ok false when none is left.
func nextComponent(s []byte, i int) (start, end int, ok bool) {
	for i < len(s) && s[i] == '/' {
		i++
	}
	if i == len(s) {
		return i, i, false
	}
	start = i
	for i < len(s) && s[i] != '/' {
		i++
	}
	return start, i, true
}

// Match reports whether s has some set path as a component prefix.
func (p *PathPrefixSet) Match(s []byte) bool {
	return p.root != nil && p.root.continues(s, 0)
}

// continues checks the value from offset i once this entry's component matched.
func (e *prefixEntry) continues(s []byte, i int) bool {
	start, end, ok := nextComponent(s, i)
	if !ok {
		// The value ends here: only a set path that also ends here matches,
		// so /var does not match a set holding only /var/run.
		return e.sub == nil
	}
	if e.sub == nil {
		return true
	}
	return e.sub.match(s, start, end)
}

func (n *prefixNode) match(s []byte, start, end int) bool {
	comp := s[start:end]
	if e, ok := n.dirs[string(comp)]; ok && e.continues(s, end) {
		return true
	}
	for i := range n.globs {
		ge := &n.globs[i]
		if ge.glob.Match(comp) && ge.entry.continues(s, end) {
			return true
		}
	}
	return false
}
