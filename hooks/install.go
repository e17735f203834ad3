package hooks

// install is the first hook. The workload container may not be up yet; reconcile then leaves
// the unit waiting and falco-pebble-ready finishes the job.
func init() { register("install", reconcile) }
