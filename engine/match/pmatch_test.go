package match

import "testing"

func TestPathPrefixSet(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		value string
		want  bool
	}{
		// The examples from libsinsp's path_prefix_search documentation.
		{"prefix", []string{"/var/run", "/etc", "/lib", "/usr/lib"}, "/var/run/docker", true},
		{"no prefix", []string{"/var/run", "/etc", "/lib", "/usr/lib"}, "/boot", false},
		{"partial component path", []string{"/var/run", "/etc", "/lib", "/usr/lib"}, "/var/lib/messages", false},
		{"value shorter than set path", []string{"/var/run", "/etc", "/lib", "/usr/lib"}, "/var", false},
		{"exact", []string{"/etc"}, "/etc", true},
		{"component boundary", []string{"/etc"}, "/etcd/x", false},
		{"empty components dropped", []string{"//var///run/"}, "/var/run/x", true},
		{"value empty components dropped", []string{"/var/run"}, "var//run", true},
		{"root matches everything", []string{"/"}, "/anything/at/all", true},
		{"root matches empty", []string{"/"}, "", true},
		{"empty set path is root", []string{""}, "x", true},
		{"empty value vs non-root", []string{"/etc"}, "", false},
		{"shorter path added later prunes", []string{"/usr/lib/x", "/usr"}, "/usr/bin", true},
		{"longer path added later ignored", []string{"/usr", "/usr/lib/x"}, "/usr/bin", true},
		{"siblings", []string{"/a/b", "/a/c"}, "/a/c/d", true},
		{"siblings miss", []string{"/a/b", "/a/c"}, "/a/d", false},
		{"glob component", []string{"/home/*/.ssh"}, "/home/alice/.ssh/id_rsa", true},
		{"glob component miss", []string{"/home/*/.ssh"}, "/home/alice/.gnupg", false},
		{"glob does not cross components", []string{"/home/*"}, "/home", false},
		{"question mark", []string{"/dev/tty?"}, "/dev/tty1", true},
		{"bracket", []string{"/dev/sd[a-c]"}, "/dev/sdb1", false},
		{"bracket whole component", []string{"/dev/sd[a-c]*"}, "/dev/sdb1", true},
		{"glob is case sensitive", []string{"/HOME/*"}, "/home/x", false},
		{"direct miss then glob", []string{"/a/b/c", "/a/*/d"}, "/a/b/d", true},
		{"direct hit then glob", []string{"/a/b/c", "/a/*/d"}, "/a/b/c/e", true},
		{"two glob entries", []string{"/x/a*/1", "/x/*b/2"}, "/x/ab/2", true},
		{"glob then prune", []string{"/x/*/1/2", "/x/*/1"}, "/x/y/1/3", true},
		{"no paths", nil, "/x", false},
		{"relative paths", []string{"a/b"}, "a/b/c", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewPathPrefixSet(tc.paths).Match([]byte(tc.value)); got != tc.want {
				t.Fatalf("NewPathPrefixSet(%q).Match(%q) = %v, want %v", tc.paths, tc.value, got, tc.want)
			}
		})
	}
}
