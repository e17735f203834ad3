package version

import (
	"strings"
	"testing"
)

func TestFloatingTags(t *testing.T) {
	for _, tc := range []struct {
		v, refTag string
		pol       FloatingPolicy
		existing  []string
		want      string
	}{
		{"1.1.1", "", FloatAlways, nil, "1.1.1,1.1,1"},
		{"1.2.3-rc1", "", FloatAlways, nil, "1.2.3-rc1"},
		{"1.2.3-rc1", "", FloatIfHighest, nil, "1.2.3-rc1"},
		{"1.0.5", "", FloatIfHighest, []string{"1.1.1", "1.0.4", "latest", "2.0.0-rc1"}, "1.0.5,1.0"},
		{"1.1.2", "", FloatIfHighest, []string{"1.1.1", "1.0.4", "2.0.0-rc1"}, "1.1.2,1.1,1,latest"},
		{"1.1.2", "", FloatIfHighest, []string{"2.0.0"}, "1.1.2,1.1,1"},
	} {
		v, err := ParseStrict(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(FloatingTags(v, tc.pol, tc.refTag, tc.existing), ","); got != tc.want {
			t.Errorf("%s %v %v: got %s want %s", tc.v, tc.pol, tc.existing, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"1", "1.2", "1.2.3+build", "v1.2.3", "01.2.3", ""} {
		if _, err := ParseStrict(bad); err == nil {
			t.Errorf("strict accepted %q", bad)
		}
	}
	for in, want := range map[string]string{"1": "1.0.0", "v0.6": "0.6.0", "1.2.3-rc.1": "1.2.3-rc.1"} {
		v, err := ParseTolerant(in)
		if err != nil || v.String() != want {
			t.Errorf("tolerant %q: %v %v", in, v, err)
		}
	}
}

func TestBestTag(t *testing.T) {
	min, _ := ParseTolerant("0.7.0")
	tag, _, ok := BestTag([]string{"0.6.0", "0.7.0", "0.7.2", "0.8.0-rc1", "0.10.1", "1.0.0", "latest", "0"}, min)
	if !ok || tag != "0.10.1" {
		t.Fatalf("got %s", tag)
	}
	if _, _, ok := BestTag([]string{"1.0.0"}, min); ok {
		t.Fatal("other major accepted")
	}
}

func TestCheckRequirement(t *testing.T) {
	have := map[string]string{"engine_version": "31", "engine_version_semver": "0.31.0", "plugin_api_version": "3.10.0"}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"engine_version", "30", true}, {"engine_version", "32", false},
		{"engine_version_semver", "0.30.0", true}, {"engine_version_semver", "0.32.0", false},
		{"plugin_api_version", "2.0.0", false}, {"missing", "1", false},
	} {
		if err := CheckRequirement(tc.name, tc.want, have); (err == nil) != tc.ok {
			t.Errorf("%s:%s: %v", tc.name, tc.want, err)
		}
	}
}

func FuzzParseTolerant(f *testing.F) {
	f.Add("1.2")
	f.Add("v1")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseStrict(s); err == nil {
			if tv, err := ParseTolerant(s); err != nil || !tv.Equal(v) {
				t.Fatalf("strict %q not tolerant-equal", s)
			}
		}
	})
}
