package hooks

// remove: the unit is being removed. The opened port belongs to the application's Service and
// stays for the remaining units; nothing is pushed or replanned into the terminating pod.
func init() { register("remove", terminating("removing")) }
