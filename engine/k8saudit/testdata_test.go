package k8saudit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// eachLine decodes every non-empty line of a JSON Lines file the way the plugin's file reader
// does, calling fn for every event; unrecognised lines are returned.
func eachLine(t *testing.T, d *Decoder, path string, fn func(*Event)) (lineErrs []error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if _, err := d.Decode(sc.Bytes(), func(ev *Event) error { fn(ev); return nil }); err != nil {
			lineErrs = append(lineErrs, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lineErrs
}

func TestTraces(t *testing.T) {
	all := compileAll(t)
	want := map[string]map[string][]string{
		"create_nginx_pod_privileged.json": {
			"ka.req.pod.containers.privileged":       {"true"},
			"ka.req.container.privileged":            {"true"},
			"ka.req.pod.containers.image.repository": {"nginx"},
			"ka.target.resource":                     {"pods"},
			"ka.verb":                                {"create"},
			"ka.response.code":                       {"201"},
			"jevt.value[/stage]":                     {"ResponseComplete"},
		},
		"create_nginx_pod_privileged_2nd_container.json": {
			"ka.req.container.privileged":            {"true"},
			"ka.req.pod.containers.image":            {"nginx", "mysql:latest"},
			"ka.req.pod.containers.image.repository": {"nginx", "mysql"},
			"ka.req.pod.containers.name":             {"nginx1", "mysql"},
			"ka.req.pod.containers.name[1]":          {"mysql"},
		},
		"create_nginx_pod_sensitive_mount.json": {
			"ka.req.pod.volumes.hostpath":    {"/etc"},
			"ka.req.volume.hostpath[/etc]":   {"true"},
			"ka.req.volume.hostpath[/proc*]": {"false"},
			"ka.req.pod.volumes.volume_type": {"hostPath"},
		},
		"create_nginx_pod_hostnetwork.json": {
			"ka.req.pod.host_network": {"true"},
		},
		"anonymous_creates_namespace_foo.json": {
			"ka.user.name":     {"system:anonymous"},
			"ka.auth.decision": {"allow"},
		},
	}
	total := 0
	for _, path := range traceFiles(t) {
		name := filepath.Base(path)
		var d Decoder
		d.MaxEventSize = DefaultMaxEventSize
		d.OnDrop = func(err error) { t.Errorf("%s: dropped event: %v", name, err) }
		n := 0
		errs := eachLine(t, &d, path, func(ev *Event) {
			n++
			// Every field must run on real events without trouble.
			var dst [][]byte
			for fname, x := range all {
				var ok bool
				if dst, ok = x(ev, dst[:0]); ok && len(dst) == 0 {
					t.Errorf("%s: %s ok with no value", name, fname)
				}
			}
			if !json.Valid(ev.Raw()) {
				t.Errorf("%s: Raw() is not JSON", name)
			}
			for field, vals := range want[name] {
				got, ok := extract(t, ev, field)
				if !ok || !slices.Equal(got, vals) {
					t.Errorf("%s: %s = %q %v, want %q", name, field, got, ok, vals)
				}
			}
		})
		total += n
		if name == "fal_01_003.json" {
			if len(errs) != 1 || errs[0] != ErrNotAuditEvent || n != 0 {
				t.Errorf("fal_01_003: errors %v, %d events", errs, n)
			}
			continue
		}
		if len(errs) != 0 || n == 0 {
			t.Errorf("%s: errors %v, %d events", name, errs, n)
		}
	}
	t.Logf("%d events from traces", total)
}

func TestAPIServerBatches(t *testing.T) {
	data := readBatches(t)
	all := compileAll(t)
	var (
		d     = Decoder{MaxEventSize: DefaultMaxEventSize}
		names []string
		n     int
	)
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(line, &list); err != nil {
			t.Fatal(err)
		}
		i := 0
		_, err := d.Decode(line, func(ev *Event) error {
			// kube-apiserver already writes compact JSON in field order, so the plugin's
			// re-serialisation must reproduce each item byte for byte.
			if !bytes.Equal(ev.Raw(), list.Items[i]) {
				t.Errorf("event %d: Raw() differs from the apiserver's item", ev.Num)
			}
			i++
			n++
			name, _ := extract(t, ev, "ka.target.name")
			names = append(names, name...)
			var dst [][]byte
			for _, x := range all {
				dst, _ = x(ev, dst[:0])
			}
			if ev.Num == 1 {
				for field, want := range map[string][]string{
					"ka.verb":                               {"create"},
					"ka.target.pod.name":                    {"evil"},
					"ka.req.pod.containers.privileged":      {"true"},
					"ka.req.container.privileged":           {"true"},
					"ka.req.pod.host_network":               {"true"},
					"ka.uri.param[fieldManager]":            {"kubectl-client-side-apply"},
					"ka.uri.param[fieldValidation]":         {"Strict"},
					"ka.user.groups":                        {"system:masters", "system:authenticated"},
					"evt.time.iso8601":                      {"2026-11-22T12:40:38.113640000+0000"},
					"ka.req.pod.containers.eff_run_as_user": {"0"},
				} {
					if got, ok := extract(t, ev, field); !ok || !slices.Equal(got, want) {
						t.Errorf("%s = %q %v, want %q", field, got, ok, want)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != len(list.Items) {
			t.Errorf("decoded %d of %d items", i, len(list.Items))
		}
	}
	if want := []string{"evil", "cm1", "evil", "p1", "p2", "p3"}; !slices.Equal(names, want) || n != 6 {
		t.Errorf("events %q", names)
	}
}
