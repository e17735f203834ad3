package charmtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestZZProfileScratch(t *testing.T) {
	if os.Getenv("H11_PROFILE") == "" {
		t.Skip()
	}
	u := newUnit(t, unitOpts{})
	u.config(map[string]any{"log-level": "debug"})
	u.hook("install")
	for _, rel := range []struct{ ep, app string }{{"metrics-endpoint", "prometheus"}, {"grafana-dashboard", "grafana"}, {"http-endpoint", "falcosidekick"}} {
		id, _ := u.AddRelation(rel.ep, rel.app)
		u.JoinUnit(id, rel.app+"/0", nil)
	}
	logging, _ := u.AddRelation("logging", "loki")
	u.JoinUnit(logging, "loki/0", map[string]string{"endpoint": `{"url": "http://127.0.0.1:9/loki/api/v1/push"}`})
	u.hook("config-changed")
	show := func(name string, env ...string) {
		n0 := len(u.State().Calls)
		r := u.Hook(name, env...)
		if r.Code != 0 {
			t.Fatal(r)
		}
		calls := u.State().Calls[n0:]
		var ph string
		for _, l := range strings.Split(r.Stdout, "\n") {
			if strings.Contains(l, "phases") {
				ph = l
			}
		}
		fmt.Printf("== %s %v\n  calls: %q\n  %s\n", name, r.Elapsed.Round(time.Millisecond), calls, ph)
	}
	for i := 0; i < 3; i++ {
		show("config-changed")
		show("update-status")
		u.SetRemoteUnitDataOnly(logging, "loki/0", map[string]string{"endpoint": `{"url": "http://127.0.0.1:9/loki/api/v1/push"}`})
		show("logging-relation-changed", u.RelationEnv(logging, "loki/0")...)
		u.SetRemoteUnitDataOnly(logging, "loki/0", map[string]string{"endpoint": fmt.Sprintf(`{"url": "http://127.0.0.1:%d/loki/api/v1/push"}`, 10+i)})
		show("logging-relation-changed", u.RelationEnv(logging, "loki/0")...)
	}
	// tool cost
	for i := 0; i < 5; i++ {
		st := time.Now()
		r := u.Hook("zz-nonexistent")
		_ = r
		fmt.Println("unknown hook", time.Since(st))
	}
}
