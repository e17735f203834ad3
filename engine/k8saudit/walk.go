package k8saudit

import "github.com/valyala/fastjson"

// walkPath is the plugin's getValuesRecursive. Whenever the current value is an array before
// the next key is applied, it either fans out over every element (idx == noIndex) — elements
// where the rest of the path is missing contribute a nil placeholder — or continues with
// element idx only, which is missing when out of range. The final value is not fanned out.
// An empty key stands for "the value itself", so a trailing "" fans out over an array's
// elements. Results are appended to dst; ok=false means the path is missing.
func walkPath(dst []*fastjson.Value, v *fastjson.Value, idx int, keys []string) ([]*fastjson.Value, bool) {
	for i, k := range keys {
		if v.Type() == fastjson.TypeArray {
			arr := v.GetArray()
			if idx == noIndex {
				for _, e := range arr {
					n := len(dst)
					var ok bool
					if dst, ok = walkPath(dst, e, idx, keys[i:]); !ok {
						dst = append(dst[:n], nil)
					}
				}
				return dst, true
			}
			if idx >= len(arr) {
				return dst, false
			}
			v = arr[idx]
		}
		if k != "" {
			if v = v.Get(k); v == nil {
				return dst, false
			}
		}
	}
	return append(dst, v), true
}

// walk runs walkPath from the event root into the event's reusable result buffer. The result
// is only valid until the next walk on ev.
func (ev *Event) walk(idx int, keys []string) ([]*fastjson.Value, bool) {
	vals, ok := walkPath(ev.vals[:0], ev.root, idx, keys)
	ev.vals = vals[:0]
	return vals, ok
}

// appendStrict stringifies every value, failing on a nil placeholder (the plugin's
// arrayAsStrings). An empty result is missing.
func (ev *Event) appendStrict(dst [][]byte, vals []*fastjson.Value) ([][]byte, bool) {
	n := len(dst)
	for _, v := range vals {
		if v == nil {
			return dst[:n], false
		}
		dst = ev.appendValue(dst, v)
	}
	return dst, len(dst) > n
}

// appendSkipNil stringifies the non-nil values (the plugin's arrayAsStringsSkipNil).
func (ev *Event) appendSkipNil(dst [][]byte, vals []*fastjson.Value) ([][]byte, bool) {
	n := len(dst)
	for _, v := range vals {
		if v != nil {
			dst = ev.appendValue(dst, v)
		}
	}
	return dst, len(dst) > n
}
