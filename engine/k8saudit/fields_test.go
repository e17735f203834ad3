package k8saudit

import (
	"slices"
	"strings"
	"testing"
)

func TestFieldTable(t *testing.T) {
	fs := Fields()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
		if f.Desc == "" {
			t.Errorf("%s has no description", f.Name)
		}
		switch {
		case strings.HasPrefix(f.Name, "ka."):
			if f.Plugin != "k8saudit" || f.Type != TypeString {
				t.Errorf("%s: plugin %q type %v", f.Name, f.Plugin, f.Type)
			}
		case strings.HasPrefix(f.Name, "json."), strings.HasPrefix(f.Name, "jevt."):
			if f.Plugin != "json" || f.Type != TypeString || f.List {
				t.Errorf("%s: plugin %q type %v list %v", f.Name, f.Plugin, f.Type, f.List)
			}
		case strings.HasPrefix(f.Name, "evt."):
			if f.Plugin != "" || f.List || f.Arg != ArgNone {
				t.Errorf("%s: plugin %q list %v arg %v", f.Name, f.Plugin, f.List, f.Arg)
			}
		default:
			t.Errorf("unexpected field %s", f.Name)
		}
		if g, ok := LookupField(f.Name); !ok || g != f {
			t.Errorf("LookupField(%s) = %+v, %v", f.Name, g, ok)
		}
	}
	// The plugin's listing order at its boundaries.
	for _, seq := range [][]string{
		{"ka.auditid", "ka.stage", "ka.auth.decision", "ka.auth.reason", "ka.auth.openshift.decision",
			"ka.validations.admission.policy.failure", "ka.security.pod.violations", "ka.auth.openshift.username", "ka.user.name"},
		{"ka.req.configmap.obj", "ka.req.pod.containers.args", "ka.req.pod.containers.command", "ka.req.pod.containers.name", "ka.req.pod.containers.image"},
		{"ka.useragent", "ka.sourceips", "ka.cluster.name", "ka.req.pod.initContainers.name"},
		{"ka.req.pod.initContainers.add_capabilities", "ka.req.pod.initContainers.host_port", "ka.req.pod.ephemeralContainers.name"},
		{"ka.req.pod.ephemeralContainers.add_capabilities", "json.value", "json.obj", "json.rawtime", "jevt.value", "jevt.obj", "jevt.rawtime"},
		{"evt.num", "evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s", "evt.rawtime", "evt.rawtime.s", "evt.rawtime.ns",
			"evt.source", "evt.pluginname", "evt.plugininfo", "evt.is_async", "evt.asynctype", "evt.hostname"},
	} {
		i := slices.Index(names, seq[0])
		if i < 0 || i+len(seq) > len(names) || !slices.Equal(names[i:i+len(seq)], seq) {
			t.Errorf("listing order around %s: want %v", seq[0], seq)
		}
	}
	if names[0] != "ka.auditid" || names[len(names)-1] != "evt.hostname" {
		t.Errorf("table starts with %s and ends with %s", names[0], names[len(names)-1])
	}
	kaCount := 0
	for _, n := range names {
		if strings.HasPrefix(n, "ka.") {
			kaCount++
		}
	}
	// 71 base fields + 15 initContainers + 14 ephemeralContainers.
	if kaCount != 71+15+14 {
		t.Errorf("%d ka.* fields", kaCount)
	}

	for name, want := range map[string]Field{
		"ka.user.groups":              {List: true, Arg: ArgNone},
		"ka.uri.param":                {Arg: ArgKey},
		"ka.req.volume.hostpath":      {Arg: ArgKey, Deprecated: true},
		"ka.req.pod.containers.image": {List: true, Arg: ArgIndex},
		"ka.req.service.ports":        {List: true, Arg: ArgIndex},
		"ka.sourceips":                {List: true, Arg: ArgIndex},
		"ka.req.role.rules":           {List: true},
		"ka.req.container.image":      {Deprecated: true},
		"jevt.value":                  {Arg: ArgKey},
	} {
		f, _ := LookupField(name)
		if f.List != want.List || f.Arg != want.Arg || f.Deprecated != want.Deprecated {
			t.Errorf("%s: list %v arg %v deprecated %v", name, f.List, f.Arg, f.Deprecated)
		}
	}
	for name, typ := range map[string]Type{"evt.num": TypeUint64, "evt.time": TypeAbsTime, "evt.rawtime": TypeUint64,
		"evt.is_async": TypeBool, "evt.time.iso8601": TypeString, "json.rawtime": TypeString} {
		if f, _ := LookupField(name); f.Type != typ {
			t.Errorf("%s: type %v, want %v", name, f.Type, typ)
		}
	}
	if _, ok := LookupField("ka.nope"); ok {
		t.Error("LookupField found an unknown field")
	}
	fs[0].Name = "changed"
	if Fields()[0].Name != "ka.auditid" {
		t.Error("Fields() exposes the internal table")
	}
}

