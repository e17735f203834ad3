package index

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

func TestUpstreamIndex(t *testing.T) {
	b := testshared.ReadFile(t, "testdata", "upstream", "falcosecurity-index.yaml")
	e, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(e) != 28 {
		t.Fatalf("want 28 entries, got %d", len(e))
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"- name: a\n  type: rulesfile\n  registry: r\n":                                                        "missing repository",
		"- {name: a, type: t, registry: r, repository: x}\n- {name: a, type: t, registry: r, repository: y}\n": "duplicate entry",
		"name: a": "YAML list",
		"- {name: a/b, type: t, registry: r, repository: x}": "invalid name",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want %q, got %v", in, want, err)
		}
	}
}

func TestFetchAndCache(t *testing.T) {
	const ix = "- {name: b, type: plugin, registry: r, repository: x/b}\n- {name: a, type: rulesfile, registry: r, repository: x/a}\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(ix))
	}))
	defer srv.Close()
	e, err := Fetch(context.Background(), nil, srv.URL+"/index.yaml", "")
	if err != nil || len(e) != 2 || e[0].Name != "a" {
		t.Fatalf("%v %v", e, err)
	}
	if _, err := Fetch(context.Background(), nil, srv.URL+"/missing", ""); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), nil, "s3://bucket/index.yaml", ""); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, _ := OpenCache(dir)
	if err := c.Put("mine", srv.URL, "", e, time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "indexes.yaml"))
	if !strings.Contains(string(b), "configs:") || !strings.Contains(string(b), "added_timestamp: \"2024-01-02 03:04:05\"") {
		t.Fatalf("indexes.yaml: %s", b)
	}
	c2, _ := OpenCache(dir)
	m := &Merged{Sources: []Source{{Name: "mine", URL: "http://unused"}}, Cache: c2}
	f, ok, err := m.Get(context.Background(), "b")
	if err != nil || !ok || f.Entry.Repository != "x/b" {
		t.Fatalf("%v %v %v", f, ok, err)
	}
	res := Search([]Found{{Index: "i", Entry: Entry{Name: "k8saudit"}}, {Index: "i", Entry: Entry{Name: "k8saudit-eks"}}, {Index: "i", Entry: Entry{Name: "json"}}}, []string{"k8saudit"}, 0.5, "")
	if len(res) != 2 || res[0].Entry.Name != "k8saudit" || res[0].Score < res[1].Score {
		t.Fatalf("search: %+v", res)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("- {name: a, type: rulesfile, registry: r, repository: x}"))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := Parse(out)
		if err != nil || len(e2) != len(e) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
