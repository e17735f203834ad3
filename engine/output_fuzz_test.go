package engine

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzJSONString: alert strings are valid JSON that decode to the (UTF-8-repaired) input, with
// nlohmann's escaping: no raw control characters, and <, >, & kept as they are.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\ncr\rtab\t\b\f", "\x00\x1f\x7f",
		"<script>&amp;</script>", "\u2028\u2029", "caf\xc3\xa9", "bad\xffutf8", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b bytes.Buffer
		writeJSONString(&b, s)
		var got string
		if err := json.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("writeJSONString(%q) = %s: not JSON: %v", s, b.Bytes(), err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Fatalf("writeJSONString(%q) decodes to %q, want %q", s, got, want)
		}
		for _, c := range b.Bytes() {
			if c < 0x20 {
				t.Fatalf("writeJSONString(%q) = %q: raw control character", s, b.Bytes())
			}
		}
		if strings.ContainsAny(s, "<>&") && bytes.Contains(b.Bytes(), []byte(`\u00`+"3c")) {
			t.Fatalf("writeJSONString(%q) = %s: HTML-escaped", s, b.Bytes())
		}
	})
}
