package testshared

import (
	"path/filepath"
	"testing"
)

// fakeTB records what Missing does instead of stopping the calling test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci                  string
		wantSkip, wantFatal bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantFatal: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := &fakeTB{}
			Path(f, "no-such-file-in-shared")
			if f.skipped != tc.wantSkip || f.failed != tc.wantFatal {
				t.Fatalf("Path: skipped %v failed %v, want %v %v", f.skipped, f.failed, tc.wantSkip, tc.wantFatal)
			}
			f = &fakeTB{}
			if _, ok := Optional(f, "no-such-file-in-shared"); ok || f.failed != tc.wantFatal || f.skipped {
				t.Fatalf("Optional: ok %v skipped %v failed %v", ok, f.skipped, f.failed)
			}
		})
	}
}

func TestRootIsBesideTheModule(t *testing.T) {
	want, err := filepath.Abs(filepath.Join("..", "..", "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Clean(Root()); got != want {
		t.Fatalf("Root() = %s, want %s", got, want)
	}
}
