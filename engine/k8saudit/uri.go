package k8saudit

import (
	"bytes"
	"net/url"
)

var requestURIPath = []string{"requestURI"}

// uriParam is ka.uri.param[k]: the plugin parses requestURI with url.Parse and its query with
// url.ParseQuery, and yields the first value of k. Any error from either — including one
// caused by a different parameter — makes the field missing, as does an absent parameter.
//
// requestURIs are almost always plain absolute paths, for which the query can be located and
// validated exactly like net/url would without building a url.URL and a url.Values; anything
// more exotic goes through net/url itself.
func uriParam(arg string, _ int) Extractor {
	return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
		v := ev.root.Get(requestURIPath...)
		if v == nil {
			return dst, false
		}
		query, ok := rawQuery(ev.valueBytes(v))
		if !ok {
			return dst, false
		}
		val, ok := queryParam(ev, query, arg)
		if !ok {
			return dst, false
		}
		return append(dst, val), true
	})
}

// rawQuery returns url.Parse(uri).RawQuery, and ok=false where url.Parse fails.
func rawQuery(uri []byte) ([]byte, bool) {
	simple := len(uri) > 0 && uri[0] == '/' &&
		(len(uri) < 2 || uri[1] != '/' || (len(uri) > 2 && uri[2] == '/')) &&
		bytes.IndexByte(uri, '#') < 0
	if !simple {
		u, err := url.Parse(string(uri))
		if err != nil {
			return nil, false
		}
		return []byte(u.RawQuery), true
	}
	for _, c := range uri {
		if c < 0x20 || c == 0x7f {
			return nil, false // "invalid control character in URL"
		}
	}
	path, query, _ := bytes.Cut(uri, []byte{'?'})
	if !validEscapes(path) {
		return nil, false // url.Parse unescapes the path and rejects bad %-escapes
	}
	return query, true
}

// queryParam returns the first value of key in a raw query as url.ParseQuery would decode it;
// ok=false when the key is absent or ParseQuery would report an error anywhere in the query.
func queryParam(ev *Event, query []byte, key string) ([]byte, bool) {
	var found []byte
	have := false
	for len(query) > 0 {
		var seg []byte
		seg, query, _ = bytes.Cut(query, []byte{'&'})
		if bytes.IndexByte(seg, ';') >= 0 {
			return nil, false // "invalid semicolon separator in query"
		}
		if len(seg) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(seg, []byte{'='})
		if !validEscapes(k) || !validEscapes(v) {
			return nil, false
		}
		if !have && unescapedEquals(k, key) {
			found, have = v, true
		}
	}
	if !have {
		return nil, false
	}
	return queryUnescape(ev, found), true
}

// validEscapes reports whether every '%' starts a two-hex-digit escape, the only check
// net/url's unescape makes for paths and query components.
func validEscapes(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// unescapedEquals compares the query-unescaped form of raw (already validated) with want.
func unescapedEquals(raw []byte, want string) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '%':
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		case '+':
			c = ' '
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}

// queryUnescape decodes a validated query component, in arena memory when it has escapes.
func queryUnescape(ev *Event, raw []byte) []byte {
	n := 0
	plus := false
	for _, c := range raw {
		if c == '%' {
			n++
		} else if c == '+' {
			plus = true
		}
	}
	if n == 0 && !plus {
		return raw[:len(raw):len(raw)]
	}
	out := ev.Scratch(len(raw) - 2*n)[:0]
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '%':
			out = append(out, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
		case '+':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
