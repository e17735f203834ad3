package rulediff

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
)

const base = `- list: images
  items: [nginx, redis]
- macro: is_create
  condition: ka.verb = create
- rule: Create Privileged Pod
  desc: d
  condition: is_create and ka.target.resource = pods
  output: privileged pod %ka.target.name
  priority: WARNING
  source: k8s_audit
- rule: Delete Secret
  desc: d
  condition: ka.verb = delete and ka.target.resource = secrets and ka.req.pod.containers.image in (images)
  output: secret deleted
  priority: NOTICE
  source: k8s_audit
- rule: Quiet Rule
  desc: d
  condition: ka.verb = get
  output: get
  priority: INFO
  enabled: false
  source: k8s_audit
`

func load(t *testing.T, minPrio engine.Priority, files ...string) *engine.Ruleset {
	t.Helper()
	var fs []engine.File
	for i, c := range files {
		fs = append(fs, engine.File{Name: string(rune('a'+i)) + ".yaml", Content: []byte(c)})
	}
	rs, _, err := engine.Load(fs, engine.Options{MinPriority: minPrio})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name    string
		minPrio engine.Priority
		over    string // appended to base in the candidate
		want    status.RulesetDiff
	}{
		{name: "same", over: ""},
		{name: "disable", over: "- rule: Create Privileged Pod\n  enabled: false\n",
			want: status.RulesetDiff{Disabled: []string{"Create Privileged Pod"},
				SwitchedOff: []status.SwitchedOff{{Rule: "Create Privileged Pod", Why: "disabled"}}}},
		{name: "enable", over: "- rule: Quiet Rule\n  enabled: true\n",
			want: status.RulesetDiff{Enabled: []string{"Quiet Rule"}}},
		{name: "priority below threshold", minPrio: engine.PriorityNotice,
			over: "- rule: Create Privileged Pod\n  priority: DEBUG\n  override: {priority: replace}\n",
			want: status.RulesetDiff{Changed: []status.RuleChange{{Rule: "Create Privileged Pod", Fields: []string{"priority"}, PriorityFrom: "Warning", PriorityTo: "Debug"}},
				SwitchedOff: []status.SwitchedOff{{Rule: "Create Privileged Pod", Why: "priority lowered from Warning to Debug, below the minimum priority"}}}},
		{name: "priority raised", over: "- rule: Delete Secret\n  priority: CRITICAL\n  override: {priority: replace}\n",
			want: status.RulesetDiff{Changed: []status.RuleChange{{Rule: "Delete Secret", Fields: []string{"priority"}, PriorityFrom: "Notice", PriorityTo: "Critical"}}}},
		{name: "condition output exceptions",
			over: "- rule: Create Privileged Pod\n  condition: and ka.target.namespace != kube-system\n  override: {condition: append}\n" +
				"- rule: Delete Secret\n  output: changed\n  exceptions: [{name: admin, fields: [ka.user.name], values: [[admin]]}]\n  override: {output: replace, exceptions: append}\n",
			want: status.RulesetDiff{Changed: []status.RuleChange{
				{Rule: "Create Privileged Pod", Fields: []string{"condition"}},
				{Rule: "Delete Secret", Fields: []string{"exceptions", "output"}}}}},
		{name: "lists and macros",
			over: "- list: images\n  items: [postgres]\n  override: {items: append}\n- list: extra\n  items: [x]\n- macro: is_create\n  condition: ka.verb in (create, update)\n",
			want: status.RulesetDiff{Lists: status.ItemChanges{Added: []string{"extra"}, Changed: []string{"images"}},
				Macros: status.ItemChanges{Changed: []string{"is_create"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			minPrio := c.minPrio
			if minPrio == 0 {
				minPrio = engine.PriorityDebug
			}
			cur := load(t, minPrio, base)
			cand := load(t, minPrio, base, c.over)
			got := Compare(cur, cand)
			if !reflect.DeepEqual(*got, c.want) {
				t.Fatalf("diff\n got %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestCompareAddedRemoved(t *testing.T) {
	cur := load(t, engine.PriorityDebug, base)
	cand := load(t, engine.PriorityDebug, strings.Replace(base, "Delete Secret", "Delete Secret v2", 1))
	d := Compare(cur, cand)
	if !reflect.DeepEqual(d.Added, []string{"Delete Secret v2"}) || !reflect.DeepEqual(d.Removed, []string{"Delete Secret"}) ||
		!reflect.DeepEqual(d.SwitchedOff, []status.SwitchedOff{{Rule: "Delete Secret", Why: "removed"}}) {
		t.Fatalf("diff %+v", d)
	}
	// A rule that was not active (disabled) going away switches nothing off.
	d = Compare(cur, load(t, engine.PriorityDebug, strings.Replace(base, "Quiet Rule", "Other", 1)))
	if len(d.SwitchedOff) != 0 || !reflect.DeepEqual(d.Removed, []string{"Quiet Rule"}) {
		t.Fatalf("diff %+v", d)
	}
	// Nothing running yet: everything is added.
	d = Compare(nil, cur)
	if len(d.Added) != 3 || len(d.Lists.Added) != 1 || len(d.Macros.Added) != 1 || len(d.SwitchedOff) != 0 {
		t.Fatalf("diff from nothing %+v", d)
	}
	if s := d.Summary(); !strings.Contains(s, `rules: 3 added ("Create Privileged Pod", "Delete Secret", "Quiet Rule")`) ||
		!strings.Contains(s, `lists: 1 added ("images")`) {
		t.Fatalf("summary %q", s)
	}
}

func TestGuard(t *testing.T) {
	cur := load(t, engine.PriorityDebug, base)
	cand := load(t, engine.PriorityDebug, base, "- rule: Create Privileged Pod\n  enabled: false\n")
	d := Compare(cur, cand)
	err := Guard(d, []string{"reg/rules:1"}, false)
	var re *RegressionError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `"Create Privileged Pod" (disabled)`) ||
		!strings.Contains(err.Error(), "follow.allow_rule_removal") || re.RulesetDiff() != d {
		t.Fatalf("guard: %v", err)
	}
	if err := Guard(d, []string{"reg/rules:1"}, true); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if err := Guard(Compare(cur, load(t, engine.PriorityDebug, base, "- rule: Quiet Rule\n  enabled: true\n")), nil, false); err != nil {
		t.Fatalf("enabling a rule: %v", err)
	}
	if s := (&status.RulesetDiff{}).Summary(); s != "no rule, list or macro changes" {
		t.Fatal(s)
	}
}
