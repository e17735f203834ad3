package hooks

import "github.com/falco-k8s/falco-k8s/charm"

// The peer relation and the agent's Pebble notices. Reconcile does the peer work (charm/peers.go):
//   - <peer>-relation-created/-joined/-changed/-departed: a pinned unit writes the published
//     pins and tuning into its workload and asks its agent to apply them (POST /sync, /reload);
//     every unit republishes what it runs; the leader recounts the application status (a
//     departed unit drops out of it).
//   - falco-pebble-custom-notice: the agent recorded falco-k8s.io/ruleset (a candidate accepted
//     or ignored); on the leader, reconcile publishes the accepted set to the peers at once
//     instead of at the next update-status.
func init() {
	for _, k := range []string{"created", "joined", "changed", "departed"} {
		register(charm.PeerEndpoint+"-relation-"+k, reconcile)
	}
	register(containerHook("pebble-custom-notice"), reconcile)
}
