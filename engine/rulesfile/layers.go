package rulesfile

// Layers are the files one ruleset is built from, by origin. Ordered is the one order the agent
// loads them in and the tuning commands validate against: the built-in rules, the files each
// followed artifact had accepted, the local rules files (rules.files, -r), and last the tuning
// file, so that later layers can append to and override earlier ones and the tuning file's
// exceptions apply to rules from every other layer. T is engine.File, or whatever a caller
// keeps beside each file (the agent keeps its /status description).
type Layers[T any] struct {
	Builtin, Followed, Local, Tuning []T
}

// Ordered returns every file of every layer, in load order.
func (l Layers[T]) Ordered() []T {
	out := make([]T, 0, len(l.Builtin)+len(l.Followed)+len(l.Local)+len(l.Tuning))
	for _, layer := range [][]T{l.Builtin, l.Followed, l.Local, l.Tuning} {
		out = append(out, layer...)
	}
	return out
}
