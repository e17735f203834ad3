package webhook

// CostPerToken is the memory, in bytes, that decoding a payload takes per JSON structural token
// ('{', '[', ',' and ':' outside strings). Measured with the decoder's parser (fastjson) on a
// fresh parser, whose value cache grows by doubling so that every generation stays referenced:
// 292 B per token for 12 MiB of minimal events, 213 for 12 MiB of kube-apiserver 1.31's own
// events, 101 for a flat array of numbers. Charging the worst case keeps the budget an upper
// bound.
const CostPerToken = 320

// maxEventDepth is how deep events sit: objects directly inside an array at depth 1 or 2 (an
// array of events, or an EventList's items).
const maxEventDepth = 2

// scanCost counts a payload's JSON structural tokens and the objects in event position, in one
// pass and without allocating, so a request can be charged (or refused) before it is parsed.
// It trusts nothing: for invalid JSON the counts are still bounded by the length, and the
// parser rejects it afterwards.
func scanCost(b []byte) (tokens, events int) {
	depth := 0
	var arrays uint64 // bit d: the container at depth d+1 is an array
	inString, escaped := false, false
	tokens = 1
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{':
			tokens++
			if depth >= 1 && depth <= maxEventDepth && arrays&(1<<(depth-1)) != 0 {
				events++
			}
			depth++
			if depth <= 64 {
				arrays &^= 1 << (depth - 1)
			}
		case '[':
			tokens++
			depth++
			if depth <= 64 {
				arrays |= 1 << (depth - 1)
			}
		case '}', ']':
			if depth > 0 {
				depth--
			}
		case ',', ':':
			tokens++
		}
	}
	return tokens, events
}

// ParseCost is the memory decoding b takes, as charged to the budget.
func ParseCost(b []byte) int64 {
	t, _ := scanCost(b)
	return int64(t) * CostPerToken
}
