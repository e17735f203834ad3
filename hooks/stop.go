package hooks

// stop: the pod is going away; Pebble stops the agent itself (SIGTERM, so it drains). Reconcile
// is idempotent, so in the steady state it changes nothing and only refreshes the status; if the
// container is already gone it leaves the unit waiting.
func init() { register("stop", reconcile) }
