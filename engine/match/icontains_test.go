package match

import "testing"

func TestIContains(t *testing.T) {
	tests := []struct {
		h, n string
		want bool
	}{
		{"Hello World", "world", true},
		{"Hello World", "WORLD", true},
		{"Hello World", "o w", true},
		{"Hello", "hello!", false},
		{"", "", true},
		{"abc", "", true},
		{"", "a", false},
		{"aaab", "AAB", true},
		{"ABCABD", "abd", true},
		{"x-y_z", "-Y_", true},
		{"caf\xc3\xa9", "CAF\xc3\xa9", true},
		{"caf\xc3\xa9", "CAF\xc3\x89", false}, // only ASCII folds
		{"[]^_`", "{", false},                 // no folding outside letters
		{"abc\x00def", "def", false},          // C strings end at NUL
		{"abcdef", "cd\x00zz", true},
		{"abcdef", "\x00", true},
	}
	for _, tc := range tests {
		if got := IContains([]byte(tc.h), []byte(tc.n)); got != tc.want {
			t.Errorf("IContains(%q, %q) = %v, want %v", tc.h, tc.n, got, tc.want)
		}
	}
}