func TestCompileArgErrors(t *testing.T) {
	for _, c := range []struct {
		name, arg string
		hasArg    bool
		err       string // "" = ok
	}{
		{"ka.verb", "", false, ""},
		{"ka.verb", "x", true, "filter 'ka.verb[x]': ka.verb does not allow nor require an argument but one is provided: x"},
		{"evt.time", "", true, "filter 'evt.time[]': evt.time does not allow nor require an argument but one is provided: "},
		{"ka.uri.param", "", false, "filter 'ka.uri.param': ka.uri.param requires an argument but none provided"},
		{"jevt.value", "", false, "filter 'jevt.value': jevt.value requires an argument but none provided"},
		{"jevt.value", "", true, ""},
		{"ka.uri.param", "a b]c", true, ""},
		{"ka.req.pod.containers.image", "", false, ""},
		{"ka.req.pod.containers.image", "0", true, ""},
		{"ka.req.pod.containers.image", "10", true, ""},
		{"ka.req.pod.containers.image", "01", true, "filter ka.req.pod.containers.image[01] ka.req.pod.containers.image has an invalid index argument starting with 0: 01"},
		{"ka.req.pod.containers.image", "", true, "filter ka.req.pod.containers.image[] ka.req.pod.containers.image has an invalid index argument starting with 0: "},
		{"ka.req.pod.containers.image", "1a", true, "filter ka.req.pod.containers.image[1a] ka.req.pod.containers.image has an invalid index argument not composed only by digits: 1a"},
		{"ka.req.pod.containers.image", "0x", true, "filter ka.req.pod.containers.image[0x] ka.req.pod.containers.image has an invalid index argument not composed only by digits: 0x"},
		{"ka.req.pod.containers.image", "-1", true, "filter ka.req.pod.containers.image[-1] ka.req.pod.containers.image has an invalid index argument not composed only by digits: -1"},
		{"ka.req.pod.containers.image", "18446744073709551616", true, "filter ka.req.pod.containers.image[18446744073709551616] ka.req.pod.containers.image has an invalid index argument not representable on 64 bit: 18446744073709551616"},
		{"ka.req.pod.containers.image", "18446744073709551615", true, ""},
		{"ka.foo", "", false, "filter_check called with nonexistent field ka.foo"},
		{"ka.verb.", "", false, "filter_check called with nonexistent field ka.verb."},
	} {
		x, err := Compile(c.name, c.arg, c.hasArg)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("Compile(%q, %q, %v): %v", c.name, c.arg, c.hasArg, err)
		case c.err == "" && x == nil:
			t.Errorf("Compile(%q, %q, %v): nil extractor", c.name, c.arg, c.hasArg)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("Compile(%q, %q, %v) error:\n got %v\nwant %s", c.name, c.arg, c.hasArg, err, c.err)
		}
	}
}
