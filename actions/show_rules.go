package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/charm"
)

// show-rules lists the rules the agent is running, from its GET /rules: each rule's priority,
// source, enabled flag, tags, file and that file's artifact reference and digest.
func init() { Register("show-rules", showRules) }

func showRules(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	format := p.String("format")
	if format == "" {
		format = "table"
	}
	a, _, err := agent(ctx, c)
	if err != nil {
		return nil, err
	}
	rs, err := a.Rules(ctx, p.Bool("condition"))
	if err != nil {
		return nil, fmt.Errorf("cannot list rules: the agent is not answering (%v)", err)
	}
	filter := strings.ToLower(p.String("filter"))
	var rules []status.Rule
	enabled := 0
	for _, r := range rs.Rules {
		if filter != "" && !strings.Contains(strings.ToLower(r.Name), filter) {
			continue
		}
		rules = append(rules, r)
		if r.Enabled {
			enabled++
		}
	}
	var text string
	switch format {
	case "json":
		b, err := json.MarshalIndent(nonNilRules(rules), "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render json: %w", err)
		}
		text = string(b)
	case "yaml":
		b, err := yaml.Marshal(nonNilRules(rules))
		if err != nil {
			return nil, fmt.Errorf("render yaml: %w", err)
		}
		text = string(b)
	case "table":
		text = table(rules, p.Bool("condition"))
	default:
		return nil, fmt.Errorf("format %q is not table, yaml or json", format)
	}
	out := map[string]any{
		"count":      fmt.Sprint(len(rules)),
		"enabled":    fmt.Sprint(enabled),
		"generation": fmt.Sprint(rs.Generation),
		"format":     format,
		"rules":      text,
	}
	// Who signed each followed artifact, when its signature was verified (rules-signing-key),
	// and with changes=true the diff view of the last candidates.
	if st, err := a.Status(ctx); err == nil {
		// Which engine runs these rules: falco-k8s's own, or the real Falco (engine=falco).
		if st.Engine.Name != "" {
			out["engine"] = strings.TrimSpace(st.Engine.Name + " " + st.Engine.Version)
		}
		if p.Bool("changes") {
			for key, ch := range map[string]*status.Change{"last-accepted-changes": st.LastAccepted, "last-ignored-changes": st.LastIgnored} {
				if ch != nil && ch.Diff != nil {
					what := ch.Origin
					if ch.Ref != "" {
						what = ch.Ref + "@" + ch.Digest
					}
					out[key] = what + ": " + ch.Diff.Summary()
				}
			}
		}
		var signers []string
		for _, src := range st.Sources {
			if src.Signer != "" {
				signers = append(signers, fmt.Sprintf("%s@%s: %s", src.Ref, src.Digest, src.Signer))
			}
		}
		if len(signers) > 0 {
			out["signers"] = strings.Join(signers, "\n")
		}
	}
	return out, nil
}

func nonNilRules(r []status.Rule) []status.Rule {
	if r == nil {
		return []status.Rule{}
	}
	return r
}

func table(rules []status.Rule, withCondition bool) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	hdr := "NAME\tPRIORITY\tSOURCE\tENABLED\tTAGS\tFILE\tARTIFACT"
	if withCondition {
		hdr += "\tCONDITION"
	}
	fmt.Fprintln(tw, hdr)
	for _, r := range rules {
		art := "-"
		if r.Ref != "" {
			art = r.Ref
			if r.Digest != "" {
				art += "@" + r.Digest
			}
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%t\t%s\t%s\t%s", r.Name, r.Priority, r.Source, r.Enabled, strings.Join(r.Tags, ","), r.File, art)
		if withCondition {
			line += "\t" + strings.Join(strings.Fields(r.Condition), " ")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush() //nolint:errcheck // bytes.Buffer
	return b.String()
}
